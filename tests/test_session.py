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
from inference_core.interaction import paint_labels
from util.strokes import brush_disk, stroke_mask
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
    assert 2 in s._store.edited_frames and sorted(s._pending.frames) == [2]
    s.paint(2, 1, [[(0, 0), (40, 0)]], erase=True, brush=5)
    states.append(_all(s))
    assert not s.get_mask(2)[:2].any()
    s.add_object()                      # an undo step of its own (no frame changes)
    states.append(_all(s))
    s.set_object_mask(2, 2, brush_disk(64, 96, 80, 50, 6))
    states.append(_all(s))
    s.set_labels(3, gt[3] * 2)
    states.append(_all(s))
    s.reset_frame(2)
    states.append(_all(s))
    assert not s.get_mask(2).any() and 2 not in s._store.edited_frames
    assert s.interacted_frames == [3]

    counts = []
    for want in reversed(states[:-1]):
        assert s.can_undo
        s.undo()
        counts.append(s.num_objects)
        assert np.array_equal(_all(s), want)
    assert counts == [2, 2, 2, 1, 1, 1] and not s.can_undo and s.undo() == []
    for want in states[1:]:
        assert s.can_redo
        s.redo()
        assert np.array_equal(_all(s), want)
    assert s.redo() == [] and s.num_objects == 2


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
    assert np.array_equal(labels, s.get_mask(1)) and sorted(s._pending.frames) == [1]
    st = s._prompts.scribbles
    assert st.frame == 1 and np.array_equal(st.prev_labels, before)
    assert (st.scribbles == 1).sum() > 0 and (st.scribbles == 255).sum() > 0
    # the result is the controller's hard aggregation of the S2M outputs
    image, pad = s._prompts.image(1)
    from inference_core.padding import pad_divide_by, unpad
    prev = pad_divide_by(torch.from_numpy(before)[None, None], 16)[0][0, 0].numpy()
    want = unpad(s._prompts.scribbler.predict(image, prev, st.scribbles, 2, claim_for=1), pad)
    want = want.argmax(0)[0].numpy()
    assert np.array_equal(labels, want)
    # a second stroke adds to the same canvas, from the same starting mask
    s.scribble(1, 2, negative=[[(60, 10), (70, 12)]])
    assert s._prompts.scribbles is st and (st.scribbles == 0).sum() > 0 and (st.scribbles == 1).sum() > 0
    # something else changes the frame: a new canvas starts from the new labels
    painted = s.paint(1, 1, gt[1] > 0)
    s.scribble(1, 1, positive=[[(20, 30), (22, 30)]])
    assert s._prompts.scribbles is not st and np.array_equal(s._prompts.scribbles.prev_labels, painted)
    assert s._prompts.scribbles.frame == 1 and (s._prompts.scribbles.scribbles == 0).sum() == 0
    # MiVOS 'commit': the next stroke starts a new interaction from the current mask
    st2 = s._prompts.scribbles
    committed = s.get_mask(1)
    s.end_interaction(1)
    s.scribble(1, 1, positive=[[(30, 30), (32, 30)]])
    assert s._prompts.scribbles is not st2 and np.array_equal(s._prompts.scribbles.prev_labels, committed)
    # the soft S2M result is what gets committed
    assert s._prompts.mask_for(1).shape == (3, 1, 64, 96)
    s.undo()
    assert np.array_equal(s._prompts.mask_for(1), s.get_mask(1))      # labels changed: plain labels


def test_click_uses_interaction_net_without_fbrs(nets):
    s, gt = _session(nets)
    labels = s.click(3, 1, 40, 30, positive=True)
    assert np.array_equal(labels, s.get_mask(3)) and sorted(s._pending.frames) == [3]
    assert s._prompts.clicker.backend == 'interaction' and s._prompts.clicker.num_clicks == 1
    s.click(3, 1, 10, 10, positive=False)
    assert s._prompts.clicker.num_clicks == 2                             # clicks accumulate
    s.paint(3, 1, gt[3] > 0)                                    # another tool: new sequence
    s.click(3, 1, 40, 30)
    assert s._prompts.clicker.num_clicks == 1
    with pytest.raises(UserError):
        s.click(3, 1, 500, 30)


# ------------------------------------------------------------------ propagation
def test_propagate_commits_pending_frames_and_fuses(nets):
    s, gt = _session(nets, num_frames=10)
    written = []
    s._store.add_listener(lambda fr: written.extend(fr))
    s.paint(2, 1, gt[2] > 0)
    s.paint(8, 1, gt[8] > 0)
    written.clear()
    assert s.propagate() is True                                # from the last interacted frame
    assert sorted(s._engine.interacted) == [2, 8] and sorted(s._pending.frames) == []
    assert set(written) == {3, 4, 5, 6, 7, 9}                   # backward stops before frame 2
    assert not set(written) & {0, 1}
    assert np.array_equal(s.get_mask(2), gt[2]) and np.array_equal(s.get_mask(8), gt[8])
    assert {2, 8} <= s._store.edited_frames and not {3, 9} & s._store.edited_frames

    prop_state = _all(s)
    assert s.undo()                                             # undo the propagation
    assert not _all(s)[[3, 4, 5, 6, 7, 9]].any()
    assert sorted(s._pending.frames) == [2, 8] and not s._engine.interacted
    assert s.redo()
    assert np.array_equal(_all(s), prop_state)
    # frames that were committed in the redone state are re-committed by the next propagate
    assert sorted(s._pending.frames) == [2, 8]
    written.clear()
    assert s.propagate(2, direction='backward')
    assert set(written) == {0, 1} and sorted(s._engine.interacted) == [2, 8]


def test_propagate_in_video_yields_each_frame_as_it_is_written(nets):
    """The generator gives (frame, labels) in the order the passes write them (forward from
    the frame, then backward), the labels the session holds, and progress as it goes; its
    value and the blocking propagate are the same path with the same result."""
    s, gt = _session(nets, num_frames=8)
    ref, _ = _session(nets, num_frames=8)
    for x in (s, ref):
        x.paint(3, 1, gt[3] > 0)
    progress = []
    frames = s.propagate_in_video(progress=lambda d, n: progress.append((d, n)))
    assert not s.busy                      # nothing runs before the first frame is asked for
    got = []
    for t, labels in frames:
        assert s.busy                      # edits wait while the generator is suspended
        assert labels.dtype == np.uint8 and np.array_equal(labels, s.get_mask(t))
        got.append((t, labels))
    assert [t for t, _ in got] == [4, 5, 6, 7, 2, 1, 0]
    assert progress == [(i, 7) for i in range(1, 8)]
    assert not s.busy and s.interacted_frames == [3] and s.undo_steps == 2
    assert ref.propagate() is True
    assert np.array_equal(_all(s), _all(ref))
    assert all(np.array_equal(lab, ref.get_mask(t)) for t, lab in got)
    with pytest.raises(StopIteration) as stop:
        next(s.propagate_in_video(3, direction='forward', end=3))    # nothing to do: done
    assert stop.value.value is True


def test_closing_propagate_in_video_early_stops_the_work(nets):
    """A client that stops iterating stops the propagation between frames, like a cancel: the
    frames written keep their labels, the rest are untouched, one undo step restores them,
    and the session is free again (the next propagate carries on)."""
    s, gt = _session(nets, num_frames=8)
    s.paint(0, 1, gt[0] > 0)
    before = _all(s)
    written = []
    s._store.add_listener(lambda fr: written.extend(fr))
    frames = s.propagate_in_video(0, direction='forward')
    for t, _labels in frames:
        if t == 2:
            break
    frames.close()                             # (a for loop's generator is closed when dropped)
    assert sorted(set(written)) == [1, 2] and not s.busy
    assert _all(s)[1:3].any() and not _all(s)[3:].any()
    assert s.interacted_frames == [0] and not s._pending.frames     # committed, not pending
    assert s.undo() == [1, 2] and np.array_equal(_all(s), before)
    assert s.redo() == [1, 2]
    written.clear()
    assert s.propagate(0, direction='forward') is True
    assert sorted(set(written)) == [1, 2, 3, 4, 5, 6, 7] and _all(s)[7].any()
    # should_cancel stops it too; the generator's value says so
    s.paint(0, 1, gt[0] > 0)
    frames = s.propagate_in_video(0, direction='forward', should_cancel=lambda: len(got) >= 3)
    got = []
    with pytest.raises(StopIteration) as stop:
        while True:
            got.append(next(frames))
    assert stop.value.value is False and [t for t, _ in got] == [1, 2, 3] and not s.busy


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


def test_remove_object_is_undoable_and_keeps_engine_in_sync(nets):
    s, gt = _session(nets, num_objects=2)
    s.set_object(2, name='box')
    lab = gt[0].copy()
    lab[cv2.dilate(gt[0], np.ones((3, 3), np.uint8)) == 0] = 0
    lab[50:60, 80:90] = 2
    s.set_labels(0, lab)
    assert s.propagate()
    before, edited = _all(s), s.edited_frames
    s.remove_object(1)
    assert s.num_objects == 1 and s.objects[0].name == 'box' and s.can_undo
    assert set(np.unique(_all(s))) <= {0, 1}
    # undo brings the object, its name and every mask back; the engine propagates again after
    s.undo()
    assert [o.name for o in s.objects] == ['object 1', 'box']
    assert np.array_equal(_all(s), before) and s.edited_frames == edited
    s.redo()
    assert s.num_objects == 1 and set(np.unique(_all(s))) <= {0, 1}
    s.undo()
    assert np.array_equal(_all(s), before)
    assert s.propagate(0) and (s.get_mask(3) == 1).any() and (s.get_mask(3) == 2).any()
    s.remove_object(1)
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
        assert sorted(s._pending.frames) == [0] and np.array_equal(s.get_mask(0), gt[0])
        assert s.propagate() and s._engine.interacted == {0}
        assert all(s._store.masks[t].shape == (64, 96) for t in range(5))


# ------------------------------------------------------------------ quality (trained weights)
def _bundled_interaction_or_skip():
    import os
    from model import lite_networks
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'weights',
                        lite_networks.FILES['interaction'])
    if not os.path.isfile(path):
        pytest.skip('bundled interaction weights not in weights/ yet')
    return lite_networks.load_network('interaction', path, 'cpu')


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


def test_strokes_on_one_frame_reuse_its_backbone_maps(nets):
    """The bundled interaction net reads the image apart from the strokes: later strokes on the
    same frame reuse the frame's backbone maps (the same masks as computing them afresh); another
    frame, or release_memory, computes them again."""
    import copy
    from model.lite_interaction import LiteInteractionNet
    torch.manual_seed(6)
    inter = LiteInteractionNet(pretrained=False).eval()
    twin = copy.deepcopy(inter)                     # same weights, never keeps maps (see below)
    calls = []
    real = inter.image_features
    inter.image_features = lambda image, shorts=None: calls.append(1) or real(image, shorts)
    frames, _ = make_clip(num_frames=2, height=96, width=128)

    def session(net):
        store = FrameStore(frames, storage='memory')
        store.ensure_objects(2)
        return Session(store, Networks('bundled', nets.propagation, nets.fusion, net, None,
                                       torch.device('cpu')), zoom_corrections=False)

    strokes = [(0, 1, dict(positive=[[(30, 40), (60, 45)]])),
               (0, 2, dict(positive=[[(80, 60), (100, 70)]])),
               (0, 1, dict(negative=[[(5, 5), (120, 8)]])),
               (1, 1, dict(positive=[[(30, 40), (60, 45)]])),
               (0, 2, dict(negative=[[(5, 90), (120, 90)]]))]
    cached, fresh = session(inter), session(twin)
    for (t, k, kw), n in zip(strokes, [1, 1, 1, 2, 3]):
        got = cached.scribble(t, k, **kw)
        assert len(calls) == n
        fresh.release_memory()                       # drops the kept maps
        np.testing.assert_array_equal(got, fresh.scribble(t, k, **kw))
    cached.release_memory()
    cached.scribble(0, 1, negative=[[(5, 60), (120, 60)]])
    assert len(calls) == 4
    # clicks (no f-BRS: the interaction net) share the maps: prepared ahead for frame 1 (as the
    # GUI does when the person stops on a frame), the clicks and the strokes there reuse them
    assert cached.prepare_interaction(1) is True and len(calls) == 5
    for (x, y, positive) in [(40, 40, True), (90, 65, True), (10, 10, False)]:
        got = cached.click(1, 2, x, y, positive)
        assert len(calls) == 5
        fresh.release_memory()
        np.testing.assert_array_equal(got, fresh.click(1, 2, x, y, positive))
    cached.end_interaction()
    cached.scribble(1, 1, positive=[[(30, 40), (60, 45)]])
    assert len(calls) == 5


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
    assert sorted(s._engine.interacted) == [0, 11]
    assert min(iou(t) for t in range(1, 11)) > 0.7


# ------------------------------------------------------------------ loading masks
def _write_masks(folder, masks):
    from util.export import indexed_png_bytes
    folder.mkdir(exist_ok=True)
    for t, lab in masks.items():
        (folder / f'{t:05d}.png').write_bytes(indexed_png_bytes(lab))
    return folder


def test_load_masks_is_one_undo_step(nets, tmp_path):
    s, gt = _session(nets)
    painted = s.paint(4, 1, gt[4] > 0)
    s.propagate(4, direction='forward')
    assert s._engine.interacted == {4} and sorted(s._pending.frames) == []
    before, edited_before = _all(s), set(s._store.edited_frames)
    two = gt[1] * 2                                             # object 2 does not exist yet
    folder = _write_masks(tmp_path / 'masks', {1: two, 6: gt[6]})
    assert s.load_masks(folder) == [1, 6]
    assert s.num_objects == 2                                   # created for the file's ids
    assert np.array_equal(s.get_mask(1), two) and np.array_equal(s.get_mask(6), gt[6])
    assert {1, 4, 6} <= s._store.edited_frames
    assert sorted(s._pending.frames) == [1, 6] and s.interacted_frames == [1, 4, 6]
    after = _all(s)

    assert s.undo() == [1, 6]                                   # ONE step for both frames
    assert np.array_equal(_all(s), before) and s._store.edited_frames == edited_before
    assert sorted(s._pending.frames) == [] and s.interacted_frames == [4]
    assert np.array_equal(s.get_mask(4), painted)
    assert s.redo() == [1, 6]
    assert np.array_equal(_all(s), after) and sorted(s._pending.frames) == [1, 6]
    assert s.propagate(6, direction='forward')                  # commits 1 and 6
    assert s._engine.interacted == {1, 4, 6}

    # A bad file changes nothing and adds no undo step; so does a cancel.
    state, n_undo = _all(s), len(s._undo.history._undo)
    bad = _write_masks(tmp_path / 'bad', {2: np.ones((10, 40), np.uint8)})
    with pytest.raises(UserError, match='aspect ratio'):
        s.load_masks(bad)
    with pytest.raises(UserError, match='not found'):
        s.load_masks(tmp_path / 'nowhere')
    assert s.load_masks(folder, should_cancel=lambda: True) is None
    assert np.array_equal(_all(s), state) and len(s._undo.history._undo) == n_undo


def test_load_masks_single_file_subset_and_busy(nets, tmp_path):
    s, gt = _session(nets)
    folder = _write_masks(tmp_path / 'm', {3: gt[3]})
    seen = []
    assert s.load_masks(str(folder / '00003.png'), progress=lambda d, n: seen.append((d, n))) == [3]
    assert seen == [(1, 1)] and sorted(s._pending.frames) == [3] and s._store.edited_frames == {3}
    with s._exclusive('test'):
        with pytest.raises(UserError, match='cannot load masks while'):
            s.load_masks(folder)
    s.undo()
    assert not _all(s).any() and sorted(s._pending.frames) == [] and not s._store.edited_frames


# ------------------------------------------------------------------ click undo / redo
@pytest.fixture(scope='module')
def bundled():
    torch.set_num_threads(1)
    return bundled_networks_or_skip()


def _bundled_session(bundled, num_objects=1):
    frames, gt = make_clip(num_frames=2, height=240, width=320, radius=(40, 28))
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(num_objects)
    return Session(store, bundled), gt


def _centre(mask):
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def test_click_undo_steps_the_click_history_back(bundled):
    s, gt = _bundled_session(bundled)
    cx, cy = _centre(gt[0])
    clicks = [(cx, cy, True), (cx + 70, cy, False), (cx - 20, cy + 8, True), (cx + 10, cy - 5, True)]
    results = [s.click(0, 1, *c) for c in clicks[:3]]
    ctrl = s._prompts.clicker
    assert ctrl.num_clicks == 3

    assert s.undo() == [0]
    assert ctrl.clicks == [c for c in clicks[:2]]               # stepped back, not reset
    assert np.array_equal(s.get_mask(0), results[1])
    # the soft result of the clicks still in effect is what propagation would commit
    assert s._prompts.mask_for(0).shape == (2, 1, 240, 320)
    assert np.array_equal(s._prompts.mask_for(0).argmax(0)[0].numpy(), results[1])
    # the next click continues the sequence: the same as clicking 1, 2, 4 from the start
    got = s.click(0, 1, *clicks[3])
    assert ctrl.clicks == [clicks[0], clicks[1], clicks[3]]
    ref, _ = _bundled_session(bundled)
    for c in (clicks[0], clicks[1], clicks[3]):
        want = ref.click(0, 1, *c)
    assert np.array_equal(got, want)


def test_click_redo_puts_the_click_back(bundled):
    s, gt = _bundled_session(bundled)
    cx, cy = _centre(gt[0])
    clicks = [(cx, cy, True), (cx + 70, cy, False), (cx - 20, cy + 8, True)]
    results = [s.click(0, 1, *c) for c in clicks]
    ctrl = s._prompts.clicker
    s.undo()
    s.undo()
    assert ctrl.clicks == clicks[:1] and np.array_equal(s.get_mask(0), results[0])
    assert s.redo() == [0]
    assert ctrl.clicks == clicks[:2] and np.array_equal(s.get_mask(0), results[1])
    assert torch.equal(ctrl.result, ctrl._results[1])
    assert s.redo() == [0]
    assert ctrl.clicks == clicks and np.array_equal(s.get_mask(0), results[2])
    # undo every click: nothing left in effect, the frame is as before; redo brings them back
    for _ in range(3):
        s.undo()
    assert ctrl.num_clicks == 0 and not s.get_mask(0).any() and sorted(s._pending.frames) == []
    s.redo()
    assert ctrl.clicks == clicks[:1] and np.array_equal(s.get_mask(0), results[0])
    # a new click after an undo drops the redo side, in the history and in the controller
    s.undo()
    s.click(0, 1, *clicks[2])
    assert ctrl.clicks == [clicks[2]] and not s.can_redo


def test_click_undo_across_sequences_and_other_tools(bundled):
    s, gt = _bundled_session(bundled, num_objects=2)
    cx, cy = _centre(gt[0])
    s.click(0, 1, cx, cy)
    s.click(0, 1, cx + 70, cy, positive=False)
    after_two = s.get_mask(0)
    s.click(0, 2, 30, 30)                                       # another object: new sequence
    assert s._prompts.clicker.num_clicks == 1
    s.undo()
    # one history: undo returns to object 1's sequence, and the next click for object 1
    # continues it (third click)
    assert s._prompts.clicker.num_clicks == 2 and np.array_equal(s.get_mask(0), after_two)
    assert s.active_clicks[:2] == (0, 1)
    s.click(0, 1, cx - 20, cy + 8)
    assert s._prompts.clicker.num_clicks == 3
    # a paint ends the sequence; undoing the paint puts the sequence back as it was
    s.paint(0, 1, np.zeros_like(gt[0], dtype=bool) | (gt[0] > 0))
    s.click(0, 1, cx, cy)
    assert s._prompts.clicker.num_clicks == 1
    s.undo()
    s.undo()
    assert s._prompts.clicker.num_clicks == 3


# ------------------------------------------------------------------ overlapping objects
class _RegionNet(torch.nn.Module):
    """Stand-in interaction net: confident on a fixed region for every object, a little more
    for the object whose previous mask (input channel 3) is there - like a real net that keeps
    an existing object."""

    def __init__(self, region):
        super().__init__()
        self.register_buffer('region', torch.from_numpy(region.astype(np.float32))[None, None])

    def forward(self, x):
        return (self.region * 2 - 1) * 6 + 3 * x[:, 3:4]


def _overlap_session(nets, region):
    frames, _ = make_clip(num_frames=1)
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(2)
    net = Networks('official', nets.propagation, nets.fusion, _RegionNet(region).eval(), None,
                   torch.device('cpu'))
    return Session(store, net)


@pytest.mark.parametrize('tool', ['click', 'scribble'])
def test_positive_interaction_takes_pixels_from_another_object(nets, tool):
    """Object 2 wrongly covers A (where object 1 is) and B. The network says A and B for both
    objects. A click/stroke for object 1 in A gives A to object 1 (latest intent wins), but not
    B, which the person did not point at."""
    a = np.zeros((64, 96), bool)
    a[15:45, 10:40] = True
    b = np.zeros((64, 96), bool)
    b[20:40, 60:85] = True
    s = _overlap_session(nets, a | b)
    s.set_labels(0, (a | b).astype(np.uint8) * 2)
    if tool == 'click':
        labels = s.click(0, 1, 25, 30)
    else:
        labels = s.scribble(0, 1, positive=[[(18, 30), (32, 30)]])
    assert (labels[a] == 1).all()
    assert (labels[b] == 2).all() and not labels[~(a | b)].any()
    # the committed soft mask agrees
    assert np.array_equal(s._prompts.mask_for(0).argmax(0)[0].numpy(), labels)


def test_bundled_click_inside_another_object(bundled):
    """With the trained interaction net: a positive click for object 1 inside object 2's
    region gives object 1 those pixels; object 2's other, separate part stays object 2."""
    s, gt = _bundled_session(bundled, num_objects=2)
    obj = gt[0] > 0
    other = np.zeros_like(obj)
    other[20:60, 240:300] = True                                # far from the ellipse
    s.set_labels(0, (obj | other).astype(np.uint8) * 2)
    cx, cy = _centre(obj)
    labels = s.click(0, 1, cx, cy)
    assert labels[int(cy), int(cx)] == 1
    assert (labels[obj] == 1).mean() > 0.7
    assert (labels[other] == 2).all()
    s.end_interaction()
    s.set_labels(0, (obj | other).astype(np.uint8) * 2)
    labels = s.scribble(0, 1, positive=[[(cx - 25, cy), (cx + 25, cy)]], brush=5)
    assert (labels[obj] == 1).mean() > 0.7
    assert not (labels[other] == 1).any()       # (S2M re-predicts object 2 itself: not checked)


def test_frame_timestamps_of_a_video(nets, tmp_path):
    """Session.timestamps: each frame's presentation time as decoded (a variable-frame-rate
    video keeps its own), None where the frames have no times (built in memory)."""
    from util.video_io import H264Writer
    stamps = [0.0, 0.04, 0.1, 0.3, 0.35, 0.9]
    with H264Writer(tmp_path / 'vfr.mp4', (48, 64), 30) as w:
        for i, t in enumerate(stamps):
            w.write(np.full((48, 64, 3), 30 * i, np.uint8), timestamp=t)
    with Session.open(tmp_path / 'vfr.mp4', resolution=-1, networks=nets) as s:
        ts = s.timestamps
        assert isinstance(ts, list) and np.allclose(ts, stamps, atol=1e-3)
        ts[0] = 99.0                                   # a copy: the session is unchanged
        assert s.timestamps[0] == pytest.approx(0.0, abs=1e-3)
    s, _gt = _session(nets, num_frames=3)
    with s:
        assert s.timestamps is None
