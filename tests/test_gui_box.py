"""The GUI's Box mode (pytest-qt, offscreen): B selects it, a left drag on the canvas draws a box
and the current object's mask becomes what the box holds; undo / redo restore; clicks refine the
box's mask afterwards. Uses the window fixtures of tests/test_gui.py."""
import numpy as np
import pytest

pytest.importorskip('PyQt5')
from PyQt5.QtCore import Qt  # noqa: E402

from tests.test_gui import (click, clip, drag, errors, gt, make_window, nets,  # noqa: E402,F401
                            win)


def _box_drag(canvas, x0, y0, x1, y1):
    drag(canvas, [(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2), (x1, y1)])


def test_box_mode_drag_makes_a_mask_and_undo_restores(qtbot, win, clip, nets):
    target = gt(clip, 0, win.session) == 1
    ys, xs = np.nonzero(target)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    qtbot.keyClick(win, Qt.Key_B)
    assert win.controller.mode == 'box' and 'Box' in win.status.status_mode.text()
    assert win.tools.mode_buttons['box'].isChecked() and win.acts.modes['box'].isChecked()
    before = win.session.get_mask(0)
    drag(win.view.canvas, [(x0, y0), (x1, y1)], Qt.RightButton)   # the right button draws nothing
    assert np.array_equal(win.session.get_mask(0), before) and not win.session.can_undo
    _box_drag(win.view.canvas, x0, y0, x1, y1)
    boxed = win.session.get_mask(0)
    assert not np.array_equal(boxed, before)
    assert 0 in set(win.session.edited_frames)
    assert [m[0] for m in win.view.canvas.marks] == ['box']
    assert 'Box on frame 0, object 1' in win.console.messages()
    outside = np.ones(boxed.shape, bool)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert not (boxed[outside] == 1).any()                       # nothing outside the box
    if nets.trained:
        obj = boxed == 1
        assert (obj & target).sum() / (obj | target).sum() > 0.7
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert np.array_equal(win.session.get_mask(0), before) and win.view.canvas.marks == []
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert np.array_equal(win.session.get_mask(0), boxed)


def test_clicks_refine_a_box_and_undo_steps_back_to_it(qtbot, win, clip):
    target = gt(clip, 0, win.session) == 2
    ys, xs = np.nonzero(target)
    qtbot.keyClick(win, Qt.Key_2)
    qtbot.keyClick(win, Qt.Key_B)
    _box_drag(win.view.canvas, int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    boxed = win.session.get_mask(0)
    assert (boxed == 2).any()
    qtbot.keyClick(win, Qt.Key_C)
    assert win.controller.mode == 'click'
    my, mx = np.argwhere(boxed == 2)[len(np.argwhere(boxed == 2)) // 2]
    click(win.view.canvas, int(mx), int(my), Qt.RightButton)          # "not the object" inside it
    assert not np.array_equal(win.session.get_mask(0), boxed)
    win.edit.undo()
    assert np.array_equal(win.session.get_mask(0), boxed)
    win.edit.undo()
    assert not win.session.get_mask(0).any()


def test_a_box_that_is_too_small_changes_nothing(qtbot, win):
    qtbot.keyClick(win, Qt.Key_B)
    click(win.view.canvas, 40, 40)                                    # a press without a drag
    assert not win.session.get_mask(0).any() and not win.session.can_undo
    assert win.view.canvas.marks == []
