"""How the window shows the Session's changes (pytest-qt, offscreen): the Session's events are
the one refresh path, one edit refreshes each part once, background work on the Session
disables editing (its busy / idle events), and hovering reads consistent snapshots while a
propagation writes. Uses the window fixtures of tests/test_gui.py."""
import threading
import time

import numpy as np
import pytest

pytest.importorskip('PyQt5')
from PyQt5.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PyQt5.QtGui import QMouseEvent  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402

from tests.test_gui import (N_FRAMES, clip, drag, errors, gt, make_window, nets,  # noqa: E402,F401
                            run_job, win)


class Counts:
    """Counts the frame redraws (Canvas.set_image) and object list rebuilds (its clear)."""

    def __init__(self, win, monkeypatch):
        self.redraws = self.rebuilds = 0
        canvas, lw = win.view.canvas, win.objects.object_list
        real_set, real_clear = canvas.set_image, lw.clear

        def set_image(img):
            self.redraws += 1
            real_set(img)

        def clear():
            self.rebuilds += 1
            real_clear()
        monkeypatch.setattr(canvas, 'set_image', set_image)
        monkeypatch.setattr(lw, 'clear', clear)

    def take(self):
        got = (self.rebuilds, self.redraws)
        self.rebuilds = self.redraws = 0
        return got


def test_one_edit_refreshes_each_part_once(qtbot, win, monkeypatch):
    """One add_object used to rebuild the object list and redraw the frame twice each."""
    counts = Counts(win, monkeypatch)
    qtbot.keyClick(win, Qt.Key_N, Qt.ControlModifier)
    assert win.session.num_objects == 3 and win.objects.object_list.count() == 3
    assert counts.take() == (1, 1)
    assert win.objects.object_list.currentRow() == 2 and 'Object 3' in \
        win.status.status_object.text()
    win.objects.add()
    assert counts.take() == (1, 1) and win.controller.obj == 4
    win.tools.set_mode('free')
    counts.take()
    drag(win.view.canvas, [(20, 30), (60, 30)])             # labels only: no rebuild
    assert counts.take() == (0, 1) and win.view.timeline.edited == {0}
    win.objects.rename('dog')
    assert counts.take() == (1, 1) and win.objects.object_list.item(3).text().endswith('dog')
    win.objects.delete(confirm=False)                       # objects and labels: still once
    assert counts.take() == (1, 1) and win.objects.object_list.count() == 3
    win.edit.undo()
    assert counts.take() == (1, 1) and win.objects.object_list.count() == 4
    win.objects.select(2)                                   # no Session change: no refresh
    assert counts.take() == (0, 0) and win.objects.object_list.currentRow() == 1
    # A change made outside an edit of the window (a script on the Session) shows at once.
    win.session.set_object_mask(0, 2, np.ones((win.session.height, win.session.width), bool))
    assert counts.take() == (0, 1) and win.acts.undo.isEnabled()
    win.view.goto(3)                                        # a frame the Session did not change
    win.session.set_object_mask(1, 2, np.ones((win.session.height, win.session.width), bool))
    assert counts.take() == (0, 1)                          # the goto only


def _hover(canvas, x, y):
    p = canvas.image_to_widget(x + 0.5, y + 0.5)
    pos = QPoint(int(round(p.x())), int(round(p.y())))
    ev = QMouseEvent(QEvent.MouseMove, QPointF(pos), canvas.mapToGlobal(pos), Qt.NoButton,
                     Qt.NoButton, Qt.NoModifier)
    QApplication.sendEvent(canvas, ev)


def test_hovering_during_a_propagation_reads_consistent_frames(qtbot, win, clip, monkeypatch,
                                                               errors):
    """The mouse over the canvas reads the label under it (and the frame is redrawn as the
    propagation writes it) while the worker thread writes masks: every read is a whole frame
    and mask of one index, never an exception."""
    s = win.session
    h, w = s.height, s.width
    s.set_object_mask(0, 1, gt(clip, 0, s) == 1)
    reads, problems = [], []
    last = {}

    def recorder(name, real):
        def read(t, *args):
            try:
                out = real(t, *args)
            except Exception as e:            # noqa: BLE001  (any exception is the bug)
                problems.append(f'{name}({t}): {type(e).__name__}: {e}')
                raise
            last[threading.get_ident(), name] = t
            reads.append((name, t, s.busy))
            return out
        return read
    for name in ('frame', 'get_mask', 'label_at'):
        monkeypatch.setattr(s, name, recorder(name, getattr(s, name)))
    from gui import overlay
    real_compose = overlay.compose

    def compose(frame, labels, *args):
        me = threading.get_ident()
        if frame.shape != (h, w, 3) or labels.shape != (h, w) or \
                last.get((me, 'frame')) != last.get((me, 'get_mask')):
            problems.append(f'torn: frame {frame.shape} of {last.get((me, "frame"))}, mask '
                            f'{labels.shape} of {last.get((me, "get_mask"))}')
        return real_compose(frame, labels, *args)
    monkeypatch.setattr(overlay, 'compose', compose)

    win.edit.propagate()
    worker = win.jobs.worker
    assert worker is not None
    # Slow each frame down (in the worker thread) so the hovering meets the writes.
    worker.progressed.connect(lambda d, n: time.sleep(0.15), Qt.DirectConnection)
    canvas, rng, step = win.view.canvas, np.random.default_rng(0), 0
    while win.jobs.worker is not None:
        _hover(canvas, int(rng.integers(0, w)), int(rng.integers(0, h)))
        step += 1
        if step % 15 == 0:
            win.view.goto(int(rng.integers(0, N_FRAMES)))   # the frame shown moves too
        qtbot.wait(5)
    qtbot.waitUntil(lambda: not s.busy, timeout=10000)
    assert not problems and not errors, (problems, errors)
    during = [r for r in reads if r[2]]
    assert sum(r[0] == 'label_at' for r in during) >= 5, reads
    assert any(r[0] == 'frame' for r in during)             # redrawn while it wrote
    assert 'Propagating: done' in win.console.messages()
    _hover(canvas, 5, 5)
    assert win.status.status_info.text().startswith('x 5, y 5, label ')


def test_background_work_on_the_session_disables_editing(qtbot, win, monkeypatch):
    """A propagation running in another thread (not one of the window's jobs) is seen through
    the Session's busy / idle events: editing is disabled and the canvas shows a busy cursor
    until it ends."""
    s = win.session
    s.set_object_mask(0, 1, np.pad(np.ones((30, 40), bool), ((30, 36), (60, 71))))
    assert win.acts.propagate.isEnabled() and win.view.canvas.editable
    go, seen = threading.Event(), []

    def slow(done, total):
        go.wait(20)
        seen.append(done)
    t = threading.Thread(target=lambda: s.propagate(0, progress=slow))
    t.start()
    try:
        qtbot.waitUntil(lambda: win.gate.background != '', timeout=10000)
        assert not win.acts.propagate.isEnabled() and not win.acts.undo.isEnabled()
        assert not win.view.canvas.editable
        assert win.view.canvas.cursor().shape() == Qt.BusyCursor
        win.edit.stroke([(10.0, 10.0), (20.0, 10.0)])            # refused, with a word why
        assert 'Busy' in win.console.messages()
    finally:
        go.set()
        t.join(60)
    qtbot.waitUntil(lambda: win.gate.background == '', timeout=10000)
    assert seen and win.acts.propagate.isEnabled() and win.view.canvas.editable
    assert win.view.canvas.cursor().shape() != Qt.BusyCursor
    assert win.acts.undo.isEnabled() and s.get_mask(N_FRAMES - 1).shape == (s.height, s.width)


def test_a_cancelled_resume_keeps_the_current_video_shown(qtbot, win, clip, monkeypatch,
                                                          errors):
    """Cancelling the resume question while opening another video used to leave the current
    video without its change events: later edits were no longer shown."""
    from gui import main_window
    win.tools.set_mode('free')
    drag(win.view.canvas, [(20, 30), (60, 30)])
    win.opts.resume = None
    monkeypatch.setattr(main_window, 'ask_resume', lambda *a: 'cancel')
    old = win.session
    win.opener.open_path(str(clip / 'clip'))
    qtbot.waitUntil(lambda: win.jobs.worker is None, timeout=30000)
    assert win.session is old and win.session.get_mask(0)[30, 40] == 1
    assert not errors and 'Opening cancelled' in win.console.messages()
    counts = Counts(win, monkeypatch)
    old.set_object_mask(0, 2, np.ones((old.height, old.width), bool))
    assert counts.take() == (0, 1) and win.view.timeline.has_mask[0]
