"""GUI tests: drive the real MainWindow with simulated mouse and keyboard events (pytest-qt,
offscreen). A small example clip (5 frames, 120x214, processed at 96 px) keeps them fast.

Networks: the real ones when load_networks() finds weights; otherwise the same architectures
untrained (their masks are arbitrary). Assertions that need a sensible mask (the scribbled object
is segmented, propagation follows it) run only with trained weights; everything else (coordinate
mapping, edits, undo/redo, propagation bookkeeping, cancel, export, workspace, errors) is
checked either way.
"""
import json
from pathlib import Path
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('PyQt5')
from PyQt5.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PyQt5.QtGui import QDropEvent, QMouseEvent, QWheelEvent  # noqa: E402
from PyQt5.QtWidgets import QApplication, QMessageBox  # noqa: E402

from tests.conftest import REPO  # noqa: E402

RES = 96
N_FRAMES = 5


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """example/make_example.py clip: frames, ground-truth masks (2 objects)."""
    sys.path.insert(0, str(REPO / 'example'))
    from make_example import make_example
    out = tmp_path_factory.mktemp('example')
    make_example(num_frames=N_FRAMES, height=120, width=214, out=str(out))
    return out


@pytest.fixture(scope='module')
def nets():
    import torch
    from inference_core.networks import Networks, load_networks
    from util.errors import UserError
    torch.manual_seed(0)
    try:
        n = load_networks('auto', device='cpu')
        n.trained = True
        return n
    except UserError:
        pass
    # No weights in this checkout: the bundled architectures, untrained (ImageNet backbone).
    from model import lite_networks
    n = Networks('untrained', *(lite_networks.build(k, pretrained=True).eval()
                                for k in ('propagation', 'fusion', 'interaction')),
                 None, torch.device('cpu'))
    n.trained = False
    return n


def _args(clip, tmp_path, *extra):
    from gui.app import build_parser
    return build_parser().parse_args(
        ['--images', str(clip / 'clip'), '--resolution', str(RES), '--num_objects', '2',
         '--workspace', str(tmp_path / 'ws'), *extra])


@pytest.fixture
def errors(monkeypatch):
    """Capture QMessageBox.critical calls instead of blocking on a modal box."""
    seen = []
    monkeypatch.setattr(QMessageBox, 'critical',
                        staticmethod(lambda parent, title, text, *a, **k: seen.append((title, text))))
    return seen


@pytest.fixture
def make_window(qtbot, clip, tmp_path, nets, errors):
    from gui.app import create_window

    def make(*extra):
        win = create_window(_args(clip, tmp_path, *extra), nets)
        qtbot.addWidget(win)
        win.resize(1100, 760)
        win.show()
        qtbot.waitExposed(win)
        return win
    return make


@pytest.fixture
def win(make_window):
    return make_window('--no-resume')


def gt(clip, t, store):
    from util.labels import resize_labels
    from util.mask_io import read_label_png
    lab = read_label_png(str(clip / 'masks' / f'{t:05d}.png'))
    return resize_labels(lab, store.height, store.width)


def inner_line(mask):
    """A short horizontal segment well inside a binary mask (image coords)."""
    import cv2
    inner = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8))
    ys, xs = np.nonzero(inner)
    y = int(np.median(ys))
    row = np.flatnonzero(inner[y])
    x0, x1 = row[len(row) // 4], row[3 * len(row) // 4]
    return [(float(x), float(y)) for x in np.linspace(x0, x1, 6)]


# ---------------------------------------------------------------------------- mouse helpers
def _wpos(canvas, x, y):
    p = canvas.image_to_widget(x + 0.5, y + 0.5)
    return QPoint(int(round(p.x())), int(round(p.y())))


def _send(widget, etype, pos, button, buttons, mods=Qt.NoModifier):
    ev = QMouseEvent(etype, QPointF(pos), widget.mapToGlobal(pos), button, buttons, mods)
    QApplication.sendEvent(widget, ev)


def drag(canvas, pts, button=Qt.LeftButton):
    """Press at the first image point, move through the rest, release (real Qt events)."""
    wp = [_wpos(canvas, x, y) for x, y in pts]
    _send(canvas, QEvent.MouseButtonPress, wp[0], button, button)
    for p in wp[1:]:
        _send(canvas, QEvent.MouseMove, p, Qt.NoButton, button)
    _send(canvas, QEvent.MouseButtonRelease, wp[-1], button, Qt.NoButton)


def click(canvas, x, y, button=Qt.LeftButton):
    drag(canvas, [(x, y)], button)


def wheel(canvas, x, y, steps, mods=Qt.NoModifier):
    pos = QPointF(_wpos(canvas, x, y))
    ev = QWheelEvent(pos, QPointF(canvas.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                     QPoint(0, 120 * steps), Qt.NoButton, mods, Qt.NoScrollPhase, False)
    QApplication.sendEvent(canvas, ev)


def wait_job(qtbot, win, timeout=120000):
    with qtbot.waitSignal(win.jobFinished, timeout=timeout) as blocker:
        pass
    return blocker.args


def run_job(qtbot, win, start, timeout=120000):
    with qtbot.waitSignal(win.jobFinished, timeout=timeout) as blocker:
        start()
    return blocker.args


# ---------------------------------------------------------------------------- tests
def test_window_opens_clip(win):
    s = win.session
    assert (s.num_frames, s.height, s.width) == (N_FRAMES, RES, 171)
    assert (s.orig_height, s.orig_width) == (120, 214)
    assert s.num_objects == 2 and win.objects.object_list.count() == 2
    assert 'Frame 0 / 4' in win.status.status_frame.text()
    assert 'Object 1' in win.status.status_object.text()
    assert 'cpu' in win.status.status_device.text()
    assert win.view.canvas.has_image()


def test_scribble_positive_makes_mask(qtbot, win, clip, nets):
    target = gt(clip, 0, win.session) == 1
    line = inner_line(target)
    drag(win.view.canvas, line)
    labels = win.session.get_mask(0)
    assert 0 in set(win.session.edited_frames)
    assert win.view.timeline.edited == {0}
    assert labels.max() <= 2
    assert len(win.view.canvas.marks) == 1           # the scribble stays visible until commit
    assert 'Scribble on frame 0, object 1' in win.console.messages()
    if nets.trained:
        on_line = [labels[int(y), int(x)] for x, y in line]
        assert np.mean(np.equal(on_line, 1)) > 0.8
        inter = ((labels == 1) & target).sum()
        assert inter / ((labels == 1) | target).sum() > 0.5
    win.edit.commit()
    assert win.view.canvas.marks == []


def test_free_brush_paints_where_the_mouse_is(qtbot, win):
    win.tools.set_mode('free')
    win.view.canvas.set_brush(4)
    drag(win.view.canvas, [(20, 30), (60, 30)])
    lab = win.session.get_mask(0)
    assert lab[30, 20:61].tolist() == [1] * 41      # the whole stroke, exactly under the mouse
    assert lab[30 - 4, 40] == 1 and lab[30 - 6, 40] == 0   # brush radius 4
    assert lab[60:, :].max() == 0
    # Object 2 via the keyboard, then the right button erases object 2 only.
    qtbot.keyClick(win, Qt.Key_2)
    assert win.controller.obj == 2 and 'Object 2' in win.status.status_object.text()
    drag(win.view.canvas, [(40, 60), (80, 60)])
    lab = win.session.get_mask(0)
    assert lab[60, 40:81].tolist() == [2] * 41
    drag(win.view.canvas, [(40, 60), (80, 60)], Qt.RightButton)
    lab = win.session.get_mask(0)
    assert lab[60, 40:81].tolist() == [0] * 41             # object 2 erased under the stroke
    assert lab[30, 20:61].tolist() == [1] * 41             # object 1 untouched
    # Wheel changes the brush size, ctrl+wheel zooms; painting still lands under the mouse.
    wheel(win.view.canvas, 50, 50, 2)
    assert win.view.canvas.brush > 4 and win.tools.brush_slider.value() == win.view.canvas.brush
    win.view.canvas.set_brush(1)
    wheel(win.view.canvas, 120, 70, 3, Qt.ControlModifier)
    assert win.view.canvas.zoom > 1.5
    qtbot.keyClick(win, Qt.Key_1)
    click(win.view.canvas, 120, 70)
    assert win.session.get_mask(0)[70, 120] == 1


def test_undo_redo_keyboard(qtbot, win):
    win.tools.set_mode('free')
    drag(win.view.canvas, [(10, 10), (30, 10)])
    drag(win.view.canvas, [(10, 50), (30, 50)])
    both = win.session.get_mask(0)
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    lab = win.session.get_mask(0)
    assert lab[10, 20] == 1 and lab[50, 20] == 0
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert not win.session.get_mask(0).any() and 0 not in set(win.session.edited_frames)
    assert not win.acts.undo.isEnabled() and win.acts.redo.isEnabled()
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.keyClick(win, Qt.Key_Y, Qt.ControlModifier)
    assert np.array_equal(win.session.get_mask(0), both)
    # Reset frame is undoable too.
    qtbot.keyClick(win, Qt.Key_R)
    assert not win.session.get_mask(0).any()
    win.edit.undo()
    assert np.array_equal(win.session.get_mask(0), both)


def test_frame_navigation_and_play(qtbot, win):
    qtbot.keyClick(win, Qt.Key_Right)
    assert win.controller.cursor == 1 and win.view.timeline.value() == 1
    qtbot.keyClick(win, Qt.Key_End)
    assert win.controller.cursor == N_FRAMES - 1
    qtbot.keyClick(win, Qt.Key_Left)
    assert win.controller.cursor == N_FRAMES - 2
    win.view.timeline.setValue(0)
    assert win.controller.cursor == 0
    qtbot.keyClick(win, Qt.Key_Space)
    assert win.view.play_timer.isActive()
    qtbot.waitUntil(lambda: win.controller.cursor == N_FRAMES - 1, timeout=5000)
    qtbot.waitUntil(lambda: not win.view.play_timer.isActive(), timeout=2000)


def test_stopping_on_a_frame_prepares_it_for_interaction(qtbot, win, monkeypatch):
    """Frames passed on the way are not prepared; the one the person stops on is, once."""
    seen = []
    real = win.session.prepare_interaction
    monkeypatch.setattr(win.session, 'prepare_interaction', lambda t: seen.append(t) or real(t))
    qtbot.keyClick(win, Qt.Key_Right)
    qtbot.keyClick(win, Qt.Key_Right)
    qtbot.waitUntil(lambda: bool(seen), timeout=3000)
    qtbot.wait(300)
    assert seen == [2] and win.controller.cursor == 2


def test_propagate_fills_other_frames(qtbot, win, clip, nets):
    # Paint the ground-truth object 1 on frame 0 with the brush (exact, weight independent).
    target = gt(clip, 0, win.session)
    win.session.set_object_mask(0, 1, target == 1)
    args = run_job(qtbot, win, lambda: qtbot.keyClick(win, Qt.Key_P))
    assert args[1] is True
    assert win.jobs.worker is None and win.view.canvas.editable
    assert win.session.interacted_frames == [0]
    assert all(win.view.timeline.has_mask[t] == win.session.get_mask(t).any()
               for t in range(N_FRAMES))
    assert 'Propagating: done' in win.console.messages()
    # The timeline shows the confidence; N jumps to the least confident propagated frame.
    conf = win.view.timeline.confidence
    assert conf[0] == 1.0 and np.isfinite(conf).all()
    want = 1 + int(np.argmin(conf[1:]))
    assert win.view.timeline.suggested == want
    qtbot.keyClick(win, Qt.Key_N)
    assert win.controller.cursor == want and 'least confident' in win.console.messages()
    if nets.trained:
        # The clip squeezes the example's motion (the cup crossing in front of the cat) into a few
        # frames, so the occluded middle frame is hard; the neighbour and the average must be good.
        ious = []
        for t in range(1, N_FRAMES):
            g = gt(clip, t, win.session) == 1
            m = win.session.get_mask(t) == 1
            ious.append((m & g).sum() / (m | g).sum())
        assert ious[0] > 0.7 and np.mean(ious) > 0.5, ious
    # Edit the last frame too, propagate from there: fused between the two edited frames.
    win.view.goto(N_FRAMES - 1)
    win.session.set_object_mask(N_FRAMES - 1, 2, gt(clip, N_FRAMES - 1, win.session) == 2)
    args = run_job(qtbot, win, win.edit.propagate)
    assert args[1] is True
    assert win.session.interacted_frames == [0, N_FRAMES - 1]
    assert win.view.timeline.edited == {0, N_FRAMES - 1}
    # Undo the propagation: frames in between go back.
    before = [win.session.get_mask(t) for t in range(N_FRAMES)]
    win.edit.undo()
    win.edit.redo()
    assert all(np.array_equal(before[t], win.session.get_mask(t)) for t in range(N_FRAMES))


def test_adapt_network_then_propagate(qtbot, win, clip, errors):
    if not win.session.can_adapt:
        pytest.skip('official networks are loaded: they cannot be adapted')
    win.edit.adapt_network()
    assert win.jobs.worker is None and errors and 'Nothing to adapt to' in errors[-1][0]
    assert not win.acts.unadapt.isEnabled()
    win.session.set_object_mask(0, 1, gt(clip, 0, win.session) == 1)
    args = run_job(qtbot, win, lambda: qtbot.keyClick(win, Qt.Key_P, Qt.ShiftModifier))
    assert args == ['Adapting network', True]
    assert win.session.adapted_frames == (0,) and win.acts.unadapt.isEnabled()
    assert 'Network adapted' in win.console.messages()
    assert run_job(qtbot, win, win.edit.propagate)[1] is True
    assert all(win.session.get_mask(t).any() for t in range(N_FRAMES))
    win.acts.unadapt.trigger()
    assert win.session.adapted_frames == () and not win.acts.unadapt.isEnabled()


def test_propagate_without_mask_is_an_error(win, errors):
    win.edit.propagate()
    assert win.jobs.worker is None
    assert errors and 'no mask to propagate' in errors[-1][1]


def test_cancel_propagation(qtbot, win):
    win.session.set_object_mask(0, 1, np.pad(np.ones((30, 40), bool), ((30, 36), (60, 71))))
    changed = set()
    win.session.subscribe(lambda e: changed.update(e.frames))
    win.edit.propagate()
    w = win.jobs.worker
    assert w is not None and win.status.cancel_button.isVisible() and not win.view.canvas.editable
    # Cancel right at the first progress report (in the worker thread, so it is deterministic):
    # propagation stops before the next frame.
    w.progressed.connect(lambda d, n: w.cancel(), Qt.DirectConnection)
    args = wait_job(qtbot, win)
    assert args[1] is False
    assert 'stopped' in win.console.messages()
    assert not win.session.busy and win.view.canvas.editable
    assert not win.status.cancel_button.isVisible()
    assert 0 < len(changed - {0}) < N_FRAMES - 1
    # The session is consistent: another propagation runs to the end.
    assert run_job(qtbot, win, win.edit.propagate)[1] is True


def test_objects_panel(qtbot, win, monkeypatch):
    win.tools.set_mode('free')
    qtbot.keyClick(win, Qt.Key_2)
    drag(win.view.canvas, [(30, 30), (50, 30)])
    qtbot.keyClick(win, Qt.Key_N, Qt.ControlModifier)
    assert win.session.num_objects == 3 and win.controller.obj == 3
    assert win.objects.object_list.count() == 3
    win.objects.rename('dog')
    assert win.session.get_object(3).name == 'dog'
    assert 'dog' in win.objects.object_list.item(2).text()
    win.objects.recolor((10, 200, 30))
    assert win.session.get_object(3).color == (10, 200, 30)
    # Hide object 2 with the list's check box: not drawn, still in the labels.
    win.objects.object_list.item(1).setCheckState(Qt.Unchecked)
    assert not win.session.get_object(2).visible
    qtbot.keyClick(win, Qt.Key_2)
    qtbot.keyClick(win, Qt.Key_H)
    assert win.session.get_object(2).visible
    # Delete object 2 (confirmed): its pixels vanish, 'dog' becomes object 2.
    monkeypatch.setattr(QMessageBox, 'question', staticmethod(lambda *a, **k: QMessageBox.Yes))
    win.objects.delete()
    assert win.session.num_objects == 2 and win.session.get_object(2).name == 'dog'
    assert not win.session.get_mask(0).any()
    qtbot.keyClick(win, Qt.Key_7)
    assert win.controller.obj != 7 and 'no object 7' in win.console.messages()


def test_overlay_modes_and_view(qtbot, win):
    from gui import overlay
    win.tools.set_mode('free')
    drag(win.view.canvas, [(30, 30), (50, 30)])
    frame, labels = win.session.frame(0), win.session.get_mask(0)
    outs = {}
    for m in overlay.MODES:
        img = overlay.compose(frame, labels, m, win.session.colors())
        assert img.shape == frame.shape and img.dtype == np.uint8
        outs[m] = img
    assert not np.array_equal(outs['davis'], outs['fade'])
    assert np.array_equal(outs['layered'][30, 40], frame[30, 40])      # object kept as is
    assert outs['popup'][80, 150].std() < 1e-6                          # grey background
    qtbot.keyClick(win, Qt.Key_V)
    assert win.view.overlay_mode == overlay.MODES[1]
    assert win.view.overlay_combo.currentData() == overlay.MODES[1]
    qtbot.keyClick(win, Qt.Key_Plus)
    assert win.view.canvas.zoom > 1
    r = win.view.canvas.visible_rect()
    assert r.width() < win.session.width
    win.view.minimap.centerRequested.emit(0.0, 0.0)
    assert win.view.canvas.visible_rect().x() == 0
    qtbot.keyClick(win, Qt.Key_0)
    assert win.view.canvas.zoom == 1


def test_local_refinement_changes_only_the_region(qtbot, win):
    win.tools.set_mode('free')
    drag(win.view.canvas, [(5, 5), (165, 5)])          # a stroke outside the region
    before = win.session.get_mask(0)
    win.tools.set_mode('scribble')
    qtbot.keyClick(win, Qt.Key_L)
    assert win.controller.local_mode and win.view.canvas.region_select
    drag(win.view.canvas, [(60, 30), (120, 80)])       # pick the region
    assert win.controller.local_region is not None and win.view.canvas.zoom > 1.2
    r = win.view.canvas.visible_rect()                 # the region refined: what the view shows
    x0, y0 = int(np.floor(r.x())), int(np.floor(r.y()))
    x1, y1 = int(np.ceil(r.right())), int(np.ceil(r.bottom()))
    assert x0 <= 60 and y0 <= 30 and x1 >= 120 and y1 >= 80
    assert (x1 - x0) * (y1 - y0) < 0.6 * win.session.width * win.session.height
    drag(win.view.canvas, [(80, 50), (100, 55)])
    after = win.session.get_mask(0)
    outside = np.ones_like(after, bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(after[outside], before[outside])
    assert 0 in set(win.session.edited_frames) and 'Local scribble' in win.console.messages()
    win.edit.undo()
    assert np.array_equal(win.session.get_mask(0), before)
    qtbot.keyClick(win, Qt.Key_L)
    assert not win.controller.local_mode and win.view.canvas.zoom == 1


def test_export_roundtrip(qtbot, win, tmp_path, monkeypatch, errors):
    from pycocotools.coco import COCO
    from util.mask_io import read_label_png
    from util.video_io import count_frames
    win.tools.set_mode('free')
    drag(win.view.canvas, [(20, 30), (60, 30)])
    qtbot.keyClick(win, Qt.Key_2)
    win.view.goto(2)
    drag(win.view.canvas, [(100, 60), (140, 60)])
    win.objects.rename('cup')
    out = tmp_path / 'export'
    formats = ['png', 'objects', 'soft', 'coco', 'ytvis', 'mp4']
    args = run_job(qtbot, win, lambda: win.exporter.export(str(out), formats))
    assert args[1] is True
    for t in range(N_FRAMES):
        lab = read_label_png(str(out / 'masks' / f'{t:05d}.png'))
        assert lab.shape == (120, 214)                  # original resolution
        assert np.array_equal(lab, win.session.get_mask(t, original=True))
    assert (out / 'objects' / 'object 1' / '00000.png').is_file()
    assert (out / 'soft' / 'cup' / '00002.png').is_file()
    coco = COCO(str(out / 'annotations.json'))
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[3]))
    assert [coco.loadCats(a['category_id'])[0]['name'] for a in ann] == ['cup']
    assert np.array_equal(coco.annToMask(ann[0]), win.session.get_mask(2, original=True) == 2)
    assert count_frames(str(out / 'overlay.mp4')) == ('h264', N_FRAMES)
    before = (out / 'masks' / '00002.png').read_bytes()

    # Exporting again asks before replacing: "Cancel" keeps every file as it was.
    asked = []
    monkeypatch.setattr(QMessageBox, 'question', staticmethod(
        lambda *a, **k: asked.append(a[2]) or QMessageBox.Cancel))
    win.view.goto(2)
    drag(win.view.canvas, [(100, 90), (140, 90)])
    assert win.exporter.export(str(out), ['png']) is None
    assert asked and f'{N_FRAMES} file(s)' in asked[0]
    assert (out / 'masks' / '00002.png').read_bytes() == before
    # A full disk part-way: a message, the previous export untouched.
    from tests.test_export import full_disk_on_call
    from util import export as export_mod
    real = export_mod.write_bytes
    monkeypatch.setattr(export_mod, 'write_bytes', full_disk_on_call(real, 3))
    args = run_job(qtbot, win, lambda: win.exporter.export(str(out), ['png'], overwrite=True))
    assert errors and 'No space left on device' in errors[-1][1]
    assert (out / 'masks' / '00002.png').read_bytes() == before
    monkeypatch.setattr(export_mod, 'write_bytes', real)
    monkeypatch.setattr(QMessageBox, 'question', staticmethod(lambda *a, **k: QMessageBox.Yes))
    args = run_job(qtbot, win, lambda: win.exporter.export(str(out), ['png']))
    assert args[1] is True and (out / 'masks' / '00002.png').read_bytes() != before


def test_export_errors_show_a_message(qtbot, win, clip, tmp_path, errors):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    assert win.exporter.export(str(blocker), ['png']) is None
    assert errors and 'not a folder' in errors[-1][1]
    # under a file: fails for root too
    assert win.exporter.export(str(blocker / 'sub'), ['png']) is None
    assert 'not writable' in errors[-1][1]
    # Exporting to the folder that holds the loaded masks folder would replace them: refused.
    import shutil
    masks = tmp_path / 'project' / 'masks'
    shutil.copytree(clip / 'masks', masks)
    originals = {p.name: p.read_bytes() for p in masks.iterdir()}
    win.opener.load_masks(str(masks))
    assert win.exporter.export(str(tmp_path / 'project'), ['png'], overwrite=True) is None
    assert 'would write into the input folder' in errors[-1][1]
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == originals


def test_bad_files_show_a_message_and_change_nothing(qtbot, win, tmp_path, errors):
    session = win.session
    bad = tmp_path / 'broken.mp4'
    bad.write_bytes(b'not a video')
    win.opener.open_path(str(bad))
    qtbot.waitUntil(lambda: win.jobs.worker is None, timeout=20000)
    assert errors and 'cannot open video' in errors[-1][1]
    assert win.session is session
    # Masks of the wrong size.
    from util.export import indexed_png_bytes
    mdir = tmp_path / 'masks'
    mdir.mkdir()
    (mdir / '00000.png').write_bytes(indexed_png_bytes(np.ones((50, 50), np.uint8)))
    win.opener.load_masks(str(mdir))
    assert 'aspect ratio' in errors[-1][1]
    assert not win.session.frames_with_masks().any()
    assert len(errors) == 2


def test_load_masks_and_drop_open(qtbot, win, clip, tmp_path):
    win.opener.load_masks(str(clip / 'masks'))
    assert set(win.session.edited_frames) == set(range(N_FRAMES))
    assert np.array_equal(win.session.get_mask(3), gt(clip, 3, win.session))
    assert win.session.interacted_frames == list(range(N_FRAMES))   # through the Session
    assert win.acts.undo.isEnabled()
    win.edit.undo()                                                      # one step for all frames
    assert not win.session.frames_with_masks().any() and not set(win.session.edited_frames)
    assert win.session.interacted_frames == [] and not win.session.can_undo
    win.edit.redo()
    assert np.array_equal(win.session.get_mask(3), gt(clip, 3, win.session))
    assert set(win.session.edited_frames) == set(range(N_FRAMES))
    # Drag & drop a folder: it opens in a worker and replaces the video.
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(clip / 'clip'))])
    old = win.session
    ev = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    win.dropEvent(ev)
    qtbot.waitUntil(lambda: win.jobs.worker is None and win.session is not old, timeout=30000)
    # The same video with a workspace holding its masks: resumed (opts.resume = False here).
    assert win.session.num_frames == N_FRAMES


def _paint_two_frames_and_add(win, name, frame):
    """Free-paint object 1 on frame 0, add an object called `name` and paint it on `frame`."""
    win.tools.set_mode('free')
    drag(win.view.canvas, [(20, 30), (60, 30)])
    win.objects.add()
    win.objects.rename(name)
    win.view.goto(frame)
    drag(win.view.canvas, [(80, 60), (120, 60)])


def test_workspace_autosave_and_resume(qtbot, make_window, tmp_path, monkeypatch):
    from gui import main_window
    win = make_window('--no-resume')
    _paint_two_frames_and_add(win, 'third', 3)
    # Saved at once (atomically), before the window closes: a kill -9 now loses nothing.
    ws = tmp_path / 'ws'
    meta = json.loads((ws / 'workspace.json').read_text())
    assert meta['edited_frames'] == [0, 3]
    assert [o['name'] for o in meta['objects']] == ['object 1', 'object 2', 'third']
    assert sorted(os.listdir(ws / 'masks')) == ['00000.png', '00003.png']
    expected = [win.session.get_mask(t) for t in range(N_FRAMES)]
    win.close()
    # Reopen: the dialog offers to resume.
    asked = []
    monkeypatch.setattr(main_window, 'ask_resume', lambda parent, path, desc: asked.append(desc) or 'resume')
    win2 = make_window()
    assert asked and '2 edited frame(s)' in asked[0]
    assert [o.name for o in win2.session.objects] == ['object 1', 'object 2', 'third']
    assert all(np.array_equal(win2.session.get_mask(t), expected[t]) for t in range(N_FRAMES))
    assert win2.session.edited_frames == [0, 3] and win2.controller.cursor == 3
    assert win2.session.interacted_frames == [0, 3]
    win2.close()
    # --no-resume starts over and keeps the whole old workspace under a dated name.
    before = {p.relative_to(ws): p.read_bytes() for p in ws.rglob('*') if p.is_file()}
    win3 = make_window('--no-resume')
    assert not win3.session.frames_with_masks().any() and win3.session.num_objects == 2
    kept = [p for p in tmp_path.iterdir() if p.name.startswith('ws.')]
    assert len(kept) == 1 and 'kept in' in win3.console.messages()
    assert {p.relative_to(kept[0]): p.read_bytes() for p in kept[0].rglob('*') if p.is_file()} == before
    win3.close()


def test_mismatched_workspace_is_never_reset_silently(qtbot, make_window, clip, tmp_path, monkeypatch):
    """The video changed (8 -> 7 -> 8 frames): each mismatch asks, and no saved work is lost."""
    import shutil
    from gui import main_window
    from gui.app import create_window
    from util.errors import UserError
    win = make_window('--no-resume')
    win.tools.set_mode('free')
    drag(win.view.canvas, [(20, 30), (60, 30)])
    win.close()
    ws = tmp_path / 'ws'
    first = {p.relative_to(ws): p.read_bytes() for p in ws.rglob('*') if p.is_file()}
    frames = sorted((clip / 'clip').iterdir())
    short = tmp_path / 'short'
    short.mkdir()
    for f in frames[:-1]:
        shutil.copy(f, short / f.name)
    asked = []
    monkeypatch.setattr(main_window, 'ask_mismatch',
                        lambda parent, path, reason, keep: asked.append((reason, keep)) or 'cancel')
    args = _args(clip, tmp_path)
    args.images = str(short)
    with pytest.raises(main_window.OpenCancelled):
        create_window(args, win.document.networks)
    assert asked and 'frames' in asked[0][0]
    assert {p.relative_to(ws): p.read_bytes() for p in ws.rglob('*') if p.is_file()} == first
    # "Open fresh": the old work moves, whole, to the dated folder the question named.
    monkeypatch.setattr(main_window, 'ask_mismatch',
                        lambda parent, path, reason, keep: asked.append((reason, keep)) or 'fresh')
    w2 = create_window(args, win.document.networks)
    qtbot.addWidget(w2)
    kept1 = asked[-1][1]
    assert {p.relative_to(kept1): p.read_bytes() for p in Path(kept1).rglob('*') if p.is_file()} == first
    w2.tools.set_mode('free')
    drag(w2.view.canvas, [(20, 30), (60, 30)])
    w2.close()
    # Back to 8 frames: asked again; both earlier workspaces are still there.
    w3 = create_window(_args(clip, tmp_path), win.document.networks)
    qtbot.addWidget(w3)
    kept2 = asked[-1][1]
    assert kept2 != kept1 and os.path.isdir(kept1) and os.path.isdir(kept2)
    assert len(asked) == 3
    # A workspace from a newer version of the tool is refused and left as it is.
    meta = json.loads((ws / 'workspace.json').read_text()) if (ws / 'workspace.json').exists() else None
    w3.close()
    (ws / 'workspace.json').write_text(json.dumps({'version': 99}))
    with pytest.raises(UserError, match='newer version'):
        create_window(_args(clip, tmp_path), win.document.networks)
    assert json.loads((ws / 'workspace.json').read_text()) == {'version': 99}
    del meta


def test_workspace_v1_is_migrated(qtbot, make_window, tmp_path, monkeypatch):
    from gui import main_window
    win = make_window('--no-resume')
    win.tools.set_mode('free')
    drag(win.view.canvas, [(20, 30), (60, 30)])
    expected = win.session.get_mask(0)
    win.close()
    ws = tmp_path / 'ws'
    meta = json.loads((ws / 'workspace.json').read_text())
    meta['version'] = 1
    del meta['frame_names']
    (ws / 'workspace.json').write_text(json.dumps(meta))
    monkeypatch.setattr(main_window, 'ask_resume', lambda *a: 'resume')
    w2 = make_window()
    assert np.array_equal(w2.session.get_mask(0), expected)
    w2.close()
    assert json.loads((ws / 'workspace.json').read_text())['version'] == 2


def test_help_and_shortcut_keys(qtbot, win, monkeypatch):
    from gui import dialogs
    shown = []
    monkeypatch.setattr(dialogs.HelpDialog, 'exec_', lambda self: shown.append(self.table.rowCount()))
    qtbot.keyClick(win, Qt.Key_F1)
    qtbot.keyClick(win, Qt.Key_Question, Qt.ShiftModifier)
    assert len(shown) == 2 and shown[0] > 20
    for key, mode in ((Qt.Key_C, 'click'), (Qt.Key_F, 'free'), (Qt.Key_S, 'scribble')):
        qtbot.keyClick(win, key)
        assert win.controller.mode == mode and mode.capitalize() in win.status.status_mode.text()


def test_demo_script_and_screenshot(qtbot, win, clip, tmp_path):
    from gui.demo import DemoRunner
    line = inner_line(gt(clip, 0, win.session) == 1)
    shot = tmp_path / 'shot.png'
    steps = [{'action': 'scribble', 'points': [list(p) for p in line]},
             {'action': 'propagate'},
             {'action': 'goto', 'frame': 2},
             {'action': 'overlay', 'mode': 'fade'}]
    runner = DemoRunner(win, steps, screenshot=str(shot))
    runner.start()
    qtbot.waitUntil(lambda: shot.exists(), timeout=120000)
    assert runner.error is None
    assert win.controller.cursor == 2 and win.view.overlay_mode == 'fade'
    from PIL import Image
    with Image.open(shot) as im:
        assert im.size[0] >= 800


@pytest.mark.parametrize('argv, msg', [
    (['--images', '/nonexistent/frames'], 'image folder not found'),
    (['--video', '/nonexistent.mp4'], 'video not found'),
    (['--num_objects', '0'], '--num_objects must be in 1..255'),
    (['--resolution', '5'], '--resolution must be'),
])
def test_cli_bad_input_is_one_line(argv, msg):
    r = subprocess.run([sys.executable, str(REPO / 'interactive_gui.py'), *argv],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, 'QT_QPA_PLATFORM': 'offscreen'})
    assert r.returncode == 2
    assert r.stderr.strip().count('\n') == 0 and msg in r.stderr
    assert 'Traceback' not in r.stderr


def test_video_masks_and_default_workspace(qtbot, clip, tmp_path, nets):
    import cv2
    from gui.app import build_parser, create_window
    from util.frames_io import list_image_files, read_image
    video = tmp_path / 'my clip.mp4'
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10, (214, 120))
    for f in list_image_files(str(clip / 'clip')):
        vw.write(cv2.cvtColor(read_image(f), cv2.COLOR_RGB2BGR))
    vw.release()
    a = build_parser().parse_args(['--video', str(video), '--resolution', str(RES),
                                   '--masks', str(clip / 'masks_first'), '--no-resume'])
    win = create_window(a, nets)
    qtbot.addWidget(win)
    assert win.session.num_frames == N_FRAMES and set(win.session.edited_frames) == {0}
    assert np.array_equal(win.session.get_mask(0), gt(clip, 0, win.session))
    ws = tmp_path / 'my clip.mp4.ivos'                  # next to the video
    assert win.document.workspace.path == str(ws)
    assert (ws / 'masks' / '00000.png').is_file() and (ws / 'workspace.json').is_file()


def test_kill_9_loses_nothing_committed(qtbot, make_window, clip, tmp_path):
    """A separate GUI process paints two strokes and is killed with SIGKILL: the workspace on
    disk is complete and resumes."""
    import signal
    ws = tmp_path / 'ws'
    code = f'''
import os, sys
sys.path.insert(0, {str(REPO)!r})
os.environ['QT_QPA_PLATFORM'] = 'offscreen'
from PyQt5.QtWidgets import QApplication
app = QApplication([])
import torch
from inference_core.networks import Networks
from model import lite_networks
from gui.app import build_parser, create_window
nets = Networks('untrained', *(lite_networks.build(k).eval()
                               for k in ('propagation', 'fusion', 'interaction')),
                None, torch.device('cpu'))
a = build_parser().parse_args(['--images', {str(clip / 'clip')!r}, '--resolution', '{RES}',
                               '--workspace', {str(ws)!r}, '--no-resume'])
win = create_window(a, nets)
win.show()
win.tools.set_mode('free')
win.edit.stroke([(20.5, 30.5), (60.5, 30.5)], True)
win.view.goto(2)
win.edit.stroke([(80.5, 50.5), (90.5, 70.5)], True)
print('READY', flush=True)
app.exec_()
'''
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == 'READY'
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [n for n in os.listdir(ws / 'masks') if n.endswith('.part')]
    assert sorted(os.listdir(ws / 'masks')) == ['00000.png', '00002.png'] and not leftovers
    win = make_window('--resume')
    assert set(win.session.edited_frames) == {0, 2} and win.controller.cursor == 2
    lab0, lab2 = win.session.get_mask(0), win.session.get_mask(2)
    assert lab0[30, 20:61].tolist() == [1] * 41 and lab2[60, 85] == 1
    assert not lab0[60:].any()


def test_export_dialog(qtbot, win, tmp_path, monkeypatch):
    from gui.dialogs import ExportDialog
    warned = []
    monkeypatch.setattr(QMessageBox, 'warning', staticmethod(lambda *a, **k: warned.append(a[2])))
    dlg = ExportDialog(win, '', size_text='214x120')
    qtbot.addWidget(dlg)
    assert dlg.formats() == ['png']
    dlg._accept()
    assert warned and 'output folder' in warned[-1] and dlg.result() == 0
    dlg.dir_edit.setText(str(tmp_path / 'out'))
    dlg.checks['png'].setChecked(False)
    dlg._accept()
    assert 'at least one format' in warned[-1]
    dlg.checks['coco'].setChecked(True)
    dlg.checks['mp4'].setChecked(True)
    dlg._accept()
    assert dlg.result() == ExportDialog.Accepted
    assert dlg.formats() == ['coco', 'mp4'] and dlg.out_dir() == str(tmp_path / 'out')


def test_timeline_click_jumps_to_frame(qtbot, win):
    tl = win.view.timeline
    qtbot.mouseClick(tl, Qt.LeftButton, pos=QPoint(tl.width() - 12, tl.height() // 2))
    assert win.controller.cursor == N_FRAMES - 1
    qtbot.mouseClick(tl, Qt.LeftButton, pos=QPoint(12, tl.height() // 2))
    assert win.controller.cursor == 0


def test_click_mode(qtbot, win, clip, nets):
    target = gt(clip, 0, win.session) == 2
    x, y = inner_line(target)[2]
    qtbot.keyClick(win, Qt.Key_2)
    qtbot.keyClick(win, Qt.Key_C)
    click(win.view.canvas, x, y)
    assert 0 in set(win.session.edited_frames)
    assert [m[0] for m in win.view.canvas.marks] == ['click']
    assert 'Click on frame 0, object 2' in win.console.messages()
    if nets.trained:
        assert win.session.get_mask(0)[int(y), int(x)] == 2
    first = win.view.canvas.marks[0]
    after_first = win.session.get_mask(0)
    click(win.view.canvas, 5, 5, Qt.RightButton)               # a negative click adds a mark too
    assert len(win.view.canvas.marks) == 2 and win.view.canvas.marks[1][2] is False
    win.edit.undo()                                            # steps the click sequence back
    assert win.view.canvas.marks == [first] and np.array_equal(win.session.get_mask(0), after_first)
    assert len(win.session.active_clicks[2]) == 1
    win.edit.redo()
    assert len(win.view.canvas.marks) == 2 and len(win.session.active_clicks[2]) == 2
    win.edit.undo()
    win.edit.undo()
    assert not win.session.get_mask(0).any() and win.view.canvas.marks == []


def test_cli_bad_demo_script(tmp_path, clip):
    bad = tmp_path / 'demo.json'
    bad.write_text('{"not": "a list"}')
    r = subprocess.run([sys.executable, str(REPO / 'interactive_gui.py'), '--images', str(clip / 'clip'),
                        '--demo-script', str(bad)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, 'QT_QPA_PLATFORM': 'offscreen'})
    assert r.returncode == 2 and 'must be a JSON list' in r.stderr and 'Traceback' not in r.stderr


def test_autosave_failure_is_reported_once_and_retried(qtbot, win, tmp_path, monkeypatch):
    from gui import window_workspace
    warned = []
    monkeypatch.setattr(window_workspace, 'ask_autosave_failed',
                        lambda parent, msg: warned.append(msg) or 'continue')
    ws = win.document.workspace
    good = ws.masks_dir
    blocker = tmp_path / 'blocker'
    blocker.write_text('x')
    ws.masks_dir = str(blocker / 'masks')           # cannot be created: a file is in the way
    win.tools.set_mode('free')
    drag(win.view.canvas, [(20, 30), (60, 30)])
    drag(win.view.canvas, [(20, 40), (60, 40)])
    win.saver.flush()
    assert win.session.get_mask(0)[40, 30] == 1         # editing goes on
    assert win.console.messages().count('autosave will retry') == 1 and len(warned) == 1
    ws.masks_dir = good
    win.saver.flush()
    assert 'Autosave works again' in win.console.messages()
    assert win.status.status_saved.isHidden() and not win.document.unsaved_work()
    assert os.path.isfile(os.path.join(good, '00000.png'))


def test_every_saved_setting_comes_back_on_resume(qtbot, make_window, tmp_path):
    from gui import document, overlay
    win = make_window('--no-resume', '--mem_freq', '3')
    win.tools.set_mode('free')
    drag(win.view.canvas, [(20, 30), (60, 30)])      # some work, so that there is something to resume
    win.view.canvas.set_brush(12)
    win.tools.set_mode('click')
    win.view.set_overlay_mode(overlay.MODES[2])
    win.objects.select(2)
    win.view.goto(3)
    saved = win.saver.settings()
    assert set(saved) == set(document.SETTINGS)
    win.close()
    meta = json.loads((tmp_path / 'ws' / 'workspace.json').read_text())
    assert dict(meta['settings'], current_frame=meta['current_frame']) == saved
    # Opened again with other command-line settings: the workspace's come back, every one.
    win2 = make_window('--resume', '--resolution', '64', '--mem_freq', '7')
    assert win2.saver.settings() == saved
    c = win2.controller
    assert (win2.session.height, c.cursor, c.obj, c.mode) == (RES, 3, 2, 'click')
    assert win2.view.overlay_mode == overlay.MODES[2]
    assert win2.view.overlay_combo.currentData() == overlay.MODES[2]
    assert win2.document.open_settings['mem_freq'] == 3       # what the Session was opened with
    win2.tools.set_mode('free')
    assert win2.view.canvas.brush == 12 and win2.tools.brush_slider.value() == 12
    win2.close()


def test_object_edits_are_undone_in_the_window(qtbot, win, clip):
    win.session.set_object_mask(0, 2, gt(clip, 0, win.session) == 2)
    before = win.session.get_mask(0)
    win.objects.select(2)
    win.objects.rename('cup')
    assert win.objects.object_list.item(1).text().endswith('cup')
    win.objects.delete(confirm=False)
    assert win.objects.object_list.count() == 1 and not (win.session.get_mask(0) == 2).any()
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)          # the deletion, masks included
    assert win.objects.object_list.count() == 2 and np.array_equal(win.session.get_mask(0), before)
    assert win.objects.object_list.item(1).text().endswith('cup')
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)          # the rename
    assert win.objects.object_list.item(1).text().endswith('object 2')
    assert 'Undo: objects' in win.console.messages()
    qtbot.keyClick(win, Qt.Key_Z, Qt.ShiftModifier | Qt.ControlModifier)
    assert win.objects.object_list.item(1).text().endswith('cup')


# ---------------------------------------------------------------------------- never lose work
def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in Path(folder).rglob('*')
            if p.is_file() and p.name != 'workspace.lock'}


def test_second_instance_lock_never_loses_the_first_windows_work(qtbot, make_window, tmp_path,
                                                                 monkeypatch):
    """Two windows on one video used to both autosave into its workspace: the last
    workspace.json written won and window A's object and frames were gone at the next resume."""
    from gui import main_window, window_workspace
    a = make_window('--no-resume')
    _paint_two_frames_and_add(a, 'from A', 2)
    ws = tmp_path / 'ws'
    saved_a = _files(ws)
    expected = [a.session.get_mask(t) for t in range(N_FRAMES)]
    asked = []

    def answer(choice):
        monkeypatch.setattr(main_window, 'ask_locked', lambda parent, path, msg, beside:
                            asked.append((msg, beside)) or choice)
    # Quit: the second window does not open the video; nothing of A's changes (not even with
    # --no-resume, which would otherwise move A's workspace away under it).
    answer('cancel')
    with pytest.raises(main_window.OpenCancelled):
        make_window('--no-resume')
    assert asked and 'in use by another window' in asked[0][0] and str(os.getpid()) in asked[0][0]
    assert _files(ws) == saved_a
    # Read-only: the second window shows A's work and never writes; closing it with changes asks.
    answer('readonly')
    b = make_window()
    assert [o.name for o in b.session.objects] == ['object 1', 'object 2', 'from A']
    assert all(np.array_equal(b.session.get_mask(t), expected[t]) for t in range(N_FRAMES))
    assert 'Read-only' in b.status.status_saved.text() and not b.status.status_saved.isHidden()
    b.tools.set_mode('free')
    b.view.goto(4)
    drag(b.view.canvas, [(20, 80), (60, 80)])
    b.saver.flush()
    assert _files(ws) == saved_a
    closing = []
    monkeypatch.setattr(window_workspace, 'ask_unsaved',
                        lambda parent, msg, action: closing.append(msg) or 'discard')
    b.close()
    assert closing and 'read-only' in closing[0]
    # A fresh workspace beside it: both windows save, each into its own folder.
    answer('fresh')
    c = make_window()
    beside = asked[-1][1]
    assert c.document.workspace.path == beside and os.path.dirname(beside) == str(tmp_path)
    c.tools.set_mode('free')
    drag(c.view.canvas, [(20, 50), (60, 50)])
    c.close()
    assert json.loads((Path(beside) / 'workspace.json').read_text())['edited_frames'] == [0]
    # A goes on saving into its workspace, and all of it comes back after it closes.
    a.view.goto(3)
    drag(a.view.canvas, [(80, 40), (120, 40)])
    expected = [a.session.get_mask(t) for t in range(N_FRAMES)]
    a.close()
    assert not (ws / 'workspace.lock').exists()
    monkeypatch.setattr(main_window, 'ask_resume', lambda *a: 'resume')
    d = make_window()
    assert [o.name for o in d.session.objects] == ['object 1', 'object 2', 'from A']
    assert all(np.array_equal(d.session.get_mask(t), expected[t]) for t in range(N_FRAMES))
    d.close()


@pytest.mark.parametrize('kind', ['full', 'readonly'])
def test_autosave_fail_warns_offers_to_save_elsewhere_and_asks_before_closing(
        qtbot, make_window, tmp_path, monkeypatch, kind):
    """The disk fills up (or the file system turns read-only) while the window is open: the
    propagation and a later stroke used to be lost on close with only a console line."""
    from gui import main_window, window_workspace
    from tests.fs_faults import failing_fs
    with failing_fs(tmp_path / 'disk', kind) as fs:
        win = make_window('--no-resume', '--workspace', str(tmp_path / 'disk' / 'ws'))
        win.tools.set_mode('free')
        drag(win.view.canvas, [(20, 30), (60, 30)])
        assert run_job(qtbot, win, win.edit.propagate)[1] is True
        assert win.session.frames_with_masks()[2:].any()      # the propagation wrote frames
        assert os.path.isfile(tmp_path / 'disk' / 'ws' / 'workspace.json')
        fs.break_()
        warned = []
        monkeypatch.setattr(window_workspace, 'ask_autosave_failed',
                            lambda parent, msg: warned.append(msg) or 'continue')
        win.view.goto(3)
        drag(win.view.canvas, [(80, 60), (120, 60)])
        assert len(warned) == 1, fs
        reason = 'no space left' if kind == 'full' else 'read-only file system'
        assert reason in warned[0]
        assert 'NOT SAVED' in win.status.status_saved.text()
        assert not win.status.status_saved.isHidden()
        assert 'NOT being saved' in win.console.messages()
        win.view.goto(1)
        drag(win.view.canvas, [(20, 70), (60, 70)])
        win.saver.flush()
        assert len(warned) == 1                      # the dialog once, the status bar stays
        assert 'NOT SAVED' in win.status.status_saved.text()
        expected = [win.session.get_mask(t) for t in range(N_FRAMES)]
        # Closing asks first; Cancel keeps the window (and the work) open.
        answers = ['cancel']
        asked = []
        monkeypatch.setattr(window_workspace, 'ask_unsaved', lambda parent, msg, action:
                            asked.append(msg) or answers.pop(0))
        assert win.close() is False and win.session is not None
        assert asked and reason in asked[0]
        # Save elsewhere: everything, the propagation included, lands in the new folder.
        answers.append('elsewhere')
        elsewhere = tmp_path / 'elsewhere'
        monkeypatch.setattr(window_workspace, 'choose_folder', lambda *a: str(elsewhere))
        assert win.close() is True
    monkeypatch.setattr(main_window, 'ask_resume', lambda *a: 'resume')
    w2 = make_window('--workspace', str(elsewhere))
    assert all(np.array_equal(w2.session.get_mask(t), expected[t]) for t in range(N_FRAMES))
    assert w2.session.edited_frames == [0, 1, 3]
    w2.close()


def test_grey_mask_notes_and_ambiguity_warnings_reach_the_message_panel(qtbot, win, tmp_path,
                                                                       capsys):
    """They went to stderr only: a person in the GUI never saw how a grey mask was read."""
    from PIL import Image
    masks = tmp_path / 'grey'
    masks.mkdir()
    a = np.zeros((120, 214), np.uint8)
    a[30:60, 40:90] = 128                                     # two grey levels: a note
    Image.fromarray(a).save(masks / '00000.png')
    b = np.zeros((120, 214), np.uint8)
    b[20:40, 20:60], b[50:70, 20:60], b[80:100, 20:60] = 40, 80, 120   # a label map? ambiguous
    Image.fromarray(b).save(masks / '00001.png')
    win.opener.load_masks(str(masks))
    text = win.console.messages()
    assert '2 grey levels (0, 128) read as binary' in text
    assert 'warning: ambiguous mask' in text and 'save it as a palette PNG' in text
    assert win.session.get_mask(0).any()


def test_export_into_the_imported_masks_folder_is_refused_before_asking(qtbot, make_window,
                                                                       clip, tmp_path,
                                                                       monkeypatch, errors):
    """The input guard lasted one run, refused only after the replace question, and left an
    empty masks/sub behind."""
    import shutil
    from gui import main_window
    masks = tmp_path / 'project' / 'masks'
    shutil.copytree(clip / 'masks', masks)
    originals = _files(masks)
    win = make_window('--no-resume')
    win.opener.load_masks(str(masks))
    win.close()
    monkeypatch.setattr(main_window, 'ask_resume', lambda *a: 'resume')
    w2 = make_window()                                  # a later run of the same workspace
    asked = []
    monkeypatch.setattr(QMessageBox, 'question',
                        staticmethod(lambda *a, **k: asked.append(a) or QMessageBox.Yes))
    for target in (masks / 'sub', masks, tmp_path / 'project'):
        assert w2.exporter.export(str(target), ['png']) is None
        assert 'input folder' in errors[-1][1]
    assert not asked and not (masks / 'sub').exists() and _files(masks) == originals
    w2.close()
