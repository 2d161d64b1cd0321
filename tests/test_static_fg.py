"""Static-image training data: the static-fg loader (skips without ../shared), the compositor
(objects visible where their masks say, later objects occlude earlier ones) and a propagation
training step on static-image clips of a tiny generated static-fg folder."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from scripts.train.static_fg import DEFAULT_ROOT, StaticFG, composite_clip, random_composite

COLOURS = [(230, 30, 30), (30, 200, 40), (40, 40, 230)]


def _object(colour, h=60, w=40):
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = colour
    mask = np.zeros((h, w), bool)
    cv2.ellipse(mask.view(np.uint8), (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 1, -1)
    return rgb, mask


def test_composite_objects_visible_where_their_masks_say_and_occlusion_order():
    objects = [_object(c) for c in COLOURS]
    bg = np.full((120, 200, 3), 128, np.uint8)
    overlaps = 0
    for seed in range(12):
        frames, labels = composite_clip(objects, bg, np.random.default_rng(seed), n=3,
                                        size=(96, 160), background_motion=False)
        assert frames.shape == (3, 96, 160, 3) and labels.shape == (3, 96, 160)
        if labels.max() < 3:
            continue                     # an object was hidden in frame 0 and renumbered
        # object 1 alone, on the same path (its path is drawn first from the same generator)
        _, alone = composite_clip(objects[:1], bg, np.random.default_rng(seed), n=3,
                                  size=(96, 160), background_motion=False)
        obj1 = alone == 1
        assert np.array_equal(labels == 1, obj1 & (labels <= 1))   # visible exactly where its
        assert (labels[obj1] > 0).all()                            # mask is, unless covered
        for j in range(3):
            for k in (1, 2, 3):
                inner = cv2.erode((labels[j] == k).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                if inner.sum() > 10:   # the object's own colour where its label is
                    assert np.abs(np.median(frames[j][inner], 0) - COLOURS[k - 1]).max() < 30
            covered = obj1[j] & (labels[j] > 1)
            inner = cv2.erode(covered.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if inner.sum() > 10:     # where a later object covers object 1, the later one shows
                overlaps += 1
                assert np.abs(frames[j][inner].astype(int) - COLOURS[0]).sum(1).min() > 60
    assert overlaps > 0


def test_random_composite_and_warped_clip_of_a_generated_folder(tmp_path):
    root = _fake_static_fg(tmp_path)
    fg = StaticFG(root)
    assert len(fg) == 4
    rgb, mask, ignore = fg.load(0)
    assert rgb.shape[:2] == mask.shape and mask.any() and ignore.any() and not (mask & ignore).any()
    rng = np.random.default_rng(0)
    frames, labels = fg.warped_clip(1, rng, size=(96, 160))
    assert frames.shape == (3, 96, 160, 3) and set(np.unique(labels)) <= {0, 1} and labels[0].any()
    frames, labels, k = random_composite(fg, rng, size=(96, 160))
    assert 1 <= k <= 3 and labels.max() == k and frames.dtype == np.uint8


def test_a_twin_is_the_same_object_on_its_own_path_tracked_or_background():
    """add_twin: one object a second time, the same colours (within the recolouring) and size;
    labelled twins are numbered with the others, unlabelled ones are background that occludes."""
    from scripts.train.static_fg import add_twin
    objects = [_object(c) for c in COLOURS[:2]]
    bg = np.full((120, 200, 3), 128, np.uint8)
    seen = {True: 0, False: 0}
    for seed in range(20):
        rng = np.random.default_rng(seed)
        objs, labelled = add_twin(objects, rng)
        assert len(objs) == 3 and len(labelled) == 3
        twin_at = next(i for i, o in enumerate(objs) if not any(o is p for p in objects))
        rgb, mask = objs[twin_at]
        src = min(objects, key=lambda o: np.abs(o[0][0, 0].astype(int) - rgb[0, 0]).sum())
        assert mask.shape == src[1].shape and mask.sum() == src[1].sum()
        assert np.abs(rgb[mask].astype(int).mean(0) - src[0][src[1]].mean(0)).max() < 0.2 * 255
        frames, labels = composite_clip(objs, bg, rng, n=3, size=(96, 160), background_motion=False,
                                        labelled=labelled)
        k = int(labels.max())
        assert k <= sum(labelled)
        seen[labelled[twin_at]] += 1
        if not labelled[twin_at]:
            # the distractor shows in the frames but never in the labels: pixels of the twin's
            # colour where nothing is labelled
            colour = np.asarray(src[0][0, 0], float)
            near = np.abs(frames[0].astype(float) - colour).sum(-1) < 60
            assert (near & (labels[0] == 0)).sum() > 50 or k < 2
    assert seen[True] > 3 and seen[False] > 3


def test_random_composite_with_twins_and_without(tmp_path):
    fg = StaticFG(_fake_static_fg(tmp_path, n=4))
    counts = []
    for seed in range(40):
        frames, labels, k = random_composite(fg, np.random.default_rng(seed), size=(96, 160), p_twin=1.0)
        assert 1 <= k <= 4 and labels.max() == k and labels[0].any()   # always something to track
        counts.append(k)
    assert max(counts) == 4          # 3 objects and a labelled twin
    # off, the option draws nothing: the clip is the plain composite of the same draws (so the
    # fixed validation clips and earlier runs' streams stay what they were)
    for seed in range(3):
        frames, labels, k = random_composite(fg, np.random.default_rng(seed), size=(96, 160))
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 4))
        ids = rng.choice(len(fg), n + 1, replace=False)
        plain = composite_clip([fg.cutout(int(i)) for i in ids[:n]], fg.load(int(ids[n]))[0], rng,
                               size=(96, 160))
        assert np.array_equal(frames, plain[0]) and np.array_equal(labels, plain[1])


def _fake_static_fg(tmp_path, n=4, validation=0):
    """n photos of the training part and `validation` of the validation part: noise with a
    coloured ellipse object (trimap border 128)."""
    from util.photo_split import is_validation_photo
    root = tmp_path / 'static-fg'
    (root / 'images').mkdir(parents=True)
    (root / 'masks').mkdir()
    rng = np.random.default_rng(0)
    train = [f'obj_{j}' for j in range(200) if not is_validation_photo(f'obj_{j}')][:n]
    held = [f'obj_{j}' for j in range(2000) if is_validation_photo(f'obj_{j}')][:validation]
    for i, name in enumerate(train + held):
        img = rng.integers(0, 255, (80, 120, 3), dtype=np.uint8)
        m = np.zeros((80, 120), np.uint8)
        cv2.ellipse(m, (60, 40), (30 + 3 * i, 20), 15 * i, 0, 360, 255, -1)
        cv2.ellipse(m, (60, 40), (30 + 3 * i, 20), 15 * i, 0, 360, 128, 2)    # trimap border
        img[m == 255] = (200, 50 + 25 * (i % 8), 30)
        cv2.imwrite(str(root / 'images' / f'{name}.jpg'), img)
        cv2.imwrite(str(root / 'masks' / f'{name}.png'), m)
    return root


def test_real_static_fg_folder_loads():
    if not StaticFG.available(DEFAULT_ROOT):
        pytest.skip('../shared/data/static-fg is not available')
    fg = StaticFG(DEFAULT_ROOT)
    assert len(fg) > 1000
    rng = np.random.default_rng(0)
    for i in rng.choice(len(fg), 5, replace=False):
        rgb, mask, _ = fg.load(int(i))
        assert rgb.shape[:2] == mask.shape and 0.01 < mask.mean() < 0.99
    frames, labels, k = random_composite(fg, rng)
    assert frames.shape == (3, 240, 432, 3) and labels.max() == k >= 1


def test_propagation_training_step_on_static_fg_clips(tmp_path):
    from tests.test_training import _write_sequence
    from model.lite_propagation import LiteBackbone
    from scripts.train import train_propagation
    from scripts.train.data import FeatureCache
    data = tmp_path / 'davis'
    _write_sequence(data, 'tiny-a', 0)
    FeatureCache.build(data, tmp_path / 'cache', LiteBackbone())
    root = _fake_static_fg(tmp_path)
    args = ['--data', str(data), '--cache', str(tmp_path / 'cache'), '--runs', str(tmp_path / 'runs'),
            '--name', 's', '--batch', '2', '--crop', '96', '160', '--no-val', '--no-export',
            '--threads', '1', '--iters', '2', '--static-fg', str(root), '--p-static-fg', '1.0']
    assert train_propagation.main(args) == 0
    import torch
    ck = torch.load(tmp_path / 'runs' / 's' / 'last.pt', map_location='cpu', weights_only=False)
    assert ck['iteration'] == 2
    assert Path(tmp_path / 'runs' / 's' / 'last.pt').is_file()


def test_photo_samples_for_the_interaction_network(tmp_path):
    from scripts.train.train_interaction import photo_sample
    fg = StaticFG(_fake_static_fg(tmp_path))
    rng = np.random.default_rng(0)
    for _ in range(4):
        frame, obj, target = photo_sample(fg, rng, (240, 432))
        assert frame.shape == (240, 432, 3) and obj.shape == target.shape == (240, 432)
        assert obj.any() and np.all(target[obj] == 1.0)
        assert np.any(target == 0.5) and not obj[target == 0.5].any()        # the trimap border
        # the object's colour is where its mask is (the photo and the masks are fitted alike)
        assert frame[obj][:, 2].mean() > 150 and frame[target == 0][:, 2].mean() < 150   # blue (BGR 200 on disk)


def test_interaction_training_step_on_static_fg_photos(tmp_path):
    import torch
    from tests.test_training import _write_sequence
    from model.lite_propagation import LiteBackbone
    from scripts.train import train_interaction
    from scripts.train.data import FeatureCache
    data = tmp_path / 'davis'
    _write_sequence(data, 'tiny-a', 0)
    FeatureCache.build(data, tmp_path / 'cache', LiteBackbone())
    root = _fake_static_fg(tmp_path)
    args = ['--data', str(data), '--cache', str(tmp_path / 'cache'), '--runs', str(tmp_path / 'runs'),
            '--name', 'i', '--batch', '3', '--crop', '96', '160', '--no-val', '--no-export',
            '--threads', '1', '--iters', '2', '--static-fg', str(root), '--p-static-fg', '1.0']
    assert train_interaction.main(args) == 0
    ck = torch.load(tmp_path / 'runs' / 'i' / 'last.pt', map_location='cpu', weights_only=False)
    assert ck['iteration'] == 2
    # photo composites, boxes and click sequences on the network's answers, all in one batch
    args[args.index('i')] = 'j'
    assert train_interaction.main(args + ['--p-photo-paste', '0.5', '--p-box', '0.4', '--p-clicks', '1.0',
                                          '--max-clicks', '3']) == 0
    assert torch.load(tmp_path / 'runs' / 'j' / 'last.pt', map_location='cpu',
                      weights_only=False)['iteration'] == 2
    # ... and with the backbone's stride-16 stages tuned (the clicks go through them too)
    args[args.index('j')] = 'k'
    assert train_interaction.main(args + ['--p-clicks', '1.0', '--max-clicks', '3', '--tune-backbone']) == 0


def test_validation_photos_are_kept_out_of_training(tmp_path):
    from scripts.train.static_fg import validation_clips
    root = _fake_static_fg(tmp_path, n=5, validation=4)
    train, held, every = (StaticFG(root, part=p) for p in ('train', 'validation', 'all'))
    assert len(train) == 5 and len(held) == 4 and sorted(train.ids + held.ids) == every.ids
    with pytest.raises(ValueError):
        validation_clips(train)                        # never from photos training uses
    a, b = validation_clips(held, count=3, n=4), validation_clips(held, count=3, n=4)
    assert len(a) == 3
    for (fa, la, ka), (fb, lb, kb) in zip(a, b):       # the same clips every time
        assert ka == kb >= 1 and np.array_equal(fa, fb) and np.array_equal(la, lb)
        assert fa.shape == (4, 240, 432, 3) and la.max() == ka


def test_real_static_fg_split():
    if not StaticFG.available(DEFAULT_ROOT):
        pytest.skip('../shared/data/static-fg is not available')
    held = StaticFG(DEFAULT_ROOT, part='validation')
    assert 50 <= len(held) <= 150 and not set(held.ids) & set(StaticFG(DEFAULT_ROOT).ids)
    assert {i.split('_')[0] for i in held.ids} == {i.split('_')[0] for i in StaticFG(DEFAULT_ROOT).ids}


@pytest.mark.slow
def test_propagation_beats_copying_the_first_mask_on_validation_clips(tmp_path):
    from model.lite_networks import load_bundled
    from scripts.eval_semi_davis import evaluate_clips
    from scripts.train.static_fg import validation_clips
    from util.metrics import evaluate_sequence, summarize
    clips = validation_clips(StaticFG(_fake_static_fg(tmp_path, n=0, validation=6), part='validation'),
                             count=4, n=6)
    prop = load_bundled('weights')[0]
    res = evaluate_clips(prop, clips)
    assert res['sequences'] == 4 and res['objects'] == sum(k for _, _, k in clips)
    copy = summarize([evaluate_sequence(list(lab.astype(np.uint8)), [lab[0].astype(np.uint8)] * len(lab),
                                        object_ids=list(range(1, k + 1))) for _, lab, k in clips])
    assert res['J&F-Mean'] > copy['J&F-Mean'] + 0.1, (res['J&F-Mean'], copy['J&F-Mean'])


@pytest.mark.slow
def test_propagation_training_validates_on_synthetic_clips(tmp_path):
    import json
    from tests.test_training import _write_sequence
    from model.lite_propagation import LiteBackbone
    from scripts.train import train_propagation
    from scripts.train.data import FeatureCache
    data = tmp_path / 'davis'
    _write_sequence(data, 'tiny-a', 0)
    _write_sequence(data, 'bear', 1)                   # a selection sequence for validation
    FeatureCache.build(data, tmp_path / 'cache', LiteBackbone())
    root = _fake_static_fg(tmp_path, n=4, validation=4)
    args = ['--data', str(data), '--cache', str(tmp_path / 'cache'), '--runs', str(tmp_path / 'runs'),
            '--name', 'v', '--batch', '1', '--crop', '96', '160', '--weights', str(tmp_path / 'w'),
            '--threads', '1', '--iters', '1', '--static-fg', str(root), '--p-static-fg', '1.0',
            '--val-composites', '2']
    assert train_propagation.main(args) == 0
    entry = json.loads((tmp_path / 'w' / 'manifest.json').read_text())['files']['propagation_lite.pth']
    val = entry['validation']
    assert val['selection_and_composites_JF'] == pytest.approx((val['semi_JF'] + val['composites_JF']) / 2,
                                                               abs=0.02)

