"""Box prompts (Session.add_box, inference_core/box_prompt.py): box -> mask on a generated image
with the bundled networks (skips without them), the box's strokes, undo / redo through the one
history, clicks refining a box's mask, and bad boxes."""
import sys

import numpy as np
import pytest

from inference_core.box_prompt import box_strokes, check_box, crop_for_box
from inference_core.interaction import NO_SCRIBBLE
from tests.conftest import REPO
from util.errors import UserError


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.fixture(scope='module')
def scene():
    """A generated frame (240 x 427): two textured objects (a cat's head, a cup) over a photo,
    and their ground truth (example/make_example.py, first frame)."""
    sys.path.insert(0, str(REPO / 'example'))
    from make_example import render
    rgb, labels = next(iter(render(num_frames=5, height=240, width=427)))
    return rgb, labels


@pytest.fixture
def session(lite, scene):
    from inference_core.session import Session
    s = Session.from_frames(scene[0][None], storage='memory', num_objects=2, networks=lite)
    yield s
    s.close()


# ---------------------------------------------------------------------------------- geometry
def test_check_box_orders_clips_and_refuses_empty_boxes():
    assert check_box((50.4, 40, 10.2, 5.9), 100, 80) == (10, 5, 51, 40)
    assert check_box((-20, -5, 300, 500), 100, 80) == (0, 0, 80, 100)
    for bad in ((5, 5, 6, 40), (90, 10, 120, 40), (1, 2, 3), 'abcd', (0, 0, float('nan'), 9)):
        with pytest.raises(UserError):
            check_box(bad, 100, 80)


def test_crop_holds_the_box_with_context_and_the_frames_aspect():
    H, W = 240, 427
    box = (100, 80, 140, 120)                        # 40 x 40
    x0, y0, x1, y1 = crop_for_box(box, H, W)
    assert x0 <= 100 and y0 <= 80 and x1 >= 140 and y1 >= 120
    assert (x1 - x0) / (y1 - y0) == pytest.approx(W / H, rel=0.05)
    assert y1 - y0 >= 1.4 * 40 - 1
    assert crop_for_box((0, 0, W, H), H, W) == (0, 0, W, H)     # no more than the frame


def test_box_strokes_positive_centre_negative_outside_not_on_the_frames_border():
    h, w = 200, 300
    box = (100.0, 50.0, 200.0, 150.0)
    scr = box_strokes(h, w, box)
    pos, neg = scr == 1, scr == 0
    ys, xs = np.nonzero(pos)
    assert abs(xs.mean() - 149.5) < 1 and abs(ys.mean() - 99.5) < 1 and pos.sum() < 200
    inside = np.zeros((h, w), bool)
    inside[50:150, 100:200] = True
    assert neg.any() and not (neg & inside).any()
    ys, xs = np.nonzero(neg)                         # all four sides, close to the box
    assert xs.min() >= 90 and xs.max() <= 210 and ys.min() >= 40 and ys.max() <= 160
    assert xs.min() < 100 and xs.max() >= 200 and ys.min() < 50 and ys.max() >= 150
    # a box on the frame's left edge: no negative stroke on that side
    scr = box_strokes(h, w, (0.0, 50.0, 100.0, 150.0), on_border={'left'})
    assert not (scr[60:140, :5] == 0).any() and (scr[60:140, 100:115] == 0).any()
    assert (scr != NO_SCRIBBLE).sum() == ((scr == 0) | (scr == 1)).sum()


# ---------------------------------------------------------------------------------- Session
def test_box_segments_a_clear_object(session, scene):
    _, gt = scene
    for k in (1, 2):
        box = _bbox(gt == k)
        labels = session.add_box(0, k, box)
        assert _iou(labels == k, gt == k) > 0.9, k
        x0, y0, x1, y1 = box
        outside = np.ones(gt.shape, bool)
        outside[y0:y1, x0:x1] = False
        assert not (labels[outside] == k).any()          # nothing of it outside the box
    labels = session.get_mask(0)
    assert _iou(labels == 1, gt == 1) > 0.9 and _iou(labels == 2, gt == 2) > 0.9
    assert session.edited_frames == [0] and sorted(session._pending.frames) == [0]
    assert session._soft_probabilities(0) is not None


def test_a_box_runs_the_bundled_net_at_one_size_and_strokes_after_it_at_two(session, scene, lite):
    """A new box needs its crop's backbone maps, so the bundled net segments it at one size
    (BOX_SHORTS: half the maps of the two sizes strokes average); the frame's next stroke
    computes the frame's maps at both sizes again."""
    from inference_core.box_prompt import BOX_SHORTS
    net = lite.interaction
    calls = []
    real = net.image_features

    def counted(image, shorts=None):
        feats = real(image, shorts)
        calls.append(len(feats))
        return feats
    net.image_features = counted
    try:
        _, gt = scene
        session.add_box(0, 1, _bbox(gt == 1))
        assert calls == [len(BOX_SHORTS)] == [1]
        ys, xs = np.nonzero(gt == 2)
        session.scribble(0, 2, positive=[[(float(xs.min() + 5), float(ys.mean())),
                                          (float(xs.max() - 5), float(ys.mean()))]])
        assert calls == [1, len(net.processing_sizes(*gt.shape))] and calls[1] == 2
    finally:
        del net.image_features


def test_box_replaces_the_objects_mask_and_undo_redo_restore(session, scene):
    _, gt = scene
    stray = np.zeros(gt.shape, bool)
    stray[2:12, 2:12] = True                         # object 1 painted far from its box
    painted = session.paint(0, 1, stray)
    boxed = session.add_box(0, 1, _bbox(gt == 1))
    assert not (boxed[2:12, 2:12] == 1).any()        # the box is the object's new mask
    assert session.can_undo
    changed = session.undo()
    assert changed == [0] and np.array_equal(session.get_mask(0), painted)
    session.redo()
    assert np.array_equal(session.get_mask(0), boxed)
    session.undo()
    session.undo()
    assert not session.get_mask(0).any() and session.edited_frames == []


def test_clicks_after_a_box_refine_it_in_one_history(session, scene):
    _, gt = scene
    boxed = session.add_box(0, 1, _bbox(gt == 1))
    # a negative click in the middle of the object: the mask must change
    ys, xs = np.nonzero(boxed == 1)
    x, y = int(np.median(xs)), int(np.median(ys))
    clicked = session.click(0, 1, x, y, positive=False)
    assert not np.array_equal(clicked, boxed)
    assert (clicked == 1).sum() < (boxed == 1).sum()
    session.undo()
    assert np.array_equal(session.get_mask(0), boxed)
    session.undo()
    assert not session.get_mask(0).any()


def test_box_keeps_other_objects_outside_the_boxed_object(session, scene):
    _, gt = scene
    session.add_box(0, 2, _bbox(gt == 2))
    before = session.get_mask(0)
    after = session.add_box(0, 1, _bbox(gt == 1))
    # object 2 loses pixels only to object 1's new mask
    lost = (before == 2) & (after != 2)
    assert (after[lost] == 1).all()
    assert (after == 2).sum() >= 0.8 * (before == 2).sum()


def test_bad_boxes_are_user_errors_and_change_nothing(session):
    with pytest.raises(UserError, match='box'):
        session.add_box(0, 1, (10, 10, 11, 40))
    with pytest.raises(UserError, match='box'):
        session.add_box(0, 1, (5000, 10, 6000, 40))
    with pytest.raises(UserError):
        session.add_box(0, 3, (10, 10, 50, 50))      # no object 3
    with pytest.raises(UserError):
        session.add_box(1, 1, (10, 10, 50, 50))      # no frame 1
    assert not session.get_mask(0).any() and not session.can_undo
