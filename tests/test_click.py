"""ClickController: click sequences, undo, both backends, merging into the label map."""
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_core.click import (ClickController, click_maps, click_radius, compose_click_labels,
                                  compose_click_probs, positive_seeds)
from inference_core.interaction import seeded_region
from inference_core.fbrs_predictor import FBRSPredictor
from inference_core.padding import pad_divide_by
from model.fbrs_net import FBRSNet
from util.errors import UserError
from util.tensor_util import normalize_frames

REPO = Path(__file__).resolve().parent.parent


def _frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


class _Recorder:
    """Keeps the inputs a real network received (forward pre-hook)."""

    def __init__(self, net):
        self.inputs = []
        net.register_forward_pre_hook(lambda mod, args: self.inputs.append(args[0].detach().clone()))


@pytest.fixture(scope='module')
def s2m():
    from model.s2m_net import S2MNet
    torch.manual_seed(0)
    net = S2MNet().eval()
    return net, _Recorder(net)


# ----------------------------------------------------------------------------- helpers

def test_click_radius_and_maps():
    assert click_radius(480, 854) == 5
    assert click_radius(1080, 1920) == 11
    assert click_radius(60, 80) == 2
    maps = click_maps(40, 50, [(10, 20, True), (45, 5, False)], radius=3)
    assert maps.shape == (2, 40, 50) and maps.dtype == np.float32
    assert maps[0, 20, 10] == 1 and maps[0, 20, 14] == 0 and maps[0, 23, 10] == 1
    assert maps[1, 5, 45] == 1 and maps[0].sum() == 29 and maps[1, 20, 10] == 0


def test_compose_click_result():
    prev = np.zeros((6, 8), np.uint8)
    prev[0:3, 0:4] = 1          # object 1
    prev[3:6, 4:8] = 2          # object 2
    mask = np.zeros((6, 8), np.float32)
    mask[2:5, 2:6] = 1          # new mask of object 2, overlapping object 1 and part of its old area
    labels = compose_click_labels(prev, 2, mask)
    expect = prev.copy()
    expect[prev == 2] = 0
    expect[mask > 0] = 2
    assert np.array_equal(labels, expect)
    probs = compose_click_probs(prev, 2, torch.from_numpy(mask)[None, None], 2)
    assert probs.shape == (3, 1, 6, 8)
    assert np.array_equal(torch.argmax(probs, 0)[0].numpy(), expect)
    assert torch.allclose(probs.sum(0), torch.ones(1, 6, 8))


def test_compose_with_seeds_takes_only_the_pointed_part():
    prev = np.zeros((6, 12), np.uint8)
    prev[0:4, 0:4] = 2          # object 2, part A (clicked)
    prev[0:4, 8:12] = 2         # object 2, part B (not clicked)
    mask = np.zeros((6, 12), np.float32)
    mask[0:5, 0:5] = 1          # object 1's new mask: A and some background
    mask[1:3, 8:10] = 1         # ... and a separate blob inside B
    seeds = positive_seeds(6, 12, [(1, 1, True), (9, 2, False)], radius=0)
    assert seeds.sum() == 1 and seeds[1, 1]
    expect = prev.copy()
    expect[0:5, 0:5] = 1        # A and the background next to it; B untouched
    labels = compose_click_labels(prev, 1, mask, seeds=seeds)
    assert np.array_equal(labels, expect)
    probs = compose_click_probs(prev, 1, torch.from_numpy(mask)[None, None], 2, seeds=seeds)
    assert np.array_equal(torch.argmax(probs, 0)[0].numpy(), expect)
    assert torch.allclose(probs.sum(0), torch.ones(1, 6, 12))
    # no positive click: the object gets background pixels only
    none = positive_seeds(6, 12, [(9, 2, False)])
    labels = compose_click_labels(prev, 1, mask, seeds=none)
    assert (labels[prev == 2] == 2).all() and (labels[(mask > 0) & (prev == 0)] == 1).all()


def test_seeded_region():
    m = np.zeros((5, 9), bool)
    m[0:2, 0:2] = True
    m[3:5, 5:9] = True
    m[2, 2] = True              # touches the first part diagonally (8-connected)
    seeds = np.zeros_like(m)
    seeds[0, 0] = True
    seeds[4, 0] = True          # outside the mask: ignored
    r = seeded_region(m, seeds)
    assert r.sum() == 5 and r[2, 2] and not r[3:].any()
    assert not seeded_region(m, np.zeros_like(m)).any()


# ----------------------------------------------------------------------------- interaction backend

def test_interaction_backend_sequence_and_undo(s2m):
    net, rec = s2m
    h, w = 61, 77                                # pads to 64x80: pad (l, r, t, b) = (1, 2, 1, 2)
    image, pad = pad_divide_by(normalize_frames(_frame(h, w)), 16)
    assert pad == (1, 2, 1, 2)
    labels = np.zeros((h, w), np.uint8)
    labels[10:30, 10:40] = 1
    labels[40:55, 50:70] = 2
    ctrl = ClickController(interaction=net, device='cpu')
    assert ctrl.backend == 'interaction'

    rec.inputs.clear()
    out1 = ctrl.click(image, 20, 15, True, labels, 1, 2, frame=3)
    assert out1.shape == (1, 1, h, w) and out1.dtype == torch.float32
    assert 0 <= out1.min() and out1.max() <= 1
    x = rec.inputs[-1]
    assert x.shape == (1, 6, 64, 80)
    assert torch.equal(x[:, :3], image)
    assert torch.equal(x[0, 3, 1:1 + h, 1:1 + w], torch.from_numpy(labels == 1).float())
    r = click_radius(h, w)
    expect_pos = torch.from_numpy(click_maps(h, w, [(20, 15, True)])[0])
    assert torch.equal(x[0, 4, 1:1 + h, 1:1 + w], expect_pos) and x[0, 4, 16, 21 + r] == 1
    assert x[0, 5].sum() == 0 and x[0, 3:, 0].sum() == 0  # nothing in the padding

    # second click: same base mask (even though the frame's labels changed), both clicks drawn
    changed = compose_click_labels(labels, 1, out1)
    out2 = ctrl.click(image, 60, 5, False, changed, 1, 2, frame=3)
    x = rec.inputs[-1]
    assert torch.equal(x[0, 3, 1:1 + h, 1:1 + w], torch.from_numpy(labels == 1).float())
    assert torch.equal(x[0, 4, 1:1 + h, 1:1 + w], expect_pos)
    assert x[0, 5, 6, 61] == 1 and ctrl.num_clicks == 2
    assert not torch.equal(out1, out2)

    # undo gives back the first result exactly; then nothing
    assert torch.equal(ctrl.undo(), out1)
    assert ctrl.clicks == [(20.0, 15.0, True)]
    assert ctrl.undo() is None and ctrl.undo() is None

    # another object / frame starts a new sequence from the labels passed in
    ctrl.click(image, 20, 15, True, labels, 1, 2, frame=3)
    ctrl.click(image, 55, 45, True, labels, 2, 2, frame=3)
    x = rec.inputs[-1]
    assert ctrl.num_clicks == 1
    assert torch.equal(x[0, 3, 1:1 + h, 1:1 + w], torch.from_numpy(labels == 2).float())
    ctrl.click(image, 55, 45, True, labels, 2, 2, frame=4)
    assert ctrl.num_clicks == 1
    other, _ = pad_divide_by(normalize_frames(_frame(h, w, seed=1)), 16)
    ctrl.click(other, 5, 5, False, labels, 2, 2, frame=4)
    assert ctrl.num_clicks == 1                  # same index, different image
    ctrl.click(other, 6, 6, False, labels, 2, 2, frame=4)
    assert ctrl.num_clicks == 2
    ctrl.reset()
    assert ctrl.num_clicks == 0 and ctrl.undo() is None


def test_interaction_backend_redo(s2m):
    net, rec = s2m
    h, w = 48, 64
    image, _ = pad_divide_by(normalize_frames(_frame(h, w)), 16)
    labels = np.zeros((h, w), np.uint8)
    labels[10:30, 10:40] = 1
    ctrl = ClickController(interaction=net, device='cpu')
    outs = [ctrl.click(image, *c, labels, 1, 1, frame=0) for c in ((20, 15, True), (50, 40, False))]
    assert ctrl.redo() is None and ctrl.num_redo == 0
    assert torch.equal(ctrl.undo(), outs[0]) and ctrl.undo() is None and ctrl.num_redo == 2
    n_calls = len(rec.inputs)
    assert torch.equal(ctrl.redo(), outs[0]) and ctrl.clicks == [(20.0, 15.0, True)]
    assert torch.equal(ctrl.redo(), outs[1]) and ctrl.num_clicks == 2 and ctrl.redo() is None
    assert len(rec.inputs) == n_calls                # nothing recomputed
    assert torch.equal(ctrl.result, outs[1])
    # the sequence goes on as if nothing had been undone; a new click drops the redo side
    ctrl.undo()
    out3 = ctrl.click(image, 30, 20, True, labels, 1, 1, frame=0)
    assert ctrl.num_redo == 0 and ctrl.clicks == [(20.0, 15.0, True), (30.0, 20.0, True)]
    assert not torch.equal(out3, outs[1])
    ctrl.undo()
    ctrl.reset()
    assert ctrl.num_redo == 0 and ctrl.redo() is None


def test_session_call_form_and_errors(s2m):
    net, _ = s2m
    h, w = 48, 64
    image, pad = pad_divide_by(normalize_frames(_frame(h, w)), 16)
    labels = np.zeros((h, w), np.uint8)
    a = ClickController(interaction=net, device='cpu').click(image, 30, 20, True, labels, 1, 1)
    b = ClickController(interaction=net, device='cpu').click(0, 1, 30.0, 20.0, True, image=image, pad=pad,
                                                           labels=labels, rgb=_frame(h, w))
    assert torch.equal(a, b)
    ctrl = ClickController(interaction=net, device='cpu')
    with pytest.raises(UserError, match='outside'):
        ctrl.click(image, 64, 20, True, labels, 1, 1)
    with pytest.raises(UserError, match='object 3'):
        ctrl.click(image, 1, 1, True, labels, 3, 2)
    with pytest.raises(UserError, match='object 0'):
        ctrl.click(image, 1, 1, True, labels, 0, 2)
    with pytest.raises(ValueError, match='padded size'):
        ctrl.click(image, 1, 1, True, np.zeros((30, 64), np.uint8), 1, 1)
    assert ctrl.num_clicks == 0
    with pytest.raises(UserError, match='f-BRS'):
        ClickController()


# ----------------------------------------------------------------------------- f-BRS backend

def test_fbrs_backend_offsets_clicks_by_the_padding():
    torch.manual_seed(0)
    net = FBRSNet().eval()
    h, w = 90, 120                               # pads to 96x128 with pad (4, 4, 3, 3)
    image, pad = pad_divide_by(normalize_frames(_frame(h, w)), 16)
    ctrl = ClickController(click_model=net, device='cpu')
    assert ctrl.backend == 'fbrs'
    mask = ctrl.click(image, 50, 40, True, np.zeros((h, w), np.uint8), 1, 1)
    assert mask.shape == (1, 1, h, w)
    assert set(np.unique(mask.numpy())) <= {0.0, 1.0}
    ref = FBRSPredictor(net, 'cpu')
    ref.set_image(image)
    prob = ref.add_click(40 + pad[2], 50 + pad[0], True)
    assert torch.equal(ctrl.last_prob, prob)
    assert torch.equal(mask, (prob > 0.5).float()[..., 3:3 + h, 4:4 + w])
    assert ctrl.predictor.clicks[0].row == 43 and ctrl.predictor.clicks[0].col == 54
    assert ctrl.undo() is None and ctrl.predictor.num_clicks == 0


def test_fbrs_redo_restores_the_optimiser_state():
    """f-BRS keeps per-click L-BFGS / zoom state: undo then redo must leave the predictor exactly
    where it was, so the next click gives what it gives without the undo."""
    torch.manual_seed(0)
    net = FBRSNet().eval()
    h, w = 64, 80
    image, pad = pad_divide_by(normalize_frames(_frame(h, w, seed=2)), 16)
    empty = np.zeros((h, w), np.uint8)
    clicks = [(30, 25, True), (60, 50, False), (35, 30, True)]
    # small zoom target, no flip, few L-BFGS steps: the same state machinery at a fraction of the cost
    params = {'lbfgs_params': {'maxfun': 3}, 'zoom_target_size': 64, 'with_flip': False}
    ctrl = ClickController(click_model=net, device='cpu', fbrs_params=params)
    for c in clicks[:2]:
        ctrl.click(image, *c, empty, 1, 1)
    assert ctrl.predictor.opt_data is not None and ctrl.predictor.zoom_roi is not None
    after_two = (list(ctrl.predictor.clicks), ctrl.predictor.opt_data.copy(), ctrl.last_prob.clone())
    ctrl.undo()
    assert ctrl.predictor.num_clicks == 1 and ctrl.num_redo == 1
    ctrl.redo()
    p = ctrl.predictor
    assert p.clicks == after_two[0] and np.array_equal(p.opt_data, after_two[1])
    assert torch.equal(ctrl.last_prob, after_two[2]) and p.redo() is None
    got = ctrl.click(image, *clicks[2], empty, 1, 1)
    ref = ClickController(click_model=net, device='cpu', fbrs_params=params)
    for c in clicks:
        want = ref.click(image, *c, empty, 1, 1)
    assert torch.equal(got, want)


# ----------------------------------------------------------------------------- bundled network (DAVIS)

def _bundled_interaction():
    try:
        from model.lite_networks import FILES, load_bundled
    except ImportError as e:
        pytest.skip(f'bundled networks not available yet (model.lite_networks: {e})')
    wdir = REPO / 'weights'
    if not (wdir / FILES['interaction']).is_file():
        pytest.skip(f'no bundled interaction weights yet (weights/{FILES["interaction"]})')
    _, _, net = load_bundled(str(wdir), 'cpu')
    return net.eval()


def _davis_frame(davis16, seq):
    import cv2
    cap = cv2.VideoCapture(str(davis16 / 'videos' / f'{seq}.mp4'))
    ok, bgr = cap.read()
    cap.release()
    assert ok, seq
    gt = cv2.imread(str(davis16 / 'masks' / seq / '00000.png'), cv2.IMREAD_GRAYSCALE) > 127
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), gt


def _deepest_point(region):
    """(x, y) of the pixel of `region` farthest from its border."""
    import cv2
    dist = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y), float(dist[y, x])


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.fixture(scope='module')
def bundled(davis16):
    return _bundled_interaction()


@pytest.mark.parametrize('seq', ['bear', 'car-turn'])
def test_bundled_positive_click_covers_object(bundled, davis16, seq):
    rgb, gt = _davis_frame(davis16, seq)
    image, _ = pad_divide_by(normalize_frames(rgb), 16)
    x, y, _ = _deepest_point(gt)
    ctrl = ClickController(interaction=bundled, device='cpu')
    mask = ctrl.click(image, x, y, True, np.zeros(gt.shape, np.uint8), 1, 1, frame=0)[0, 0].numpy() > 0.5
    assert mask[y, x]
    assert _iou(mask, gt) >= 0.5, f'{seq}: IoU {_iou(mask, gt):.3f}'


def test_bundled_negative_click_removes_false_region_and_undo(bundled, davis16):
    rgb, gt = _davis_frame(davis16, 'bear')
    h, w = gt.shape
    image, _ = pad_divide_by(normalize_frames(rgb), 16)
    # a false blob in the background, as far from the bear and the borders as possible
    bg = ~gt
    bg[:40], bg[-40:], bg[:, :40], bg[:, -40:] = False, False, False, False
    bx, by, depth = _deepest_point(bg)
    assert depth > 40
    yy, xx = np.mgrid[0:h, 0:w]
    blob = (yy - by) ** 2 + (xx - bx) ** 2 <= 30 ** 2
    prev = (gt | blob).astype(np.uint8)

    ctrl = ClickController(interaction=bundled, device='cpu')
    out = ctrl.click(image, bx, by, False, prev, 1, 1, frame=0)
    mask = out[0, 0].numpy() > 0.5
    assert mask[blob].mean() <= 0.3, f'false region kept: {mask[blob].mean():.2f}'
    assert _iou(mask, gt) >= 0.6, f'object lost: IoU {_iou(mask, gt):.3f}'

    # undo: a positive click on the object, a negative one next to it, undo -> first result again
    ctrl.reset()
    x, y, _ = _deepest_point(gt)
    first = ctrl.click(image, x, y, True, np.zeros_like(prev), 1, 1, frame=0)
    ctrl.click(image, bx, by, False, compose_click_labels(np.zeros_like(prev), 1, first), 1, 1, frame=0)
    assert torch.equal(ctrl.undo(), first)
    assert ctrl.undo() is None
