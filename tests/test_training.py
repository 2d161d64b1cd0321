"""Training loops on a tiny generated DAVIS-style dataset: a few iterations, validation on the
held-out name, export to a weights folder, and resuming from runs/<name>/last.pt."""
import json

import cv2
import numpy as np
import pytest
import torch

from scripts.train.data import PROC_SIZE, ClipSampler, FeatureCache, crop_maps, crop_window
from scripts.simulated_marks import first_scribbles, simulate_round

N_FRAMES = 6


def _write_sequence(root, name, seed):
    rng = np.random.default_rng(seed)
    h, w = PROC_SIZE
    (root / 'videos').mkdir(parents=True, exist_ok=True)
    (root / 'masks' / name).mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(root / 'videos' / f'{name}.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 24, (w, h))
    bg = cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    colour = tuple(int(c) for c in rng.integers(0, 255, 3))
    for t in range(N_FRAMES):
        f = bg.copy()
        m = np.zeros((h, w), np.uint8)
        c = (80 + 20 * t, 100 + 5 * t)
        cv2.ellipse(f, c, (50, 35), 10 * t, 0, 360, colour, -1)
        cv2.ellipse(m, c, (50, 35), 10 * t, 0, 360, 255, -1)
        vw.write(f)
        cv2.imwrite(str(root / 'masks' / name / f'{t:05d}.png'), m)
    vw.release()


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_davis')
    for i, name in enumerate(['tiny-a', 'tiny-b', 'bear', 'surf']):   # held out: bear (selection), surf (report)
        _write_sequence(root, name, i)
    return root


@pytest.fixture(scope='module')
def tiny_cache(tiny_root, tmp_path_factory):
    from model.lite_propagation import LiteBackbone
    d = tmp_path_factory.mktemp('cache')
    FeatureCache.build(tiny_root, d, LiteBackbone())
    return d


def _ckpt(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def test_cache_excludes_held_out_and_samples(tiny_cache):
    cache = FeatureCache(tiny_cache)
    assert cache.names == ['tiny-a', 'tiny-b'] and len(cache) == 2 * N_FRAMES
    s = ClipSampler(cache, seed=0)
    c = s.cached_clip(0)
    assert c['f16'].shape[0] == 3 and c['labels'].shape == (3,) + PROC_SIZE
    win = crop_window(c['labels'][0].numpy(), s.rng, PROC_SIZE, (96, 160))
    (f2, f4, f16), lab = crop_maps((c['f2'], c['f4'], c['f16']), c['labels'], win)
    assert lab.shape[-2:] == (96, 160) and f16.shape[-2:] == (6, 10) and f2.shape[-2:] == (48, 80)
    frames, labels, k = s.paste_clip(0)
    assert frames.shape == (3,) + PROC_SIZE + (3,) and k in (1, 2) and labels.max() == k


def test_pasted_twin_is_the_clips_own_object_tracked_or_background(tiny_cache):
    """With p_twin=1 the pasted object is the clip's own object (its own pixels, elsewhere):
    half the time a second object (2), half the time background."""
    s = ClipSampler(FeatureCache(tiny_cache), seed=3, p_twin=1.0)
    kinds = set()
    for _ in range(12):
        frames, labels, k = s.paste_clip(0)
        assert labels.max() == k and k in (1, 2) and labels[0].any()
        own = frames[0][labels[0] == 1].reshape(-1, 3).mean(0)
        if k == 2:
            pasted = frames[0][labels[0] == 2].reshape(-1, 3).mean(0)
            assert np.abs(own - pasted).max() < 40        # the same object's colours
        kinds.add(k)
    assert kinds == {1, 2}


def test_zoom_clips_show_one_object_alone_enlarged_as_the_zoomed_pass_does(tiny_cache):
    """The trainer's zoom clips: each frame a window around the object resized to the zoom size
    (2/3 of the processing size), the object alone (k = 1), larger in the window than in the
    frame; objects too large for a window are refused (None)."""
    from scripts.train.clip_stream import draw_clip
    cache = FeatureCache(tiny_cache)
    s = ClipSampler(cache, seed=0)
    assert s.zoom_hw == (160, 288)                      # 2/3 of 240x432, sides /16
    share = (np.asarray(cache.arrays['masks'][0]) > 0).mean()
    for _ in range(4):          # (the tiny clips' ellipse is a third of the frame: a wider limit)
        frames, labels, k = s.zoom_clip(0, max_side=1.0)
        assert frames.shape == (3, 160, 288, 3) and labels.shape == (3, 160, 288) and k == 1
        assert labels.max() == 1 and labels[0].mean() > share
        colour = frames[0][labels[0] == 1].reshape(-1, 3).mean(0)
        assert np.abs(frames[0][labels[0] == 1] - colour).mean() < 30    # the object's own colour
    assert s.zoom_clip(0, max_side=0.1) is None          # every object too large for that window
    clip = draw_clip(s, 0, {'static_fg': 0, 'static': 0, 'paste': 0, 'zoom': 1.0}, (96, 160))
    assert clip['k'] == 1 and clip['labels'].shape == (3, 96, 160)     # a zoom clip or a real one


def test_the_cache_holds_the_frozen_imagenet_maps(tiny_root, tmp_path):
    """Built from a freshly constructed network (as the trainers do), the cache holds the maps of
    the backbone in eval mode, and building it leaves the BatchNorm statistics alone."""
    from model.lite_propagation import LitePropagationNet, backbone_maps
    net = LitePropagationNet()
    before = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    cache = FeatureCache.build(tiny_root, tmp_path / 'c', net.backbone)
    assert all(torch.equal(before[k], v) for k, v in net.backbone.state_dict().items())
    net.train()
    assert not net.backbone.training and not any(m.training for m in net.backbone.modules())
    one = backbone_maps(LitePropagationNet().backbone, np.asarray(cache.arrays['frames'][2:3]), with_f8=True)
    for k, i in FeatureCache.MAPS.items():        # frame 2 alone: no statistics of its batch
        cached = torch.from_numpy(np.asarray(cache.arrays[k][2:3]).astype(np.float32))
        assert torch.allclose(cached, one[i], rtol=2e-3, atol=2e-3), k
    # a cache written before the normalisation mark is rebuilt
    index = tmp_path / 'c' / 'index.json'
    meta = json.loads(index.read_text())
    del meta['normalisation']
    index.write_text(json.dumps(meta))
    FeatureCache.build(tiny_root, tmp_path / 'c', net.backbone)
    assert json.loads(index.read_text())['normalisation'] == FeatureCache.NORMALISATION


def test_near_clips_put_the_previous_frame_close_to_the_query(tiny_cache):
    s = ClipSampler(FeatureCache(tiny_cache), seed=1, p_near=1.0)
    for _ in range(50):
        i0, i1, i2 = s.real_indices('tiny-b', it=8000)
        assert 1 <= abs(i2 - i1) <= 3 or i1 == i2 == s.cache.seq_range('tiny-b')[0] + N_FRAMES - 1
        assert (i1 - i0) * (i2 - i1) >= 0                  # one direction through the clip


def test_scribble_simulation_stays_in_regions():
    rng = np.random.default_rng(0)
    gt = np.zeros((120, 160), bool)
    gt[30:90, 40:120] = True
    for _ in range(20):
        pos, neg = first_scribbles(gt, rng)
        assert pos.any() and not (pos.astype(bool) & ~gt).any() and not (neg.astype(bool) & gt).any()
        prev, pos, neg = simulate_round(gt, rng)
        assert prev.shape == pos.shape == gt.shape and (pos.any() or neg.any())


@pytest.mark.slow
def test_propagation_training_runs_exports_and_resumes(tiny_root, tiny_cache, tmp_path):
    from scripts.train import train_propagation
    args = ['--data', str(tiny_root), '--cache', str(tiny_cache), '--runs', str(tmp_path / 'runs'), '--name', 't', '--batch', '1',
            '--crop', '96', '160', '--weights', str(tmp_path / 'w'), '--val-every', '2', '--threads', '2']
    assert train_propagation.main(args + ['--iters', '2']) == 0
    ck = _ckpt(tmp_path / 'runs' / 't' / 'last.pt')
    assert ck['iteration'] == 2 and ck['best'] is not None
    man = json.loads((tmp_path / 'w' / 'manifest.json').read_text())
    assert man['files']['propagation_lite.pth']['iterations'] == 2
    before = {k: v.clone() for k, v in ck['model'].items()}
    assert train_propagation.main(args + ['--iters', '3', '--no-val']) == 0
    ck = _ckpt(tmp_path / 'runs' / 't' / 'last.pt')
    assert ck['iteration'] == 3                                    # resumed, one more step
    assert any(not torch.equal(before[k], v) for k, v in ck['model'].items() if not k.startswith('backbone.'))
    assert all(torch.equal(before[k], v) for k, v in ck['model'].items() if k.startswith('backbone.'))
    # a new run from the exported weights records the iterations behind them too
    args2 = [a if a != 't' else 't2' for a in args]
    args2[args2.index('--weights') + 1] = str(tmp_path / 'w2')
    assert train_propagation.main(args2 + ['--iters', '2', '--init', str(tmp_path / 'w' / 'propagation_lite.pth')]) == 0
    man2 = json.loads((tmp_path / 'w2' / 'manifest.json').read_text())
    assert man2['files']['propagation_lite.pth']['iterations'] == 2 + 2


def test_with_report_trains_on_the_report_videos_says_so_and_never_on_the_selection_ones(tiny_root, tmp_path):
    from model.lite_propagation import LiteBackbone
    from scripts.train import train_propagation
    from scripts.train.common import TRAIN_DATA_WITH_REPORT
    from util.davis_split import train_sequences
    from util.errors import UserError
    assert train_sequences(['bear', 'surf', 'x']) == ['x']
    assert train_sequences(['bear', 'surf', 'x'], with_report=True) == ['surf', 'x']
    args = ['--data', str(tiny_root), '--runs', str(tmp_path / 'runs'), '--batch', '1', '--threads', '2',
            '--crop', '96', '160', '--val-every', '1', '--name', 'all', '--weights', str(tmp_path / 'w')]
    assert train_propagation.main(args + ['--iters', '1', '--with-report']) == 0
    # its own cache (the usual one keeps the training videos alone), with the report video in it
    assert FeatureCache(tmp_path / 'runs' / 'cache_lite0_with_report').names == ['surf', 'tiny-a', 'tiny-b']
    man = json.loads((tmp_path / 'w' / 'manifest.json').read_text())
    entry = man['files']['propagation_lite.pth']
    assert entry['trained_on_report'] is True and entry['data'] == TRAIN_DATA_WITH_REPORT
    assert 'trained_on_report' in man['validation_set']
    with pytest.raises(UserError, match='trains with --with-report'):      # resumes on its own data only
        train_propagation.main(args + ['--iters', '2'])
    with pytest.raises(UserError, match=r"held-out sequences must not be cached.*'bear'"):
        FeatureCache.build(tiny_root, tmp_path / 'c', LiteBackbone(), sequences=['tiny-a', 'bear'],
                           with_report=True)
    with pytest.raises(UserError, match=r"held-out sequences must not be cached.*'surf'"):
        FeatureCache.build(tiny_root, tmp_path / 'c', LiteBackbone(), sequences=['tiny-a', 'surf'])


def test_propagation_trains_and_exports_at_another_processing_size(tiny_root, tmp_path):
    from model import lite_networks
    from scripts.train import train_propagation
    from scripts.train.data import cache_size
    assert train_propagation.default_crop(240) == (192, 320)
    assert train_propagation.default_crop(288) == (224, 384)
    args = ['--data', str(tiny_root), '--runs', str(tmp_path / 'runs'), '--batch', '1', '--threads', '2',
            '--crop', '96', '160', '--val-every', '1']
    assert train_propagation.main(args + ['--name', 'big', '--iters', '1', '--proc-short', '288',
                                          '--weights', str(tmp_path / 'w')]) == 0
    assert FeatureCache(tmp_path / 'runs' / 'cache_lite0_288').size == cache_size(288) == (288, 512)
    exported = tmp_path / 'w' / 'propagation_lite.pth'
    assert lite_networks.load_network('propagation', exported).proc_short == 288
    # a run at 240 started from those weights trains and exports at 240 (its own size)
    assert train_propagation.main(args + ['--name', 'small', '--iters', '1', '--init', str(exported),
                                          '--cache', str(tmp_path / 'c240'), '--weights', str(tmp_path / 'w2')]) == 0
    assert lite_networks.load_network('propagation', tmp_path / 'w2' / 'propagation_lite.pth').proc_short == 240
    with pytest.raises(SystemExit):
        train_propagation.main(args + ['--proc-short', '250'])           # not a multiple of 16
    from util.errors import UserError
    with pytest.raises(UserError, match='trains at --proc-short 288'):   # a resume keeps its size
        train_propagation.main(args + ['--name', 'big', '--iters', '2', '--weights', str(tmp_path / 'w')])


def test_the_export_score_weighs_composites_against_the_selection_videos():
    from scripts.train.train_propagation import export_score, score_name
    from util.errors import UserError
    assert export_score(0.70, 0.82) == pytest.approx(0.76)                      # default: the mean
    assert export_score(0.70, 0.82, 0.5) == pytest.approx((2 * 0.70 + 0.82) / 3)
    assert export_score(0.70, 0.82, 0) == pytest.approx(0.70)                   # real videos only
    # v3's two last checkpoints (selection / composites): the plain mean prefers the earlier one,
    # composites at half weight the later one (better on the real videos)
    assert export_score(74.74, 77.47) > export_score(75.30, 76.86)
    assert export_score(74.74, 77.47, 0.5) < export_score(75.30, 76.86, 0.5)
    with pytest.raises(UserError):
        export_score(0.7, 0.8, -1)
    # another weighting is another score: export_if_better never compares the two
    assert score_name(['clip']) == 'selection_and_composites_JF'
    assert score_name(['clip'], 0.5) == 'selection_and_0.5x_composites_JF'
    assert score_name(None, 0.5) == 'semi_JF'


@pytest.mark.slow
def test_propagation_training_can_tune_the_backbone_tail_from_a_start(tiny_root, tiny_cache, tmp_path):
    from model.lite_propagation import LitePropagationNet
    from scripts.train import train_propagation
    start = LitePropagationNet(pretrained=True).state_dict()
    start = {k: v for k, v in start.items() if '.prior' not in k}      # weights from before the prior
    torch.save(start, tmp_path / 'start.pth')
    args = ['--data', str(tiny_root), '--cache', str(tiny_cache), '--runs', str(tmp_path / 'runs'), '--name', 'b',
            '--batch', '1', '--crop', '96', '160', '--no-val', '--no-export', '--threads', '2', '--iters', '2',
            '--init', str(tmp_path / 'start.pth'), '--tune-backbone', '--p-static', '0.5', '--p-paste', '0.5']
    assert train_propagation.main(args) == 0
    model = _ckpt(tmp_path / 'runs' / 'b' / 'last.pt')['model']
    tail = LitePropagationNet(pretrained=False).backbone.tail_start
    tuned = [k for k in model if k.startswith('backbone.') and not torch.equal(model[k], start[k])]
    assert tuned and all(int(k.split('.')[3]) >= tail for k in tuned), tuned    # only the stride-16 stages
    assert all(torch.equal(model[k], start[k]) for k in model if 'running_' in k)  # BN statistics fixed


def test_cache_gains_a_missing_map_without_a_rebuild(tiny_root, tiny_cache, tmp_path):
    import shutil
    from model.lite_propagation import LiteBackbone
    old = tmp_path / 'old_cache'
    shutil.copytree(tiny_cache, old)
    (old / 'f8.npy').unlink()                          # a cache from before f8 was cached
    frames_mtime = (old / 'frames.npy').stat().st_mtime_ns
    cache = FeatureCache.build(tiny_root, old, LiteBackbone())
    assert (old / 'frames.npy').stat().st_mtime_ns == frames_mtime
    ref = FeatureCache(tiny_cache)
    # same maps (up to fp16 rounding of thread-count-dependent float sums)
    assert np.allclose(np.asarray(cache.arrays['f8'], np.float32), np.asarray(ref.arrays['f8'], np.float32),
                       atol=1e-2, rtol=1e-2)


def test_layers_missing_from_the_init_file_learn_at_the_full_rate(tmp_path):
    import argparse
    from model.lite_interaction import LiteInteractionNet
    from scripts.train import common
    net = LiteInteractionNet(pretrained=False)
    # weights from before the last layers were added
    torch.save({k: v for k, v in net.state_dict().items() if not k.startswith('pred.')}, tmp_path / 'old.pth')
    args = argparse.Namespace(init=str(tmp_path / 'old.pth'), init_lr_mult=0.1, tune_backbone=False, lr=1e-3)
    opt = common.make_optimizer(net, args)
    common.set_lr(opt, args.lr)
    fresh, loaded = opt.param_groups[0], opt.param_groups[1]
    assert {id(p) for p in fresh['params']} == {id(p) for p in net.pred.parameters()}
    assert fresh['lr'] == pytest.approx(1e-3) and loaded['lr'] == pytest.approx(1e-4)
    assert len(loaded['params']) + len(fresh['params']) == len(net.trainable_parameters())
    args.init_lr_mult = 1.0                                          # the default: one group
    assert len(common.make_optimizer(net, args).param_groups) == 1


@pytest.mark.slow
def test_train_only_changes_just_the_chosen_layers(tiny_root, tiny_cache, tmp_path):
    from model.lite_propagation import LitePropagationNet
    from scripts.train import train_propagation
    from util.errors import UserError
    torch.manual_seed(0)
    start = LitePropagationNet(pretrained=False).state_dict()
    for k in start:
        if '.prior' in k:
            start[k] = torch.randn_like(start[k]) * 0.1     # a prior that already matters
    torch.save(start, tmp_path / 'start.pth')
    args = ['--data', str(tiny_root), '--cache', str(tiny_cache), '--runs', str(tmp_path / 'runs'), '--name', 'p',
            '--batch', '1', '--crop', '96', '160', '--no-val', '--no-export', '--threads', '2', '--iters', '2',
            '--ema', '0', '--lr', '1e-2', '--init', str(tmp_path / 'start.pth'),
            '--train-only', 'decoder.prior16.', 'decoder.prior4.']
    assert train_propagation.main(args) == 0
    model = _ckpt(tmp_path / 'runs' / 'p' / 'last.pt')['model']
    changed = {k for k in model if not torch.equal(model[k].float(), start[k].float())}
    assert changed and all(k.startswith(('decoder.prior16.', 'decoder.prior4.')) for k in changed), changed
    with pytest.raises(UserError, match='no trainable parameter'):
        train_propagation.main(args[:-3] + ['--name', 'q', '--train-only', 'nothing.'])


def test_interaction_training_runs_and_resumes(tiny_root, tiny_cache, tmp_path):
    from scripts.train import train_interaction
    args = ['--data', str(tiny_root), '--cache', str(tiny_cache), '--runs', str(tmp_path / 'runs'), '--name', 'i', '--batch', '2',
            '--crop', '96', '160', '--weights', str(tmp_path / 'w'), '--no-val']
    assert train_interaction.main(args + ['--iters', '2']) == 0
    assert _ckpt(tmp_path / 'runs' / 'i' / 'last.pt')['iteration'] == 2
    assert train_interaction.main(args + ['--iters', '3']) == 0
    assert _ckpt(tmp_path / 'runs' / 'i' / 'last.pt')['iteration'] == 3


def test_absent_samples_clear_a_false_mask_on_a_frame_without_the_object(tiny_root, tiny_cache, tmp_path):
    from model.lite_propagation import LiteBackbone
    from scripts.train import train_interaction as ti
    cache = FeatureCache(tiny_cache)
    rng = np.random.default_rng(0)
    frame, prev = ti.absent_sample(cache, rng, (96, 160))
    assert frame.shape == (96, 160, 3) and frame.dtype == np.uint8
    assert 0.03 * prev.size < prev.sum() < 0.4 * prev.size
    mask = np.asarray(cache.arrays['masks'][0]) > 0
    wins = [ti.background_window(mask, rng, (96, 160)) for _ in range(50)]
    found = [w for w in wins if w is not None]
    assert found and len(found) < 50          # the object leaves room, but not everywhere
    ys, xs = np.nonzero(mask)
    for y, x, h, w in found:
        assert abs(w / h - 160 / 96) < 0.05
        far = (ys < y - 8) | (ys >= y + h + 8) | (xs < x - 8) | (xs >= x + w + 8)
        assert far.all()
    f2, f4, f16, guide, target = ti.sample_batch(cache, rng, 3, (96, 160), backbone=LiteBackbone(),
                                                 p_absent=1.0)
    assert target.sum() == 0 and f2.shape[0] == 3
    prev_m, pos, neg = guide[:, 0] > 0, guide[:, 1] > 0, guide[:, 2] > 0
    assert prev_m.flatten(1).any(1).all() and not pos.any()
    assert neg.flatten(1).any(1).all() and (neg & ~prev_m).sum() < 0.2 * neg.sum()
    args = ['--data', str(tiny_root), '--cache', str(tiny_cache), '--runs', str(tmp_path / 'runs'),
            '--name', 'a', '--batch', '2', '--crop', '96', '160', '--weights', str(tmp_path / 'w'),
            '--no-val', '--p-absent', '0.5', '--iters', '2']
    assert ti.main(args) == 0


def test_robot_first_rounds_are_the_davis_robots_first_scribble(tiny_cache):
    """--p-robot-first: the round is the DAVIS robot's opening stroke (empty previous mask, no
    negative, a stroke inside the object); at share 0 the batch is drawn
    exactly as without the option."""
    from model.lite_propagation import LiteBackbone
    from scripts.train import train_interaction as ti
    from util import davis_compat
    if not davis_compat.available():
        pytest.skip('davisinteractive is not installed')
    cache, backbone, robot = FeatureCache(tiny_cache), LiteBackbone(), davis_compat.scribbles_robot()
    *_, guide, target = ti.sample_batch(cache, np.random.default_rng(0), 4, (96, 160), p_paste=0.0,
                                        backbone=backbone, robot=robot, p_robot_first=1.0)
    drawn = 0
    for g, t in zip(guide.numpy(), target.numpy()):
        obj = t > 0.5
        if obj.sum() < 50:
            continue
        drawn += 1
        assert not g[0].any() and not g[2].any() and g[1].any()
        assert not (g[1] > 0)[~obj].any()
        py, px = np.nonzero(g[1] > 0)
        assert max(np.ptp(py), np.ptp(px)) >= 10         # a stroke, not a dot
    assert drawn >= 2
    plain = ti.sample_batch(cache, np.random.default_rng(1), 3, (96, 160), p_paste=0.0, backbone=backbone)
    same = ti.sample_batch(cache, np.random.default_rng(1), 3, (96, 160), p_paste=0.0, backbone=backbone,
                           robot=robot, p_robot_first=0.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, same))


@pytest.mark.slow
def test_fusion_training_runs_and_resumes(tiny_root, tiny_cache, tmp_path):
    from model.lite_propagation import LitePropagationNet
    from scripts.train import train_fusion
    from scripts.train.common import export_weights
    export_weights('propagation', LitePropagationNet(), tmp_path / 'w', 'semi_JF', 1.0, {'iterations': 0})
    args = ['--data', str(tiny_root), '--cache', str(tiny_cache), '--runs', str(tmp_path / 'runs'), '--name', 'f', '--batch', '1',
            '--prop', str(tmp_path / 'w' / 'propagation_lite.pth'), '--weights', str(tmp_path / 'w'),
            '--val-every', '2', '--val-sequences', '1', '--val-samples', '2', '--up', '1']
    assert train_fusion.main(args + ['--iters', '2']) == 0
    assert _ckpt(tmp_path / 'runs' / 'f' / 'last.pt')['iteration'] == 2
    assert train_fusion.main(args + ['--iters', '3', '--no-val']) == 0
    assert _ckpt(tmp_path / 'runs' / 'f' / 'last.pt')['iteration'] == 3


def test_correction_marks_point_at_the_errors():
    from scripts.simulated_marks import correction
    from scripts.train.train_interaction import real_correction
    gt = np.zeros((120, 160), bool)
    gt[30:90, 40:100] = True
    prev = np.roll(gt, 30, axis=1)                    # the mask slid right: a miss and a false positive
    rng = np.random.default_rng(0)
    for use_clicks in (False, True):
        for _ in range(10):
            pos, neg = correction(gt, prev, rng, use_clicks=use_clicks)
            assert pos.any() and neg.any()
            assert not (pos & ~(gt & ~prev)).any() and not (neg & ~(prev & ~gt)).any()
    p, pos, neg = real_correction(gt, prev, rng)
    assert np.array_equal(p > 0, prev) and pos.any() and neg.any()
    assert not (pos > 0)[prev].any() and not (neg > 0)[gt].any()


def _export_untrained_propagation(folder):
    """A propagation network with the ImageNet backbone and untrained heads: it makes errors."""
    from model.lite_propagation import LitePropagationNet
    from scripts.train.common import export_weights
    torch.manual_seed(0)
    export_weights('propagation', LitePropagationNet(), folder, 'semi_JF', 1.0, {'iterations': 0})
    return folder / 'propagation_lite.pth'


@pytest.mark.slow
def test_real_propagation_errors_are_what_the_network_propagates(tiny_cache, tmp_path):
    import shutil
    from model.lite_networks import load_network
    from scripts.eval_semi_davis import propagate_sequence
    from scripts.train.propagation_errors import PropagationErrors
    from util.metrics import jaccard
    d = tmp_path / 'cache'
    shutil.copytree(tiny_cache, d)
    cache = FeatureCache(d)
    net = load_network('propagation', _export_untrained_propagation(tmp_path / 'w'))
    found = PropagationErrors.build(cache, net, strides=(1, 2), source='x')
    start, n = cache.seq_range('tiny-b')
    labels = np.asarray(cache.arrays['masks'][start:start + n]).astype(np.uint8)
    pred = propagate_sequence(net, np.asarray(cache.arrays['frames'][start:start + n]), labels[0]) > 0
    for t in range(1, n):                              # stride 1: every frame after the given one
        assert np.array_equal(found.mask(0, start + t), pred[t])
        assert found.iou[0, start + t] == pytest.approx(jaccard(labels[t] > 0, pred[t]))
    with pytest.raises(KeyError):
        found.mask(0, start)                           # the given frame is not an error
    visited = np.isfinite(found.iou[1])                # stride 2 visits every other frame
    assert 0 < visited.sum() <= len(cache) // 2
    cands = found.candidates(cache, max_iou=1.01)
    assert len(cands) == np.isfinite(found.iou).sum()
    assert all(found.iou[v, i] < 0.5 for v, i in found.candidates(cache, max_iou=0.5))
    stamp = (d / 'prop_errors' / 'masks.npy').stat().st_mtime_ns
    PropagationErrors.build(cache, net, strides=(1, 2), source='x')        # reused, not recomputed
    assert (d / 'prop_errors' / 'masks.npy').stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_interaction_training_on_real_errors_validates_corrections(tiny_root, tiny_cache, tmp_path):
    import shutil
    from scripts.train import train_interaction
    shutil.copytree(tiny_cache, tmp_path / 'cache')
    _export_untrained_propagation(tmp_path / 'errors_from')
    args = ['--data', str(tiny_root), '--cache', str(tmp_path / 'cache'), '--runs', str(tmp_path / 'runs'),
            '--name', 'r', '--batch', '2', '--crop', '96', '160', '--weights', str(tmp_path / 'w'),
            '--real-errors', str(tmp_path / 'errors_from'), '--p-real', '1.0', '--val-every', '2',
            '--iters', '2']
    assert train_interaction.main(args) == 0
    entry = json.loads((tmp_path / 'w' / 'manifest.json').read_text())['files']['interaction_lite.pth']
    val = entry['validation']
    assert 0 <= val['correction_J_before'] <= 100 and 0 <= val['correction_J_after'] <= 100
    assert val['first_scribble_and_correction_J'] == pytest.approx(
        (val['first_scribble_J_3frames'] + val['correction_J_after']) / 2, abs=0.02)
    from util.errors import UserError
    bad = list(args)
    bad[bad.index('--real-errors') + 1] = str(tmp_path)          # no propagation network there
    with pytest.raises(UserError, match='no propagation_lite.pth'):
        train_interaction.main(bad)
