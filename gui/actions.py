"""The window's actions (with their shortcuts), menus and toolbar."""
import functools

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QActionGroup, QShortcut, QToolBar

from gui.controller import MODE_NAMES
from gui.icons import icon


def make_action(self, text, slot, shortcut=None, icon_name=None, tip=None, checkable=False):
    """A window-wide QAction (its shortcut works even when the menu is hidden)."""
    a = QAction(text, self)
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
    self.addAction(a)     # window-wide shortcut even when the menu is hidden
    return a


def setup_actions(self):
    """Actions, shortcuts, menus and the toolbar of the window."""
    A = functools.partial(make_action, self)
    self.act_open_video = A('Open &video\u2026', self.open_video_dialog, 'Ctrl+O', 'open')
    self.act_open_images = A('Open &image folder\u2026', self.open_images_dialog, 'Ctrl+Shift+O', 'open')
    self.act_load_masks = A('Load &masks\u2026', self.load_masks_dialog, 'Ctrl+M')
    self.act_load_annotations = A('Load &annotations (COCO / YouTube-VIS)\u2026',
                                  self.load_annotations_dialog)
    self.act_export = A('&Export masks\u2026', self.export_dialog, ['Ctrl+E', 'Ctrl+S'], 'export')
    self.act_save_as = A('Save &workspace as\u2026', self.save_workspace_as, None, None,
                         'Save the whole work into another folder; autosave goes on there')
    self.act_quit = A('&Quit', self.close, 'Ctrl+Q')
    self.act_undo = A('&Undo', self.undo, 'Ctrl+Z', 'undo')
    self.act_redo = A('&Redo', self.redo, ['Ctrl+Shift+Z', 'Ctrl+Y'], 'redo')
    self.act_commit = A('&Commit interaction', self.commit, ['Return', 'Enter'], 'commit',
                        'Commit: finish the current interaction; the next strokes start a new one')
    self.act_propagate = A('&Propagate', self.propagate, 'P', 'propagate',
                           'Propagate the current frame to the whole video (fuses with other edited frames)')
    self.act_reset = A('Reset &frame', self.reset_frame, 'R', 'reset', 'Clear the mask of this frame')
    self.act_adapt = A('&Adapt network to this video', self.adapt_network, 'Shift+P', None,
                       'Fine-tune the bundled propagation network on the annotated frames '
                       '(under a minute on a CPU); helps with see-through objects and look-alikes')
    self.act_unadapt = A('Use the shipped network', self.reset_adaptation, None, None,
                         'Undo the adaptation: propagate with the shipped network again')
    self.act_cancel = A('Cancel', self.escape, 'Esc')
    self.act_play = A('Play / pause', self.toggle_play, 'Space')
    self.act_prev = A('Previous frame', lambda: self.step(-1), 'Left')
    self.act_next = A('Next frame', lambda: self.step(1), 'Right')
    self.act_back10 = A('10 frames back', lambda: self.step(-10), 'PgUp')
    self.act_fwd10 = A('10 frames forward', lambda: self.step(10), 'PgDown')
    self.act_home = A('First frame', lambda: self.goto(0), 'Home')
    self.act_end = A('Last frame', self.goto_last, 'End')
    self.act_zoom_in = A('Zoom in', lambda: self.canvas.zoom_by(1.5), ['+', '='], 'zoom_in')
    self.act_zoom_out = A('Zoom out', lambda: self.canvas.zoom_by(1 / 1.5), '-', 'zoom_out')
    self.act_zoom_fit = A('Fit frame', self.canvas.reset_view, '0', 'zoom_fit')
    self.act_overlay_next = A('Next overlay mode', self.cycle_overlay, 'V')
    self.act_layer = A('Layer image for "Layered" mode\u2026', self.choose_layer_image)
    self.act_local = A('Local refinement', lambda: self.btn_local.toggle(), 'L', 'local')
    self.act_help = A('Keyboard &shortcuts', self.show_help, ['F1', '?', 'Shift+?'], 'help')
    self.act_add_obj = A('Add object', self.add_object, 'Ctrl+N', 'add')
    self.act_check_next = A('Next frame to &check', self.goto_suggested, 'N', None,
                            'Jump to the propagated frame the network is least sure of '
                            '(red on the timeline strip)')
    self.act_hide_obj = A('Hide / show object', self.toggle_object_visible, 'H', 'eye')
    self.act_brush_smaller = A('Smaller brush', lambda: self.canvas.set_brush(self.canvas.brush - max(1, self.canvas.brush // 6)), '[')
    self.act_brush_larger = A('Larger brush', lambda: self.canvas.set_brush(self.canvas.brush + max(1, self.canvas.brush // 6)), ']')
    self.mode_actions = {}
    group = QActionGroup(self)
    for m, key, ic in (('scribble', 'S', 'scribble'), ('click', 'C', 'click'), ('free', 'F', 'brush'),
                       ('box', 'B', 'box')):
        a = A(f'{MODE_NAMES[m]} mode', lambda m=m: self.set_mode(m), key, ic, checkable=True)
        group.addAction(a)
        self.mode_actions[m] = a
    self.mode_actions['scribble'].setChecked(True)
    for k in range(1, 10):
        sc = QShortcut(QKeySequence(str(k)), self)
        sc.activated.connect(lambda k=k: self.select_object(k))

    mb = self.menuBar()
    m = mb.addMenu('&File')
    for a in (self.act_open_video, self.act_open_images, self.act_load_masks,
              self.act_load_annotations, None, self.act_export, self.act_save_as, None,
              self.act_quit):
        m.addSeparator() if a is None else m.addAction(a)
    m = mb.addMenu('&Edit')
    for a in (self.act_undo, self.act_redo, None, self.act_commit, self.act_propagate, self.act_check_next,
              self.act_adapt, self.act_unadapt, self.act_reset, None, *self.mode_actions.values(), self.act_local, None,
              self.act_add_obj, self.act_hide_obj):
        m.addSeparator() if a is None else m.addAction(a)
    m = mb.addMenu('&View')
    for a in (self.act_zoom_in, self.act_zoom_out, self.act_zoom_fit, None,
              self.act_overlay_next, self.act_layer, None, self.act_play, self.act_prev,
              self.act_next, self.act_home, self.act_end):
        m.addSeparator() if a is None else m.addAction(a)
    m.addAction(self.messages_dock.toggleViewAction())
    m = mb.addMenu('&Help')
    m.addAction(self.act_help)

    tb = QToolBar('Main', self)
    tb.setObjectName('main_toolbar')
    tb.setMovable(False)
    tb.setToolButtonStyle(Qt.ToolButtonTextUnderIcon)
    for a in (self.act_open_video, self.act_export, None, self.act_undo, self.act_redo, None,
              self.act_commit, self.act_propagate, self.act_reset, None,
              *self.mode_actions.values(), self.act_local, None, self.act_zoom_in,
              self.act_zoom_out, self.act_zoom_fit, None, self.act_help):
        tb.addSeparator() if a is None else tb.addAction(a)
    self.act_open_video.setIconText('Open')
    self.act_export.setIconText('Export')
    self.act_commit.setIconText('Commit')
    self.act_reset.setIconText('Reset')
    self.act_local.setIconText('Local')
    self.act_zoom_fit.setIconText('Fit')
    self.act_help.setIconText('Help')
    for m_, a in self.mode_actions.items():
        a.setIconText(MODE_NAMES[m_])
    self.addToolBar(Qt.TopToolBarArea, tb)
    self.toolbar = tb
