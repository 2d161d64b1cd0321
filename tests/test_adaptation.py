"""Online adaptation (inference_core/adaptation.py): the adapted copy, its effect on the annotated
frame, the engine's network swap, Session.adapt and `scripts.propagate --adapt`."""
import json

import numpy as np
import pytest
import torch

from inference_core.adaptation import adapt_propagation, supports_adaptation, synthesise_clips
from inference_core.session import Session
from inference_core.store import FrameStore
from model.lite_propagation import LitePropagationNet
from tests.test_engine import bundled_networks_or_skip, make_clip, official_random_networks
from util.errors import UserError


@pytest.fixture(scope='module')
def lite():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield LitePropagationNet(pretrained=False).eval()
    torch.set_num_threads(threads)


def _two_objects(h=96, w=128):
    frames, gt = make_clip(num_frames=1, height=h, width=w, radius=(18, 12))
    lab = gt[0].copy()
    lab[10:30, 90:115] = 2                     # a second object: a rectangle
    img = frames[0].copy()
    img[10:30, 90:115] = (30, 200, 60)
    return img, lab


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_synthesised_clips_keep_the_objects():
    img, lab = _two_objects()
    clips = synthesise_clips([(img, lab)], (64, 96), 4, np.random.default_rng(0))
    assert len(clips) == 4
    for c, (frames, labels) in enumerate(clips):
        assert frames.shape == (3, 64, 96, 3) and frames.dtype == np.uint8
        assert labels.shape == (3, 64, 96) and labels.dtype == torch.int64
        for j in range(3):
            assert set(torch.unique(labels[j]).tolist()) == {0, 1, 2}, (c, j)
    # even clips keep the annotated frame itself as the memory frame, odd ones warp it too
    import cv2
    small = cv2.resize(lab, (96, 64), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(clips[0][1][0].numpy(), small)
    assert not np.array_equal(clips[1][1][0].numpy(), small)


def test_adapt_returns_a_trained_copy(lite):
    img, lab = _two_objects()
    before = _state(lite)
    steps = []
    with torch.inference_mode():          # callers may hold inference mode: autograd still works
        a = adapt_propagation(lite, [(img, lab)], iters=3, clips=2, progress=lambda d, t: steps.append((d, t)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    after = lite.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), 'the base network changed'
    assert a is not lite and a.backbone is lite.backbone and not a.training
    assert not any(p.requires_grad for p in a.trainable_parameters())
    changed = [k for k, v in a.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(not k.startswith('backbone.') for k in changed)
    assert any(k.startswith('decoder.') for k in changed) and any(k.startswith('key_proj.') for k in changed)
    b = adapt_propagation(lite, [(img, lab)], iters=3, clips=2)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items()), 'not deterministic'


def test_adapt_cancel_and_user_errors(lite):
    img, lab = _two_objects()
    calls = []
    assert adapt_propagation(lite, [(img, lab)], iters=5, clips=2, progress=lambda d, t: calls.append(d),
                             should_cancel=lambda: len(calls) >= 2) is None
    assert calls == [1, 2]
    with pytest.raises(UserError, match='bundled'):
        adapt_propagation(official_random_networks().propagation, [(img, lab)], iters=1)
    with pytest.raises(UserError, match='at least one object'):
        adapt_propagation(lite, [(img, np.zeros_like(lab))], iters=1)
    with pytest.raises(UserError, match='annotated frame'):
        adapt_propagation(lite, [], iters=1)
    with pytest.raises(UserError, match='>= 1'):
        adapt_propagation(lite, [(img, lab)], iters=0)
    assert supports_adaptation(lite) and not supports_adaptation(official_random_networks().propagation)


def test_adaptation_fits_the_annotated_object_better():
    """With the shipped weights: after adapting to frame 0 of a clip, the network's loss on new
    random warps of that frame is lower than the shipped network's, and propagating with it
    still tracks the object."""
    from model.propagation_loss import clip_loss
    from tests.test_lite_networks import _synthetic_clip
    nets = bundled_networks_or_skip()
    torch.set_num_threads(1)
    base = nets.propagation
    frames, labels = _synthetic_clip()
    adapted = adapt_propagation(base, [(frames[0], labels[0])], iters=30, lr=3e-5)

    def loss(net):
        rng = np.random.default_rng(123)     # clips the adaptation never saw
        from model.lite_propagation import backbone_maps
        total = 0.0
        with torch.no_grad():
            for fr, lab in synthesise_clips([(frames[0], labels[0])], (192, 320), 4, rng):
                total += float(clip_loss(net, backbone_maps(net.backbone, fr), lab, 1, 0, 0)[0])
        return total

    la, lb = loss(adapted), loss(base)
    assert la < 0.9 * lb, (la, lb)
    from scripts.eval_semi_davis import propagate_sequence
    from util.metrics import jaccard
    pred = propagate_sequence(adapted, frames, labels[0])
    assert np.mean([jaccard(labels[t] == 1, pred[t] == 1) for t in range(1, len(frames))]) > 0.55


def test_session_adapt_propagate_and_reset():
    nets = bundled_networks_or_skip()
    torch.set_num_threads(1)
    frames, gt = make_clip(num_frames=10, height=240, width=320, radius=(40, 28), speed=(8, 2))
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(1)
    s = Session(store, nets)
    assert s.can_adapt and s.adapted_frames == ()
    with pytest.raises(UserError, match='draw or load a mask'):
        s.adapt(iters=2)
    s.set_labels(0, gt[0])
    assert s.propagate()
    key_before = s._engine.memory.permanent[0].key.clone()
    assert s.adapt(iters=5)
    assert s.adapted_frames == (0,) and s._engine.prop_net is not nets.propagation
    # the memory was re-encoded by the adapted network
    with torch.inference_mode():
        k16 = s._engine.prop_net.encode_key(s._engine._image(0))[0]
    assert torch.allclose(s._engine.memory.permanent[0].key, k16.unsqueeze(2))
    assert not torch.allclose(key_before, k16.unsqueeze(2))
    assert s.propagate(0)

    def iou(t):
        m = s.get_mask(t) == 1
        return (m & (gt[t] == 1)).sum() / max(1, (m | (gt[t] == 1)).sum())

    assert min(iou(t) for t in range(1, 10)) > 0.7
    assert s.adapt(iters=5, should_cancel=lambda: True) is False
    assert s.adapted_frames == (0,)
    s.reset_adaptation()
    assert s.adapted_frames == () and s._engine.prop_net is nets.propagation
    assert torch.allclose(s._engine.memory.permanent[0].key, key_before)


def test_session_adapt_needs_the_bundled_network():
    frames, gt = make_clip(num_frames=3)
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(1)
    s = Session(store, official_random_networks())
    s.set_labels(0, gt[0])
    assert not s.can_adapt
    with pytest.raises(UserError, match='bundled'):
        s.adapt()


def test_propagate_cli_adapt(tmp_path):
    from scripts import propagate
    from tests.test_propagate_cli import make_clip as cli_clip
    from tests.test_propagate_cli import save_frames, save_png
    frames, labels = cli_clip(n=4, h=64, w=96)
    save_frames(tmp_path / 'frames', frames)
    save_png(str(tmp_path / 'masks' / '00000.png'), labels[0])
    args = ['--input', tmp_path / 'frames', '--masks', tmp_path / 'masks', '--quiet']
    from inference_core.adaptation import DEFAULT_ITERS
    parsed = propagate.build_parser().parse_args([*map(str, args), '--output', 'x', '--adapt'])
    assert parsed.adapt == DEFAULT_ITERS
    with pytest.raises(UserError, match='--adapt must be'):
        propagate.main([*map(str, args), '--output', str(tmp_path / 'bad'), '--adapt', '-1'],
                       networks=official_random_networks())
    with pytest.raises(UserError, match='needs the bundled networks'):
        propagate.main([*map(str, args), '--output', str(tmp_path / 'official'), '--adapt', '2'],
                       networks=official_random_networks())
    nets = bundled_networks_or_skip()
    torch.set_num_threads(1)
    out = tmp_path / 'out'
    assert propagate.main([*map(str, args), '--output', str(out), '--adapt', '3'], networks=nets) == 0
    assert len(list(out.glob('*.png'))) == 4
    marker = json.loads((out / propagate.MARKER).read_text())
    assert marker['settings']['adapt'] == 3
    assert marker['run']['adapt_s'] > 0 and marker['run']['propagate_s'] > 0
