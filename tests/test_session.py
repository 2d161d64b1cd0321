"""Session: interactions, propagation bookkeeping, undo/redo, threading, opening from disk.

Mechanics run the official architectures with seeded random weights on small generated clips;
segmentation quality checks use the bundled networks and skip while weights/ lacks them.
"""
import threading

import cv2
import numpy as np
import pytest
import torch

from inference_core.history import Action, History
from inference_core.interaction import brush_disk, paint_labels, stroke_mask
from inference_core.networks import Networks
from inference_core.session import Session
from inference_core.store import FrameStore
from tests.test_engine import bundled_networks_or_skip, make_clip, official_random_networks
from util.errors import UserError


@pytest.fixture(scope='module')
def nets():
    torch.set_num_threads(1)     # see tests/test_engine.py
    return official_random_networks()


def _session(nets, num_frames=8, num_objects=1, **kw):
    frames, gt = make_clip(num_frames=num_frames)
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(num_objects)
    return Session(store, nets, **kw), gt


def _all(s):
    return np.stack([s.get_mask(t) for t in range(s.num_frames)])


# ------------------------------------------------------------------ drawing helpers
def test_stroke_and_paint_helpers():
    m = stroke_mask(20, 30, [(2, 2), (20, 2)], 3)
    assert m[2, 2:21].all() and m[1, 10] and m[3, 10] and not m[6, 10]
    dot = stroke_mask(20, 30, [(10, 10)], 5)
    assert dot[10, 10] and dot[10, 12] and not dot[10, 14]
    two = stroke_mask(20, 30, [[(0, 0), (5, 0)], [(0, 19), (5, 19)]], 1)
    assert two[0, 3] and two[19, 3] and two.sum() == 12
    disk = brush_disk(20, 30, 15, 10, 4)
    assert disk[10, 15] and disk[10, 19] and not disk[10, 20]
    lab = np.zeros((20, 30), np.uint8)
    lab[:, :10] = 2
    out = paint_labels(lab, 1, disk)
    assert (out[disk] == 1).all() and (out[:, :10] == 2).all()
    assert not paint_labels(out, 1, disk, erase=True)[disk].any()
    assert (paint_labels(lab, 1, np.ones_like(disk), erase=True) == lab).all()   # other object kept
    assert not paint_labels(lab, 0, np.ones_like(disk), erase=True).any()        # erase all
    with pytest.raises(UserError):
        stroke_mask(20, 30, [[1, 2, 3]], 3)


def test_history_budget_and_swap():
    store = FrameStore(np.zeros((3, 16, 16, 3), np.uint8), storage='memory')
    store.ensure_objects(1)
    h = History(max_bytes=1)
    for i in range(3):
        a = Action(f'a{i}', (16, 16))
        a.capture(0, store.get_mask(0), False)
        store.set_mask(0, np.full((16, 16), i % 2, np.uint8), edited=True)
        h.push(a)
    assert h.can_undo and len(h._undo) == 1          # only the newest survives a tiny budget
    a = h.pop_undo()
    changed, _ = a.swap(store, None)
    assert changed == [0] and (store.get_mask(0) == 1).all()    # the state before the last push
    a.swap(store, None)                                              # and back (redo)
    assert not store.get_mask(0).any() and 0 in store.edited_frames


# ------------------------------------------------------------------ interactions
def test_paint_set_and_reset_are_undoable(nets):
    s, gt = _session(nets)
    states = [_all(s)]
    s.paint(2, 1, gt[2] > 0)
    states.append(_all(s))
    assert np.array_equal(s.get_mask(2), gt[2])
    assert 2 in s.store.edited_frames and s.pending_frames == [2]
    s.paint(2, 1, [[(0, 0), (40, 0)]], erase=True, brush=5)
    states.append(_all(s))
    assert not s.get_mask(2)[:2].any()
    s.add_object()
    s.set_object_mask(2, 2, brush_disk(64, 96, 80, 50, 6))
    states.append(_all(s))
    s.set_labels(3, gt[3] * 2)
    states.append(_all(s))
    s.reset_frame(2)
    states.append(_all(s))
    assert not s.get_mask(2).any() and 2 not in s.store.edited_frames
    assert s.interacted_frames == [3]

    for want in reversed(states[:-1]):
        assert s.undo()
        assert np.array_equal(_all(s), want)
    assert s.undo() == [] and not s.can_undo
    for want in states[1:]:
        assert s.redo()
        assert np.array_equal(_all(s), want)
    assert s.redo() == []


def test_user_errors(nets):
    s, gt = _session(nets)
    with pytest.raises(UserError, match='out of range'):
        s.paint(8, 1, gt[0] > 0)
    with pytest.raises(UserError, match='no object'):
        s.paint(0, 2, gt[0] > 0)
    with pytest.raises(UserError):
        s.set_labels(0, gt[0][:, :10])
    with pytest.raises(UserError, match='objects'):
        s.set_labels(0, gt[0] * 5)
    with pytest.raises(UserError, match='empty scribble'):
        s.scribble(0, 1, positive=[[(-50, -50), (-40, -40)]])
    with pytest.raises(UserError, match='nothing to propagate'):
        s.propagate()
    with pytest.raises(UserError):
        s.paint(0, 1, np.ones((10, 10), bool))
    empty = Session(FrameStore(np.zeros((2, 32, 32, 3), np.uint8), storage='memory'), nets)
    with pytest.raises(UserError, match='add an object'):
        empty.paint(0, 1, np.ones((32, 32), bool))


def test_scribble_runs_s2m_and_accumulates(nets):
    s, gt = _session(nets, num_objects=2)
    before = s.get_mask(1)
    labels = s.scribble(1, 1, positive=[[(20, 30), (40, 32)]], brush=3)
    assert np.array_equal(labels, s.get_mask(1)) and s.pending_frames == [1]
    st = s._scr
    assert st.frame == 1 and np.array_equal(st.prev_labels, before)
    assert (st.scribbles == 1).sum() > 0 and (st.scribbles == 255).sum() > 0
    # the result is the controller's hard aggregation of the S2M outputs
    image, pad = s._image(1)
    from inference_core.padding import pad_divide_by, unpad
    prev = pad_divide_by(torch.from_numpy(before)[None, None], 16)[0][0, 0].numpy()
    want = unpad(s.scribbler.predict(image, prev, st.scribbles, 2), pad).argmax(0)[0].numpy()
    assert np.array_equal(labels, want)
    # a second stroke adds to the same canvas, from the same starting mask
    s.scribble(1, 2, negative=[[(60, 10), (70, 12)]])
    assert s._scr is st and (st.scribbles == 0).sum() > 0 and (st.scribbles == 1).sum() > 0
    # something else changes the frame: a new canvas starts from the new labels
    painted = s.paint(1, 1, gt[1] > 0)
    s.scribble(1, 1, positive=[[(20, 30), (22, 30)]])
    assert s._scr is not st and np.array_equal(s._scr.prev_labels, painted)
    assert s._scr.frame == 1 and (s._scr.scribbles == 0).sum() == 0
    # MiVOS 'commit': the next stroke starts a new interaction from the current mask
    st2 = s._scr
    s.end_interaction(1)
    s.scribble(1, 1, positive=[[(30, 30), (32, 30)]])
    assert s._scr is not st2 and np.array_equal(s._scr.prev_labels, st2.labels_after)
    # the soft S2M result is what gets committed
    assert s._mask_for(1).shape == (3, 1, 64, 96)
    s.undo()
    assert np.array_equal(s._mask_for(1), s.get_mask(1))      # labels changed: plain labels


def test_click_uses_interaction_net_without_fbrs(nets):
    s, gt = _session(nets)
    labels = s.click(3, 1, 40, 30, positive=True)
    assert np.array_equal(labels, s.get_mask(3)) and s.pending_frames == [3]
    assert s._click.backend == 'interaction' and s._click.num_clicks == 1
    s.click(3, 1, 10, 10, positive=False)
    assert s._click.num_clicks == 2                             # clicks accumulate
    s.paint(3, 1, gt[3] > 0)                                    # another tool: new sequence
    s.click(3, 1, 40, 30)
    assert s._click.num_clicks == 1
    with pytest.raises(UserError):
        s.click(3, 1, 500, 30)


# ------------------------------------------------------------------ propagation
def test_propagate_commits_pending_frames_and_fuses(nets):
    s, gt = _session(nets, num_frames=10)
    written = []
    s.store.add_listener(lambda fr: written.extend(fr))
    s.paint(2, 1, gt[2] > 0)
    s.paint(8, 1, gt[8] > 0)
    written.clear()
    assert s.propagate() is True                                # from the last interacted frame
    assert sorted(s.engine.interacted) == [2, 8] and s.pending_frames == []
    assert set(written) == {3, 4, 5, 6, 7, 9}                   # backward stops before frame 2
    assert not set(written) & {0, 1}
    assert np.array_equal(s.get_mask(2), gt[2]) and np.array_equal(s.get_mask(8), gt[8])
    assert {2, 8} <= s.store.edited_frames and not {3, 9} & s.store.edited_frames

    prop_state = _all(s)
    assert s.undo()                                             # undo the propagation
    assert not _all(s)[[3, 4, 5, 6, 7, 9]].any()
    assert s.pending_frames == [2, 8] and not s.engine.interacted
    assert s.redo()
    assert np.array_equal(_all(s), prop_state)
    # frames that were committed in the redone state are re-committed by the next propagate
    assert s.pending_frames == [2, 8]
    written.clear()
    assert s.propagate(2, direction='backward')
    assert set(written) == {0, 1} and sorted(s.engine.interacted) == [2, 8]


def test_cancel_and_busy_from_worker_thread(nets):
    s, gt = _session(nets, num_frames=10)
    s.paint(0, 1, gt[0] > 0)
    started, release = threading.Event(), threading.Event()
    done_frames = []
    result = {}

    def should_cancel():
        if len(done_frames) >= 2:
            started.set()
            release.wait(30)
            return True
        return False

    def worker():
        result['ok'] = s.propagate(progress=lambda d, t: done_frames.append(d),
                                   should_cancel=should_cancel)

    th = threading.Thread(target=worker)
    th.start()
    assert started.wait(60)
    assert s.busy
    with pytest.raises(UserError, match='propagation is running'):
        s.paint(5, 1, gt[5] > 0)
    with pytest.raises(UserError):
        s.undo()
    assert s.get_mask(1).shape == (64, 96)                      # reads work meanwhile
    release.set()
    th.join(60)
    assert result['ok'] is False and not s.busy
    masks = _all(s)
    assert masks[1:3].any() and not masks[3:].any()             # each frame old or new
    assert s.propagate() is True
    assert s.undo() and np.array_equal(_all(s), masks)


def test_remove_object_clears_history_and_keeps_engine_in_sync(nets):
    s, gt = _session(nets, num_objects=2)
    lab = gt[0].copy()
    lab[cv2.dilate(gt[0], np.ones((3, 3), np.uint8)) == 0] = 0
    lab[50:60, 80:90] = 2
    s.set_labels(0, lab)
    assert s.propagate()
    s.remove_object(1)
    assert s.num_objects == 1 and not s.can_undo
    assert set(np.unique(_all(s))) <= {0, 1}
    assert (s.get_mask(0)[50:60, 80:90] == 1).all()
    assert s.propagate(0)
    obj = s.add_object()
    s.paint(4, obj, gt[4] > 0)
    assert s.propagate()
    assert (s.get_mask(4) == 2).sum() == (gt[4] > 0).sum()


def test_open_from_folder_with_masks(nets, tmp_path):
    frames, gt = make_clip(num_frames=5)
    (tmp_path / 'frames').mkdir()
    (tmp_path / 'masks').mkdir()
    for t in range(5):
        cv2.imwrite(str(tmp_path / 'frames' / f'{t:05d}.png'), frames[t][..., ::-1])
    cv2.imwrite(str(tmp_path / 'masks' / '00000.png'), gt[0] * 255)
    s = Session.open(tmp_path / 'frames', resolution=-1, masks=tmp_path / 'masks', networks=nets)
    with s:
        assert s.num_frames == 5 and s.num_objects == 1
        assert s.pending_frames == [0] and np.array_equal(s.get_mask(0), gt[0])
        assert s.propagate() and s.engine.interacted == {0}
        assert all(s.store.masks[t].shape == (64, 96) for t in range(5))


# ------------------------------------------------------------------ quality (trained weights)
def _bundled_interaction_or_skip():
    import os
    from model import lite_networks
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'weights',
                        lite_networks.FILES['interaction'])
    if not os.path.isfile(path):
        pytest.skip('bundled interaction weights not in weights/ yet')
    return lite_networks._load('interaction', path, 'cpu')


def test_bundled_scribble_quality(nets):
    """A positive stroke through the object (and a negative one in the background) gives a mask
    close to the object with the trained interaction net."""
    inter = _bundled_interaction_or_skip()
    frames, gt = make_clip(num_frames=1, height=240, width=320, radius=(40, 28))
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(1)
    s = Session(store, Networks('bundled', nets.propagation, nets.fusion, inter, None,
                                torch.device('cpu')))
    ys, xs = np.nonzero(gt[0])
    cy, cx = ys.mean(), xs.mean()
    labels = s.scribble(0, 1, positive=[[(cx - 25, cy), (cx + 25, cy)]],
                        negative=[[(20, 20), (300, 20), (300, 220)]], brush=5)
    iou = ((labels == 1) & (gt[0] == 1)).sum() / ((labels == 1) | (gt[0] == 1)).sum()
    assert iou > 0.6, iou


def test_bundled_propagation_quality():
    nets = bundled_networks_or_skip()
    frames, gt = make_clip(num_frames=12, height=240, width=320, radius=(40, 28), speed=(8, 2))
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(1)
    s = Session(store, nets)
    s.set_labels(0, gt[0])
    assert s.propagate()

    def iou(t):
        m = s.get_mask(t) == 1
        return (m & (gt[t] == 1)).sum() / max(1, (m | (gt[t] == 1)).sum())

    assert min(iou(t) for t in range(1, 12)) > 0.7
    # a second annotated frame: the frames in between are fused and stay right
    s.set_labels(11, gt[11])
    assert s.propagate()
    assert sorted(s.engine.interacted) == [0, 11]
    assert min(iou(t) for t in range(1, 11)) > 0.7
