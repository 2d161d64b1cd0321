"""The window's controller and document without a window: user intents -> Session calls."""
import json

import numpy as np
import pytest
import torch

from gui.controller import Controller, session_points
from gui.document import SETTINGS, Document, Options, settings_meta
from inference_core.session import Session
from tests.test_engine import make_clip, official_random_networks
from util.errors import UserError


@pytest.fixture(scope='module')
def nets():
    torch.set_num_threads(1)
    return official_random_networks()


@pytest.fixture
def ctrl(nets):
    frames, gt = make_clip(num_frames=6)
    s = Session.from_frames(frames, num_objects=1, networks=nets)
    c = Controller()
    c.attach(s)
    yield c, s, gt
    s.close()


def test_canvas_points_become_session_points():
    assert session_points([(0.5, 0.5), (10.0, 3.5), (0.2, 0.1)]) == [(0, 0), (9.5, 3), (0, 0)]


def test_free_paint_erase_and_undo_through_the_controller(ctrl):
    c, s, _ = ctrl
    c.set_mode('free')
    c.set_brush(3)                              # radius 3: a 7-pixel wide stroke
    msg = c.stroke([(10.5, 20.5), (40.5, 20.5)], True)
    assert msg.startswith('Painted on frame 0, object 1')
    m = s.get_mask(0)
    assert (m[17:24, 10:41] == 1).all() and not m[:16].any() and not m[25:].any()
    c.stroke([(20.5, 20.5), (30.5, 20.5)], False)
    assert not s.get_mask(0)[17:24, 21:30].any()
    assert c.undo() == 'Undo: frame 0' and (s.get_mask(0)[17:24, 10:41] == 1).all()
    assert c.redo() == 'Redo: frame 0'
    # each tool keeps its own brush
    c.set_mode('scribble')
    assert c.brush == 1
    c.set_mode('free')
    assert c.brush == 3


def test_undo_jumps_to_the_frame_it_changed_and_covers_objects(ctrl):
    c, s, _ = ctrl
    c.set_mode('free')
    c.goto(4)
    c.stroke([(30.5, 30.5)], True)
    c.goto(1)
    assert c.undo() == 'Undo: frame 4' and c.cursor == 4
    assert c.add_object() == 2 and c.obj == 2
    c.rename_object('car')
    c.recolor_object((10, 20, 30))
    c.toggle_visible()
    o = s.get_object(2)
    assert (o.name, o.color, o.visible) == ('car', (10, 20, 30), False)
    for _ in range(3):
        assert c.undo() == 'Undo: objects'
    assert s.get_object(2).name == 'object 2'
    assert c.undo() == 'Undo: objects' and s.num_objects == 1 and c.obj == 1
    assert c.undo() == 'Nothing to undo.'
    with pytest.raises(UserError, match='no object 3'):
        c.select_object(3)


def test_delete_object_then_undo_restores_its_masks(ctrl):
    c, s, gt = ctrl
    c.add_object()
    s.set_labels(2, gt[2] * 2)
    c.select_object(2)
    assert c.delete_object().id == 2 and s.num_objects == 1 and c.obj == 1
    assert not s.get_mask(2).any()
    c.undo()
    assert s.num_objects == 2 and np.array_equal(s.get_mask(2), gt[2] * 2)


def test_propagate_job_needs_a_mask_and_then_runs(ctrl):
    c, s, gt = ctrl
    with pytest.raises(UserError, match='no mask to propagate'):
        c.propagate_job()
    s.set_labels(0, gt[0])
    done = []
    assert c.propagate_job()(lambda d, t: done.append(d), lambda: False) is True
    assert done[-1] == s.num_frames - 1 and s.frames_with_masks().all()
    assert c.suggested_frame()[0] in range(1, s.num_frames)


def test_no_object_or_no_video_is_a_clear_error(nets):
    c = Controller()
    with pytest.raises(UserError, match='open a video'):
        c.goto(3)
    frames, _ = make_clip(num_frames=2)
    with Session.from_frames(frames, networks=nets) as s:
        c.attach(s)
        with pytest.raises(UserError, match='add one first'):
            c.stroke([(3, 3), (9, 9)], True)


def test_local_region_scribble_changes_only_the_region(ctrl, monkeypatch):
    c, s, gt = ctrl
    s.set_labels(0, gt[0])
    before = s.get_mask(0)
    c.set_local(True)
    c.set_local_region(20, 10, 60, 40)
    c.stroke([(30.5, 20.5), (50.5, 22.5)], True)
    after = s.get_mask(0)
    outside = np.ones_like(after, bool)
    outside[10:40, 20:60] = False
    assert np.array_equal(after[outside], before[outside])
    assert s.can_undo and 0 in s.edited_frames


def test_document_saves_settings_and_reopens_with_them(nets, tmp_path):
    import cv2
    frames, gt = make_clip(num_frames=4)
    folder = tmp_path / 'clip'
    folder.mkdir()
    for t, f in enumerate(frames):
        cv2.imwrite(str(folder / f'{t:05d}.png'), f[..., ::-1])
    opts = Options(resolution=-1, mem_freq=3, num_objects=2, workspace=str(tmp_path / 'ws'),
                   resume=False)
    doc = Document(opts, nets)
    s = doc.open_job(str(folder))(None, None)
    doc.install(s)
    s.set_labels(1, gt[1])
    settings = {'current_frame': 1, 'resolution': -1, 'mem_freq': 3, 'model': nets.kind,
                'overlay': 'fade', 'mode': 'free', 'brushes': {'free': 5}, 'object': 2}
    assert set(settings) == set(SETTINGS)
    doc.close(settings)
    meta = json.loads((tmp_path / 'ws' / 'workspace.json').read_text())
    assert meta['settings'] == settings_meta(settings)['settings'] and meta['current_frame'] == 1
    # opened again with other options: the saved processing size and memory frequency win
    doc2 = Document(Options(resolution=32, mem_freq=9, workspace=str(tmp_path / 'ws'),
                            resume=True), nets)
    s2 = doc2.open_job(str(folder))(None, None)
    assert doc2.install(s2) == 1
    assert (s2.height, s2.width) == frames.shape[1:3]
    assert doc2.open_settings == {'resolution': -1, 'mem_freq': 3}
    assert doc2.settings == settings
    assert np.array_equal(s2.get_mask(1), gt[1]) and s2.num_objects == 2
    doc2.close()
