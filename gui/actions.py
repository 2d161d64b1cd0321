"""The window's actions (with their shortcuts), menus and toolbar, and which of them are
enabled (they follow the EditGate)."""
import functools

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QActionGroup, QShortcut, QToolBar

from gui.controller import MODE_NAMES
from gui.icons import icon


def make_action(window, text, slot, shortcut=None, icon_name=None, tip=None, checkable=False):
    """A window-wide QAction (its shortcut works even when the menu is hidden)."""
    a = QAction(text, window)
    if icon_name:
        a.setIcon(icon(icon_name))
    if shortcut:
        keys = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
        a.setShortcuts([QKeySequence(k) for k in keys])
    tip = tip or text
    if shortcut:
        first = shortcut[0] if isinstance(shortcut, (list, tuple)) else shortcut
        tip = f'{tip} ({first})'
    a.setToolTip(tip)
    a.setStatusTip(tip)
    a.setCheckable(checkable)
    a.triggered.connect(lambda _c=False: slot())
    window.addAction(a)     # window-wide shortcut even when the menu is hidden
    return a


class Actions:
    """The actions of `window` (a MainWindow: they call its parts)."""

    def __init__(self, window):
        w, view, canvas, edit = window, window.view, window.view.canvas, window.edit
        objects, tools, opener = window.objects, window.tools, window.opener
        self.document, self.gate = window.document, window.gate
        A = functools.partial(make_action, w)
        self.open_video = A('Open &video\u2026', opener.open_video_dialog, 'Ctrl+O', 'open')
        self.open_images = A('Open &image folder\u2026', opener.open_images_dialog,
                             'Ctrl+Shift+O', 'open')
        self.load_masks = A('Load &masks\u2026', opener.load_masks_dialog, 'Ctrl+M')
        self.load_annotations = A('Load &annotations (COCO / YouTube-VIS)\u2026',
                                  opener.load_annotations_dialog)
        self.export = A('&Export masks\u2026', window.exporter.export_dialog,
                        ['Ctrl+E', 'Ctrl+S'], 'export')
        self.save_as = A('Save &workspace as\u2026', window.saver.save_workspace_as, None, None,
                         'Save the whole work into another folder; autosave goes on there')
        self.quit = A('&Quit', w.close, 'Ctrl+Q')
        self.undo = A('&Undo', edit.undo, 'Ctrl+Z', 'undo')
        self.redo = A('&Redo', edit.redo, ['Ctrl+Shift+Z', 'Ctrl+Y'], 'redo')
        self.commit = A('&Commit interaction', edit.commit, ['Return', 'Enter'], 'commit',
                        'Commit: finish the current interaction; the next strokes start a new '
                        'one')
        self.propagate = A('&Propagate', edit.propagate, 'P', 'propagate',
                           'Propagate the current frame to the whole video (fuses with other '
                           'edited frames)')
        self.reset = A('Reset &frame', edit.reset_frame, 'R', 'reset',
                       'Clear the mask of this frame')
        self.adapt = A('&Adapt network to this video', edit.adapt_network, 'Shift+P', None,
                       'Fine-tune the bundled propagation network on the annotated frames '
                       '(under a minute on a CPU); helps with see-through objects and '
                       'look-alikes')
        self.unadapt = A('Use the shipped network', edit.reset_adaptation, None, None,
                         'Undo the adaptation: propagate with the shipped network again')
        self.cancel = A('Cancel', tools.escape, 'Esc')
        self.play = A('Play / pause', view.toggle_play, 'Space')
        self.prev = A('Previous frame', lambda: view.step(-1), 'Left')
        self.next = A('Next frame', lambda: view.step(1), 'Right')
        self.back10 = A('10 frames back', lambda: view.step(-10), 'PgUp')
        self.fwd10 = A('10 frames forward', lambda: view.step(10), 'PgDown')
        self.home = A('First frame', lambda: view.goto(0), 'Home')
        self.end = A('Last frame', view.goto_last, 'End')
        self.zoom_in = A('Zoom in', lambda: canvas.zoom_by(1.5), ['+', '='], 'zoom_in')
        self.zoom_out = A('Zoom out', lambda: canvas.zoom_by(1 / 1.5), '-', 'zoom_out')
        self.zoom_fit = A('Fit frame', canvas.reset_view, '0', 'zoom_fit')
        self.overlay_next = A('Next overlay mode', view.cycle_overlay, 'V')
        self.layer = A('Layer image for "Layered" mode\u2026', view.choose_layer_image)
        self.local = A('Local refinement', lambda: tools.btn_local.toggle(), 'L', 'local')
        self.help = A('Keyboard &shortcuts', w.show_help, ['F1', '?', 'Shift+?'], 'help')
        self.add_obj = A('Add object', objects.add, 'Ctrl+N', 'add')
        self.check_next = A('Next frame to &check', view.goto_suggested, 'N', None,
                            'Jump to the propagated frame the network is least sure of '
                            '(red on the timeline strip)')
        self.hide_obj = A('Hide / show object', objects.toggle_visible, 'H', 'eye')
        self.brush_smaller = A('Smaller brush', lambda: tools.change_brush(-1), '[')
        self.brush_larger = A('Larger brush', lambda: tools.change_brush(1), ']')
        self.modes = {}
        group = QActionGroup(w)
        for m, key, ic in (('scribble', 'S', 'scribble'), ('click', 'C', 'click'),
                           ('free', 'F', 'brush'), ('box', 'B', 'box')):
            a = A(f'{MODE_NAMES[m]} mode', lambda m=m: tools.set_mode(m), key, ic,
                  checkable=True)
            group.addAction(a)
            self.modes[m] = a
        self.modes['scribble'].setChecked(True)
        tools.modeChanged.connect(lambda m: self.modes[m].setChecked(True))
        tools.localChanged.connect(self._show_local)
        for k in range(1, 10):
            sc = QShortcut(QKeySequence(str(k)), w)
            sc.activated.connect(lambda k=k: objects.select(k))
        self._menus(w)
        self._toolbar(w)
        self.gate.changed.connect(self.update_enabled)

    def _menus(self, w):
        mb = w.menuBar()
        for title, items in (
                ('&File', (self.open_video, self.open_images, self.load_masks,
                           self.load_annotations, None, self.export, self.save_as, None,
                           self.quit)),
                ('&Edit', (self.undo, self.redo, None, self.commit, self.propagate,
                           self.check_next, self.adapt, self.unadapt, self.reset, None,
                           *self.modes.values(), self.local, None, self.add_obj,
                           self.hide_obj)),
                ('&View', (self.zoom_in, self.zoom_out, self.zoom_fit, None, self.overlay_next,
                           self.layer, None, self.play, self.prev, self.next, self.home,
                           self.end, w.messages_dock.toggleViewAction())),
                ('&Help', (self.help,))):
            m = mb.addMenu(title)
            for a in items:
                m.addSeparator() if a is None else m.addAction(a)

    def _toolbar(self, w):
        tb = QToolBar('Main', w)
        tb.setObjectName('main_toolbar')
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonTextUnderIcon)
        for a in (self.open_video, self.export, None, self.undo, self.redo, None,
                  self.commit, self.propagate, self.reset, None, *self.modes.values(),
                  self.local, None, self.zoom_in, self.zoom_out, self.zoom_fit, None,
                  self.help):
            tb.addSeparator() if a is None else tb.addAction(a)
        for a, text in ((self.open_video, 'Open'), (self.export, 'Export'),
                        (self.commit, 'Commit'), (self.reset, 'Reset'), (self.local, 'Local'),
                        (self.zoom_fit, 'Fit'), (self.help, 'Help'),
                        *((a, MODE_NAMES[m]) for m, a in self.modes.items())):
            a.setIconText(text)
        w.addToolBar(Qt.TopToolBarArea, tb)

    def _show_local(self, on):
        if self.local.isChecked() != on:
            self.local.setCheckable(True)
            self.local.setChecked(on)

    def update_enabled(self):
        s, busy = self.document.session, self.gate.busy()
        edit = s is not None and not busy
        for a in (self.commit, self.propagate, self.reset, self.load_masks,
                  self.load_annotations, self.add_obj):
            a.setEnabled(edit)
        can_adapt = edit and s.can_adapt
        self.adapt.setEnabled(can_adapt)
        self.unadapt.setEnabled(can_adapt and bool(s.adapted_frames))
        self.export.setEnabled(s is not None and not busy)
        self.save_as.setEnabled(s is not None and not busy)
        for a in (self.open_video, self.open_images):
            a.setEnabled(not busy)
        self.undo.setEnabled(bool(edit and s.can_undo))
        self.redo.setEnabled(bool(edit and s.can_redo))
