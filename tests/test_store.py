"""FrameStore: storage modes, masks, objects, listeners, thread-safety."""
import gc
import os
import threading

import numpy as np
import pytest

from inference_core.store import FrameStore, ObjectInfo
from util.labels import resize_labels
from util.errors import UserError
from util.palette import davis_palette


def _frames(t=4, h=12, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize('storage', ['memory', 'disk'])
def test_frames_and_masks(storage):
    fr = _frames()
    s = FrameStore(fr, orig_size=(24, 40), storage=storage)
    assert (s.num_frames, s.height, s.width) == (4, 12, 20)
    assert (s.orig_height, s.orig_width) == (24, 40)
    assert s.storage == storage
    assert np.array_equal(s.frame(2), fr[2])
    with pytest.raises(ValueError):
        s.frame(1)[0, 0, 0] = 1            # frames are read-only
    assert s.masks.shape == (4, 12, 20) and s.masks.dtype == np.uint8
    s.add_object()
    m = np.zeros((12, 20), np.uint8)
    m[2:5, 3:9] = 1
    s.set_mask(1, m, edited=True)
    got = s.get_mask(1)
    assert np.array_equal(got, m) and s.edited_frames == {1}
    assert np.array_equal(s.masks[1], m)     # bulk view agrees (disk: same page cache)
    got[:] = 0                               # a copy: the store is unchanged
    assert s.get_mask(1).sum() == m.sum()
    s.set_mask(1, m, edited=False)
    assert s.edited_frames == set()
    with pytest.raises(ValueError):
        s.set_mask(0, m * 2)                 # id 2 does not exist
    with pytest.raises(ValueError):
        s.set_mask(0, np.zeros((5, 5), np.uint8))
    with pytest.raises(IndexError):
        s.get_mask(4)
    s.close()
    s.close()


def test_disk_tempdir_removed_on_close_and_gc():
    s = FrameStore(_frames(), storage='disk')
    d = s._tmpdir
    assert os.path.isdir(d)
    s.close()
    assert not os.path.exists(d)
    s = FrameStore(_frames(), storage='disk')
    d = s._tmpdir
    del s
    gc.collect()
    assert not os.path.exists(d)


def test_auto_storage_uses_budget():
    fr = _frames()
    assert FrameStore(fr, storage='auto').storage == 'memory'
    assert FrameStore(fr, storage='auto', memory_budget=fr.nbytes - 1).storage == 'disk'
    s = FrameStore(None, num_frames=3, height=8, width=10)
    assert s.frame(0).shape == (8, 10, 3) and not s.frame(0).any()


@pytest.mark.parametrize('storage', ['auto', 'memory', 'disk'])
@pytest.mark.parametrize('announced', [None, 2, 6, 40])
def test_from_frame_iter_any_announced_count(storage, announced):
    fr = _frames(t=6)
    seen = []
    s = FrameStore.from_frame_iter(iter(fr), num_frames=announced, storage=storage,
                                   memory_budget=fr[0].nbytes * 3, progress=lambda d, t: seen.append((d, t)))
    assert s.num_frames == 6 and np.array_equal(s.frames, fr)
    assert s.frame_names == [f'{i:05d}' for i in range(6)]
    assert seen[-1][0] == 6 and all(d <= t for d, t in seen)
    if storage == 'auto':   # over budget at some point -> spilled to disk
        assert s.storage == 'disk'


def test_from_frame_iter_cancel_and_bad_frame():
    fr = _frames(t=6)
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= 3
    assert FrameStore.from_frame_iter(iter(fr), num_frames=6, should_cancel=cancel) is None
    bad = list(fr[:2]) + [np.zeros((5, 5, 3), np.uint8)]
    with pytest.raises(ValueError):
        FrameStore.from_frame_iter(iter(bad), storage='disk')


def test_objects_default_palette_and_edit():
    s = FrameStore(_frames())
    changes = []
    s.add_object_listener(lambda: changes.append(1))
    assert s.add_object() == 1 and s.add_object('cat') == 2
    assert s.num_objects == 2
    assert s.objects[0].color == tuple(int(c) for c in davis_palette()[1]) == (128, 0, 0)
    assert s.objects[1] == ObjectInfo(2, 'cat', (0, 128, 0), True)
    s.rename_object(1, 'dog')
    s.set_color(1, (1, 2, 3))
    s.set_visible(2, False)
    assert s.objects[0].name == 'dog' and s.objects[0].color == (1, 2, 3)
    assert not s.get_object(2).visible
    assert s.colors()[1].tolist() == [1, 2, 3]
    assert len(changes) == 5
    with pytest.raises(UserError):
        s.rename_object(1, '  ')
    with pytest.raises(KeyError):
        s.get_object(3)


def test_remove_object_relabels_every_frame():
    s = FrameStore(_frames(), storage='disk')
    s.ensure_objects(3)
    s.rename_object(3, 'third')
    for t in range(4):
        m = np.zeros((12, 20), np.uint8)
        m[0:4], m[4:8], m[8:12] = 1, 2, 3
        s.set_mask(t, m)
    notified = []
    s.add_listener(notified.append)
    s.remove_object(2)
    assert s.num_objects == 2 and [o.id for o in s.objects] == [1, 2]
    assert s.get_object(2).name == 'third'
    for t in range(4):
        m = s.get_mask(t)
        assert (m[0:4] == 1).all() and (m[4:8] == 0).all() and (m[8:12] == 2).all()
    assert notified == [[0, 1, 2, 3]]
    s.num_objects = 1                       # shrinking removes the last object
    assert s.masks.max() == 1


def test_max_255_objects():
    s = FrameStore(_frames(t=1, h=4, w=4))
    s.ensure_objects(255)
    assert s.num_objects == 255
    with pytest.raises(UserError):
        s.add_object()
    with pytest.raises(UserError):
        s.ensure_objects(300)


def test_listener_called_after_set_mask():
    s = FrameStore(_frames())
    s.add_object()
    got = []
    fn = got.append
    s.add_listener(fn)
    s.set_mask(3, np.ones((12, 20), np.uint8))
    assert got == [[3]]
    s.remove_listener(fn)
    s.set_mask(2, np.ones((12, 20), np.uint8))
    assert got == [[3]]


def test_mask_at_original_round_trip():
    rng = np.random.default_rng(1)
    s = FrameStore(_frames(t=1, h=48, w=85), orig_size=(135, 240))
    s.ensure_objects(3)
    m = rng.integers(0, 4, (48, 85), dtype=np.uint8)
    s.set_mask(0, m)
    big = s.mask_at_original(0)
    assert big.shape == (135, 240)
    assert np.array_equal(resize_labels(big, 48, 85), m)


def test_concurrent_reads_and_writes_are_consistent():
    s = FrameStore(_frames(t=2, h=64, w=64))
    s.ensure_objects(2)
    a, b = np.ones((64, 64), np.uint8), np.full((64, 64), 2, np.uint8)
    stop = threading.Event()
    bad = []

    def writer():
        i = 0
        while not stop.is_set():
            s.set_mask(0, a if i % 2 else b, notify=False)
            i += 1
    th = threading.Thread(target=writer)
    th.start()
    try:
        for _ in range(2000):
            m = s.get_mask(0)
            if len(np.unique(m)) != 1:
                bad.append(m)
    finally:
        stop.set()
        th.join()
    assert not bad


@pytest.mark.parametrize('storage', ['memory', 'disk'])
def test_label_at_reads_the_pixel_of_the_mask(storage):
    s = FrameStore(_frames(), storage=storage)
    s.ensure_objects(3)
    labels = np.random.default_rng(1).integers(0, 4, (12, 20)).astype(np.uint8)
    s.set_mask(2, labels)
    s.set_mask(3, 3 - labels)
    for t in (2, 3):
        m = s.get_mask(t)
        assert all(s.label_at(t, x, y) == m[y, x] for y in range(12) for x in range(20))
