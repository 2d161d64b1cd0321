"""The main window: a thin client of inference_core.session.Session.

Threading: interactions (scribble/click/paint) run in the GUI thread (they take a fraction of a
second); loading, propagation and export run in a Worker thread, one job at a time, with editing
disabled meanwhile. The store notifies mask changes from whichever thread wrote them; a Qt signal
carries them to the GUI thread. The workspace is flushed after every committed change and once a
second while a job writes masks.
"""
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np
from PyQt5.QtCore import QObject, QRectF, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QKeySequence, QPalette
from PyQt5.QtWidgets import (QAction, QActionGroup, QApplication, QColorDialog, QComboBox,
                             QDockWidget, QFileDialog, QGroupBox, QHBoxLayout,
                             QInputDialog, QLabel, QListWidget, QListWidgetItem, QMainWindow,
                             QMessageBox, QProgressBar, QShortcut, QSizePolicy, QSlider,
                             QToolBar, QToolButton, QVBoxLayout, QWidget)

from gui import overlay as overlay_mod
from gui.canvas import Canvas
from gui.dialogs import ExportDialog, HelpDialog, ask_mismatch, ask_resume, confirm_replace, show_error
from gui.icons import icon
from gui.widgets import Console, Minimap, Timeline, color_icon
from gui.workers import Worker
from gui.workspace import Workspace, WorkspaceTooNew, archive_name
from util.errors import UserError

MODES = ('scribble', 'click', 'free')
MODE_NAMES = {'scribble': 'Scribble', 'click': 'Click', 'free': 'Free'}
VIDEO_FILTER = 'Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg *.mpeg *.wmv);;All files (*)'
AUTOSAVE_MS = 1000
MAX_LOCAL_SCALE = 8.0   # local regions are enlarged to the processing size, at most this much


@dataclass
class Options:
    resolution: int = 480
    num_objects: int = 1
    mem_freq: int = 5
    device: str = 'auto'
    model: str = 'auto'
    workspace: str = None
    resume: bool = None          # None = ask, True/False = scripted answer
    top_k: int = 20
    max_memory_frames: int = None


class OpenCancelled(UserError):
    """The person chose Cancel in the resume dialog."""


class _Bridge(QObject):
    """Store listeners may run in a worker thread: re-emit as a signal (queued to the GUI)."""
    masksChanged = pyqtSignal(list)
    objectsChanged = pyqtSignal()


def apply_dark_theme(app):
    app.setStyle('Fusion')
    pal = QPalette()
    base, alt, text = QColor(43, 45, 48), QColor(53, 55, 59), QColor(220, 222, 226)
    pal.setColor(QPalette.Window, base)
    pal.setColor(QPalette.WindowText, text)
    pal.setColor(QPalette.Base, QColor(33, 34, 37))
    pal.setColor(QPalette.AlternateBase, alt)
    pal.setColor(QPalette.ToolTipBase, QColor(60, 63, 67))
    pal.setColor(QPalette.ToolTipText, text)
    pal.setColor(QPalette.Text, text)
    pal.setColor(QPalette.Button, alt)
    pal.setColor(QPalette.ButtonText, text)
    pal.setColor(QPalette.BrightText, QColor(255, 90, 90))
    pal.setColor(QPalette.Highlight, QColor(47, 128, 196))
    pal.setColor(QPalette.HighlightedText, QColor(255, 255, 255))
    pal.setColor(QPalette.Link, QColor(79, 195, 247))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor(120, 122, 126))
    app.setPalette(pal)
    app.setStyleSheet(
        'QToolTip { color: #e0e0e0; background: #3c3f43; border: 1px solid #5a5d61; }'
        'QDockWidget::title { padding: 4px; background: #35373b; }'
        'QGroupBox { border: 1px solid #4a4d52; border-radius: 4px; margin-top: 8px; padding-top: 6px; }'
        'QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; }'
        'QToolBar { spacing: 2px; border: none; }'
        'QToolButton:checked { background: #2f80c4; border-radius: 3px; }'
        'QPlainTextEdit#console { font-family: monospace; font-size: 9pt; }')


class MainWindow(QMainWindow):
    jobFinished = pyqtSignal(str, bool)      # job title, completed (tests wait on this)

    def __init__(self, options=None, networks=None):
        super().__init__()
        self.opts = options or Options()
        self.networks = networks
        self.store = None
        self.session = None
        self.workspace = None
        self.cursor = 0
        self.obj = 1
        self.mode = 'scribble'
        self.overlay_mode = 'davis'
        self.layer_image = None
        self.local_mode = False
        self.local_rect = None          # QRectF of the zoomed region in local mode
        self._local_cache = None
        self._confidence_stale = True
        self.worker = None
        self._has_mask = np.zeros(0, bool)
        self._bridge = _Bridge()
        self._bridge.masksChanged.connect(self._on_masks_changed)
        self._bridge.objectsChanged.connect(self._on_objects_changed)
        self._export_dir = ''
        self._mask_inputs = []      # mask files/folders loaded into this video: never export over them
        self._last_interaction_ms = None
        self._brush_by_mode = {'scribble': 1, 'click': 1, 'free': 8}
        self._autosave_error = None

        self.setWindowTitle('Interactive VOS')
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self._build_ui()
        self._build_actions()
        self._set_editing_enabled(False)

        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_step)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self._autosave_tick)
        self.autosave_timer.start()
        if networks is not None:
            self.log(f'Networks: {networks.kind} on {networks.device}')

    # ================================================================== UI construction
    def _build_ui(self):
        central = QWidget(self)
        vbox = QVBoxLayout(central)
        vbox.setContentsMargins(4, 4, 4, 4)
        vbox.setSpacing(4)
        self.canvas = Canvas(central)
        self.canvas.strokeFinished.connect(self._on_stroke)
        self.canvas.clicked.connect(self._on_click)
        self.canvas.regionSelected.connect(self._on_region_selected)
        self.canvas.brushChanged.connect(self._on_brush_changed_from_canvas)
        self.canvas.viewChanged.connect(self._on_view_changed)
        self.canvas.hovered.connect(self._on_hover)
        vbox.addWidget(self.canvas, 1)

        row = QHBoxLayout()
        self.btn_prev = self._tool_button('prev', 'Previous frame (Left)', lambda: self.step(-1))
        self.btn_play = self._tool_button('play', 'Play / pause (Space)', self.toggle_play)
        self.btn_next = self._tool_button('next', 'Next frame (Right)', lambda: self.step(1))
        for b in (self.btn_prev, self.btn_play, self.btn_next):
            row.addWidget(b)
        self.timeline = Timeline(central)
        self.timeline.valueChanged.connect(self._on_timeline)
        row.addWidget(self.timeline, 1)
        self.frame_label = QLabel('\u2013 / \u2013')
        self.frame_label.setMinimumWidth(90)
        self.frame_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        row.addWidget(self.frame_label)
        vbox.addLayout(row)
        self.setCentralWidget(central)

        # --- right dock: objects, tools, view
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(4, 4, 4, 4)

        obj_box = QGroupBox('Objects')
        ol = QVBoxLayout(obj_box)
        self.object_list = QListWidget()
        self.object_list.setToolTip('Objects: select with 1-9 or a click; tick = visible; '
                                    'double-click to rename')
        self.object_list.currentRowChanged.connect(self._on_object_row)
        self.object_list.itemChanged.connect(self._on_object_item_changed)
        self.object_list.itemDoubleClicked.connect(lambda _i: self.rename_object())
        self.object_list.setMinimumHeight(120)
        ol.addWidget(self.object_list)
        orow = QHBoxLayout()
        self.btn_obj_add = self._tool_button('add', 'Add an object (N)', self.add_object)
        self.btn_obj_rename = self._tool_button('rename', 'Rename the object', self.rename_object)
        self.btn_obj_color = self._tool_button('color', 'Change the object colour', self.recolor_object)
        self.btn_obj_hide = self._tool_button('eye', 'Hide / show the object (H)', self.toggle_object_visible)
        self.btn_obj_del = self._tool_button('remove', 'Delete the object (all its masks)', self.delete_object)
        for b in (self.btn_obj_add, self.btn_obj_rename, self.btn_obj_color, self.btn_obj_hide,
                  self.btn_obj_del):
            orow.addWidget(b)
        orow.addStretch(1)
        ol.addLayout(orow)
        sl.addWidget(obj_box)

        tool_box = QGroupBox('Interaction')
        tl = QVBoxLayout(tool_box)
        mrow = QHBoxLayout()
        self.mode_buttons = {}
        for m, ic, tip in (
                ('scribble', 'scribble', 'Scribble: draw on the object (left) or background (right) (S)'),
                ('click', 'click', 'Click: click on the object (left) or background (right) (C)'),
                ('free', 'brush', 'Free: paint the mask directly, right button erases (F)')):
            b = QToolButton()
            b.setIcon(icon(ic))
            b.setText(MODE_NAMES[m])
            b.setToolButtonStyle(Qt.ToolButtonTextUnderIcon)
            b.setCheckable(True)
            b.setToolTip(tip)
            b.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
            b.clicked.connect(lambda _c, m=m: self.set_mode(m))
            mrow.addWidget(b)
            self.mode_buttons[m] = b
        self.mode_buttons['scribble'].setChecked(True)
        tl.addLayout(mrow)
        brow = QHBoxLayout()
        brow.addWidget(QLabel('Brush'))
        self.brush_slider = QSlider(Qt.Horizontal)
        self.brush_slider.setRange(1, 100)
        self.brush_slider.setValue(self.canvas.brush)
        self.brush_slider.setToolTip('Brush radius in pixels (mouse wheel, [ and ])')
        self.brush_slider.valueChanged.connect(self.canvas.set_brush)
        brow.addWidget(self.brush_slider, 1)
        self.brush_label = QLabel(str(self.canvas.brush))
        self.brush_label.setMinimumWidth(24)
        self.brush_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        brow.addWidget(self.brush_label)
        tl.addLayout(brow)
        self.btn_local = QToolButton()
        self.btn_local.setIcon(icon('local'))
        self.btn_local.setText('Local refinement')
        self.btn_local.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.btn_local.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.btn_local.setCheckable(True)
        self.btn_local.setToolTip('Local refinement: drag a box to zoom in; scribbles then refine '
                                  'only that region at a higher resolution (L)')
        self.btn_local.toggled.connect(self.set_local_mode)
        tl.addWidget(self.btn_local)
        sl.addWidget(tool_box)

        view_box = QGroupBox('View')
        vl = QVBoxLayout(view_box)
        self.overlay_combo = QComboBox()
        for m in overlay_mod.MODES:
            self.overlay_combo.addItem(overlay_mod.MODE_LABELS[m], m)
        self.overlay_combo.setToolTip('How masks are drawn over the frame (V cycles)')
        self.overlay_combo.currentIndexChanged.connect(
            lambda i: self.set_overlay_mode(self.overlay_combo.itemData(i)))
        vl.addWidget(self.overlay_combo)
        zrow = QHBoxLayout()
        zrow.addWidget(self._tool_button('zoom_in', 'Zoom in (+, ctrl+wheel)', lambda: self.canvas.zoom_by(1.5)))
        zrow.addWidget(self._tool_button('zoom_out', 'Zoom out (-)', lambda: self.canvas.zoom_by(1 / 1.5)))
        zrow.addWidget(self._tool_button('zoom_fit', 'Fit the frame (0)', self.canvas.reset_view))
        self.zoom_label = QLabel('\u2013')
        self.zoom_label.setToolTip('Display scale: screen pixels per frame pixel (100 % = actual size)')
        zrow.addWidget(self.zoom_label)
        zrow.addStretch(1)
        vl.addLayout(zrow)
        self.minimap = Minimap()
        self.minimap.centerRequested.connect(self.canvas.set_center)
        vl.addWidget(self.minimap)
        sl.addWidget(view_box)
        sl.addStretch(1)

        dock = QDockWidget('Controls', self)
        dock.setObjectName('controls')
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        dock.setWidget(side)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)

        self.console = Console()
        cdock = QDockWidget('Messages', self)
        cdock.setObjectName('messages')
        cdock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable |
                          QDockWidget.DockWidgetClosable)
        cdock.setWidget(self.console)
        self.addDockWidget(Qt.BottomDockWidgetArea, cdock)
        self.console.setMaximumHeight(140)
        self.messages_dock = cdock

        # --- status bar
        sb = self.statusBar()
        self.status_frame = QLabel()
        self.status_object = QLabel()
        self.status_mode = QLabel()
        self.status_device = QLabel()
        self.status_info = QLabel()
        for w in (self.status_frame, self.status_object, self.status_mode, self.status_device):
            w.setContentsMargins(6, 0, 6, 0)
            sb.addWidget(w)
        sb.addWidget(self.status_info, 1)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QToolButton()
        self.cancel_button.setIcon(icon('cancel'))
        self.cancel_button.setText('Cancel')
        self.cancel_button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.cancel_button.setToolTip('Stop the running job after the current frame (Esc)')
        self.cancel_button.clicked.connect(self.cancel_job)
        self.cancel_button.hide()
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        self._update_status()

    def _tool_button(self, icon_name, tip, slot):
        b = QToolButton()
        b.setIcon(icon(icon_name))
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.clicked.connect(lambda _c=False: slot())
        return b

    def _action(self, text, slot, shortcut=None, icon_name=None, tip=None, checkable=False):
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

    def _build_actions(self):
        A = self._action
        self.act_open_video = A('Open &video\u2026', self.open_video_dialog, 'Ctrl+O', 'open')
        self.act_open_images = A('Open &image folder\u2026', self.open_images_dialog, 'Ctrl+Shift+O', 'open')
        self.act_load_masks = A('Load &masks\u2026', self.load_masks_dialog, 'Ctrl+M')
        self.act_load_annotations = A('Load &annotations (COCO / YouTube-VIS)\u2026',
                                      self.load_annotations_dialog)
        self.act_export = A('&Export masks\u2026', self.export_dialog, ['Ctrl+E', 'Ctrl+S'], 'export')
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
        self.act_cancel = A('Cancel', self._escape, 'Esc')
        self.act_play = A('Play / pause', self.toggle_play, 'Space')
        self.act_prev = A('Previous frame', lambda: self.step(-1), 'Left')
        self.act_next = A('Next frame', lambda: self.step(1), 'Right')
        self.act_back10 = A('10 frames back', lambda: self.step(-10), 'PgUp')
        self.act_fwd10 = A('10 frames forward', lambda: self.step(10), 'PgDown')
        self.act_home = A('First frame', lambda: self.goto(0), 'Home')
        self.act_end = A('Last frame', lambda: self.goto(self.store.num_frames - 1 if self.store else 0), 'End')
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
        for m, key, ic in (('scribble', 'S', 'scribble'), ('click', 'C', 'click'), ('free', 'F', 'brush')):
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
                  self.act_load_annotations, None, self.act_export, None, self.act_quit):
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

    # ================================================================== helpers
    def log(self, text, level='info'):
        self.console.log(text, level)

    def error(self, message, title='Error'):
        """Show a UserError-style message: console + message box."""
        self.log(message, 'error')
        show_error(self, title, message)

    def busy(self):
        return self.worker is not None

    def _set_editing_enabled(self, on):
        has = self.store is not None
        edit = on and has and not self.busy()
        for a in (self.act_undo, self.act_redo, self.act_commit, self.act_propagate,
                  self.act_reset, self.act_load_masks, self.act_load_annotations, self.act_add_obj):
            a.setEnabled(edit)
        can_adapt = edit and self.session is not None and self.session.can_adapt
        self.act_adapt.setEnabled(can_adapt)
        self.act_unadapt.setEnabled(can_adapt and bool(self.session.adapted_frames))
        self.act_export.setEnabled(has and not self.busy())
        for a in (self.act_open_video, self.act_open_images):
            a.setEnabled(not self.busy())
        for b in (self.btn_obj_add, self.btn_obj_rename, self.btn_obj_color, self.btn_obj_del):
            b.setEnabled(edit)
        self.canvas.editable = edit
        self._update_undo_actions()

    def _update_undo_actions(self):
        s = self.session
        edit = s is not None and not self.busy()
        for name, act in (('can_undo', self.act_undo), ('can_redo', self.act_redo)):
            attr = getattr(s, name, None) if s is not None else None
            ok = edit and (attr() if callable(attr) else bool(attr) if attr is not None else True)
            act.setEnabled(bool(ok))

    # ================================================================== opening
    def open_video_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, 'Open video', '', VIDEO_FILTER)
        if path:
            self.open_path(path)

    def open_images_dialog(self):
        path = QFileDialog.getExistingDirectory(self, 'Open image folder')
        if path:
            self.open_path(path)

    def open_path(self, path, masks=None, resume=None):
        """Load a video file / image folder in a worker; on success it replaces the current
        video (after flushing its workspace). Errors -> message box, nothing changed."""
        if self.busy():
            self.error('Wait for the running job to finish (or cancel it) first.')
            return
        from util.frames_io import open_frames
        res = self.opts.resolution
        self.log(f'Opening {path} \u2026')

        def job(progress, should_cancel):
            return open_frames(path, resolution=res, progress=progress, should_cancel=should_cancel)

        def done(store):
            if store is None:
                self.log('Opening cancelled.')
                return
            try:
                self.install_store(store, masks=masks, resume=resume)
            except OpenCancelled:
                store.close()
                self.log('Opening cancelled.')
            except UserError as e:
                store.close()
                self.error(str(e), 'Cannot open')
        self.run_job(job, f'Loading {os.path.basename(path.rstrip(os.sep)) or path}', done,
                     title='Cannot open')

    def install_store(self, store, masks=None, resume=None):
        """Make `store` the current video: workspace (resume / start over), initial masks,
        a new Session. Raises UserError without changing the current video on bad input."""
        from inference_core.session import Session
        if store.num_objects < self.opts.num_objects:
            store.ensure_objects(self.opts.num_objects)
        ws = Workspace.for_source(store.source or 'untitled', explicit=self.opts.workspace) \
            if (store.source or self.opts.workspace) else None
        # Decide first, change the workspace folder last: a failure below (bad --masks, ...)
        # must leave the saved work untouched.
        meta = None
        resumed = False
        fresh = False
        if ws is not None and ws.exists():
            try:
                meta = ws.check_matches(store)
            except WorkspaceTooNew:
                raise
            except UserError as e:
                # Never reset silently: ask (or follow --no-resume); the old work is kept whole.
                choice = self.opts.resume if resume is None else resume
                if choice is False:
                    choice = 'fresh'
                else:
                    choice = ask_mismatch(self, ws.path, str(e), archive_name(ws.path))
                if choice != 'fresh':
                    raise OpenCancelled('opening cancelled') from None
                self.log(str(e), 'warning')
                fresh = True
            if meta is not None and (meta.get('edited_frames') or ws.mask_frames()):
                choice = self.opts.resume if resume is None else resume
                if choice is None:
                    choice = ask_resume(self, ws.path, ws.describe(meta))
                else:
                    choice = 'resume' if choice else 'fresh'
                if choice == 'cancel':
                    raise OpenCancelled('opening cancelled')
                if choice == 'resume':
                    meta = ws.load_into(store)
                    resumed = True
                else:
                    fresh = True
        if masks and not resumed:
            from util.mask_io import load_masks
            done = load_masks(store, masks)
            self.log(f'Loaded {len(done)} mask(s) from {masks}')
        elif masks:
            self.log('Resumed the workspace; --masks ignored', 'warning')
        for w in store.load_warnings:
            self.log(w, 'warning')
        session = Session(store, networks=self.networks, device=self.opts.device,
                          model=self.opts.model, mem_freq=self.opts.mem_freq, top_k=self.opts.top_k,
                          max_memory_frames=self.opts.max_memory_frames)
        if self.networks is None:
            self.networks = getattr(session, 'networks', None)

        if fresh:
            kept = ws.start_fresh()
            if kept:
                self.log(f'Started a new workspace; the previous work is kept in {kept}', 'warning')
        self._close_store()
        self.store, self.session, self.workspace = store, session, ws
        self._mask_inputs = [masks] if masks else []
        store.add_listener(self._store_listener)
        store.add_object_listener(self._bridge.objectsChanged.emit)
        # Read through the Session (one frame at a time): touching store.masks of a disk-backed
        # 10,000-frame video would map gigabytes into the process.
        self._has_mask = np.array([session.get_mask(t).any() for t in range(store.num_frames)]) \
            if store.edited_frames or resumed or masks else np.zeros(store.num_frames, bool)
        self.cursor = 0
        self.obj = 1 if store.num_objects else 0
        self._local_cache = None
        self.canvas.clear_marks()
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, store.num_frames - 1)
        self.timeline.setValue(0)
        self.timeline.blockSignals(False)
        self.canvas.reset_view()
        if resumed and meta:
            settings = meta.get('settings', {})
            self.cursor = min(max(int(meta.get('current_frame', 0)), 0), store.num_frames - 1)
            if settings.get('overlay') in overlay_mod.MODES:
                self.set_overlay_mode(settings['overlay'])
            self.log(f'Resumed workspace {ws.path}')
        if masks and not resumed:
            for t in (sorted(store.edited_frames) or [0])[:1]:
                self.cursor = t
        if ws is not None and (store.edited_frames or masks):
            ws.mark_dirty([t for t in range(store.num_frames) if self._has_mask[t]])
            self._flush_workspace()
        name = os.path.basename(store.source.rstrip(os.sep)) if store.source else 'untitled'
        self.setWindowTitle(f'{name} \u2013 Interactive VOS')
        self.log(f'Opened {store.source or "video"}: {store.num_frames} frames, processing '
                 f'{store.width}x{store.height} (original {store.orig_width}x{store.orig_height})'
                 + (f', workspace {ws.path}' if ws else ''))
        self._rebuild_object_list()
        self._set_editing_enabled(True)
        self.goto(self.cursor, force=True)
        return store

    def _close_store(self):
        if self.store is None:
            return
        self._flush_workspace()
        self.store.remove_listener(self._store_listener)
        self.store.remove_object_listener(self._bridge.objectsChanged.emit)
        self.session.close()      # closes the store too
        self.store.close()
        self.store = self.session = self.workspace = None

    def load_masks_dialog(self):
        if self.store is None or self.busy():
            return
        path = QFileDialog.getExistingDirectory(self, 'Load masks (folder of PNGs)')
        if path:
            self.load_masks(path)

    def load_annotations_dialog(self):
        if self.store is None or self.busy():
            return
        path, _ = QFileDialog.getOpenFileName(self, 'Load annotations (COCO or YouTube-VIS JSON)',
                                              '', 'Annotation files (*.json)')
        if path:
            self.load_masks(path)

    def load_masks(self, path):
        """Load mask PNGs into the current video through the Session (the loaded frames become
        edited frames; one undo step). Errors -> message box, nothing changed."""
        if self.store is None or self.busy():
            return
        self._end_interaction_marks()
        try:
            QApplication.setOverrideCursor(Qt.WaitCursor)
            done = self.session.load_masks(path)
        except UserError as e:
            self.error(str(e), 'Cannot load masks')
            return
        finally:
            QApplication.restoreOverrideCursor()
        self.log(f'Loaded {len(done)} mask(s) from {path}')
        self._mask_inputs.append(path)
        self._rebuild_object_list()
        if done:
            self.goto(done[0], force=True)
        self._flush_workspace()
        self._update_undo_actions()

    # drag & drop -----------------------------------------------------------
    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        urls = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if urls:
            e.acceptProposedAction()
            self.open_path(urls[0])

    # ================================================================== jobs
    def run_job(self, fn, label, on_done=None, title='Error'):
        """Run fn(progress, should_cancel) in a Worker; on_done(result) in the GUI thread."""
        if self.busy():
            self.error('Another job is running.')
            return None
        self.stop_play()
        w = Worker(fn, label, self)
        self.worker = w
        self.progress.setRange(0, 0)
        self.progress.setFormat(f'{label} %p%')
        self.progress.show()
        self.cancel_button.show()
        self.status_info.setText(label + '\u2026')
        self._set_editing_enabled(False)
        t0 = time.monotonic()

        def on_progress(done, total):
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

        def finish(ok_result, err=None, trace=''):
            self.worker = None
            w.wait()
            w.deleteLater()
            self.progress.hide()
            self.cancel_button.hide()
            self.status_info.setText('')
            self._set_editing_enabled(True)
            # Jobs return False (propagate, export) or None (loading) when they were cancelled.
            completed = err is None and ok_result is not None and ok_result is not False
            if err is not None:
                if trace:
                    self.log(trace.rstrip(), 'error')
                self.error(err, title)
            elif on_done is not None:
                try:
                    on_done(ok_result)
                except UserError as e:
                    completed = False
                    self.error(str(e), title)
            self._flush_workspace()
            self._update_confidence()
            self._update_status()
            self.log(f'{label}: {"done" if completed else "failed" if err else "stopped"} '
                     f'in {time.monotonic() - t0:.1f} s')
            self.jobFinished.emit(label, completed)

        w.progressed.connect(on_progress)
        w.succeeded.connect(lambda r: finish(r))
        w.failed.connect(lambda msg, tb: finish(None, msg, tb))
        w.start()
        return w

    def cancel_job(self):
        if self.worker is not None:
            self.worker.cancel()
            self.log(f'Cancelling {self.worker.title} after the current frame \u2026')

    def _escape(self):
        if self.worker is not None:
            self.cancel_job()
        else:
            self.canvas.cancel_stroke()
            if self.canvas.region_select:
                self.btn_local.setChecked(False)

    # ================================================================== frames / display
    def goto(self, t, force=False):
        if self.store is None:
            return
        t = int(min(max(t, 0), self.store.num_frames - 1))
        changed = t != self.cursor
        self.cursor = t
        if changed:
            self._end_interaction_marks()
        if self.timeline.value() != t:
            self.timeline.blockSignals(True)
            self.timeline.setValue(t)
            self.timeline.blockSignals(False)
        self.refresh_view()

    def step(self, d):
        if self.store is not None:
            self.goto(self.cursor + d)

    def _on_timeline(self, v):
        self.goto(v)

    def refresh_view(self):
        if self.store is None:
            return
        t = self.cursor
        frame = self.store.frame(t)
        labels = self.store.get_mask(t)
        visible = [o.id for o in self.store.objects if o.visible]
        img = overlay_mod.compose(frame, labels, self.overlay_mode, self.store.colors(), visible,
                                  self.layer_image)
        self.canvas.set_image(img)
        if not self.play_timer.isActive():
            self.minimap.set_image(img)
        self.minimap.set_view(self.canvas.visible_rect())
        self.timeline.set_marks(self.store.edited_frames, self._has_mask)
        if self._confidence_stale:
            self._update_confidence()
        self._update_status()

    def _update_confidence(self):
        # O(frames): done when masks changed, not on every frame shown (playback, scrubbing)
        self._confidence_stale = False
        if self.session is not None:
            self.timeline.set_confidence(self.session.frame_confidence(), self.session.suggest_frame())

    def goto_suggested(self):
        """Jump to the frame to check next (Session.suggest_frame)."""
        if self.session is None:
            return
        t = self.session.suggest_frame()
        if t is None:
            self.log('Nothing to check yet: propagate first (P).')
            return
        c = self.session.frame_confidence()[t]
        self.log(f'Frame {t}: the least confident propagated frame (confidence {c:.2f}).')
        self.goto(t)

    def _store_listener(self, frames):
        # Any thread. The workspace bookkeeping is thread-safe; the repaint goes via a signal.
        if self.workspace is not None:
            self.workspace.mark_dirty(frames)
        self._bridge.masksChanged.emit(list(frames))

    def _on_masks_changed(self, frames):
        if self.store is None:
            return
        self._confidence_stale = True
        for t in frames:
            if 0 <= t < len(self._has_mask):
                self._has_mask[t] = self.session.get_mask(t).any()
        if self.cursor in frames:
            self.refresh_view()
        else:
            self.timeline.set_marks(self.store.edited_frames, self._has_mask)

    def _update_status(self):
        s = self.store
        if s is None:
            self.status_frame.setText('No video')
            self.frame_label.setText('\u2013 / \u2013')
        else:
            edited = ' (edited)' if self.cursor in s.edited_frames else ''
            self.status_frame.setText(f'Frame {self.cursor} / {s.num_frames - 1}{edited}')
            self.frame_label.setText(f'{self.cursor} / {s.num_frames - 1}')
        if s is not None and 1 <= self.obj <= s.num_objects:
            o = s.get_object(self.obj)
            r, g, b = o.color
            self.status_object.setText(
                f'<span style="color: rgb({r},{g},{b}); font-size: 14pt">\u25a0</span> '
                f'Object {o.id}: {o.name}' + ('' if o.visible else ' (hidden)'))
        else:
            self.status_object.setText('No object')
        mode = MODE_NAMES[self.mode] + (' \u00b7 local' if self.local_mode else '')
        self.status_mode.setText(f'Mode: {mode} \u00b7 brush {self.canvas.brush}')
        dev = getattr(self.networks, 'device', None) or self.opts.device
        kind = getattr(self.networks, 'kind', None)
        self.status_device.setText(f'Device: {dev}' + (f' ({kind})' if kind else ''))
        self.zoom_label.setText(self._zoom_text())

    def _zoom_text(self):
        if self.store is None:
            return '\u2013'
        return f'{self.canvas.scale() * 100:.0f} %'

    def _on_view_changed(self):
        self.minimap.set_view(self.canvas.visible_rect())
        self.zoom_label.setText(self._zoom_text())

    def _on_hover(self, x, y):
        if x >= 0 and self.store is not None:
            lab = int(self.store.masks[self.cursor, y, x]) if y < self.store.height and x < self.store.width else 0
            self.status_info.setText(f'x {x}, y {y}, label {lab}' if not self.busy() else self.status_info.text())

    # ---- overlay
    def set_overlay_mode(self, mode):
        if mode not in overlay_mod.MODES:
            return
        self.overlay_mode = mode
        i = self.overlay_combo.findData(mode)
        if self.overlay_combo.currentIndex() != i:
            self.overlay_combo.blockSignals(True)
            self.overlay_combo.setCurrentIndex(i)
            self.overlay_combo.blockSignals(False)
        self.refresh_view()

    def cycle_overlay(self):
        modes = overlay_mod.MODES
        self.set_overlay_mode(modes[(modes.index(self.overlay_mode) + 1) % len(modes)])

    def choose_layer_image(self):
        path, _ = QFileDialog.getOpenFileName(self, 'Layer image', '', 'Images (*.png *.jpg *.jpeg *.bmp *.webp)')
        if not path:
            return
        from util.frames_io import read_image
        try:
            img = read_image(path)
        except UserError as e:
            self.error(str(e), 'Cannot read image')
            return
        if self.store is not None:
            img = cv2.resize(img, (self.store.width, self.store.height), interpolation=cv2.INTER_AREA)
        self.layer_image = img
        self.set_overlay_mode('layered')

    # ---- playback
    def toggle_play(self):
        if self.play_timer.isActive():
            self.stop_play()
        elif self.store is not None and not self.busy():
            if self.cursor >= self.store.num_frames - 1:
                self.goto(0)
            fps = self.store.fps or 24.0
            self.play_timer.start(int(1000 / min(max(fps, 1), 60)))
            self.btn_play.setIcon(icon('pause'))

    def stop_play(self):
        if self.play_timer.isActive():
            self.play_timer.stop()
            self.btn_play.setIcon(icon('play'))
            self.refresh_view()

    def _play_step(self):
        if self.store is None or self.cursor >= self.store.num_frames - 1:
            self.stop_play()
            return
        self.goto(self.cursor + 1)

    # ================================================================== objects
    def _rebuild_object_list(self):
        lw = self.object_list
        lw.blockSignals(True)
        lw.clear()
        if self.store is not None:
            for o in self.store.objects:
                key = f'{o.id}  ' if o.id <= 9 else ''
                it = QListWidgetItem(color_icon(o.color, hidden=not o.visible), f'{key}{o.name}')
                it.setFlags(it.flags() | Qt.ItemIsUserCheckable)
                it.setCheckState(Qt.Checked if o.visible else Qt.Unchecked)
                it.setData(Qt.UserRole, o.id)
                lw.addItem(it)
            if self.obj > self.store.num_objects:
                self.obj = self.store.num_objects
            if self.obj >= 1:
                lw.setCurrentRow(self.obj - 1)
        lw.blockSignals(False)
        colour = self.store.get_object(self.obj).color if self.store is not None and self.obj >= 1 else (255, 255, 255)
        self.canvas.paint_color = QColor(*colour)
        self.btn_obj_del.setEnabled(self.store is not None and self.store.num_objects > 0 and not self.busy())
        self._update_status()

    def _on_objects_changed(self):
        self._local_cache = None
        self._rebuild_object_list()
        self.refresh_view()
        if self.workspace is not None:
            self.workspace.mark_dirty([])
            self._flush_workspace()

    def _on_object_row(self, row):
        if self.store is not None and 0 <= row < self.store.num_objects:
            self.select_object(row + 1)

    def _on_object_item_changed(self, item):
        if self.store is None:
            return
        oid = item.data(Qt.UserRole)
        vis = item.checkState() == Qt.Checked
        if 1 <= oid <= self.store.num_objects and self.store.get_object(oid).visible != vis:
            self.store.set_visible(oid, vis)

    def select_object(self, obj_id):
        if self.store is None:
            return
        if not 1 <= obj_id <= self.store.num_objects:
            self.log(f'There is no object {obj_id} (press N to add one).', 'warning')
            return
        self.obj = obj_id
        if self.object_list.currentRow() != obj_id - 1:
            self.object_list.blockSignals(True)
            self.object_list.setCurrentRow(obj_id - 1)
            self.object_list.blockSignals(False)
        self.canvas.paint_color = QColor(*self.store.get_object(obj_id).color)
        self._update_status()

    def add_object(self):
        if self.store is None or self.busy():
            return
        try:
            oid = self.store.add_object()
        except UserError as e:
            self.error(str(e))
            return
        self.select_object(oid)
        self.log(f'Added object {oid}')

    def rename_object(self, name=None):
        if self.store is None or self.obj < 1 or self.busy():
            return
        o = self.store.get_object(self.obj)
        if name is None:
            name, ok = QInputDialog.getText(self, 'Rename object', f'Name of object {o.id}:', text=o.name)
            if not ok:
                return
        try:
            self.store.rename_object(o.id, name)
        except UserError as e:
            self.error(str(e))

    def recolor_object(self, color=None):
        if self.store is None or self.obj < 1 or self.busy():
            return
        o = self.store.get_object(self.obj)
        if color is None:
            c = QColorDialog.getColor(QColor(*o.color), self, f'Colour of {o.name}')
            if not c.isValid():
                return
            color = (c.red(), c.green(), c.blue())
        self.store.set_color(o.id, color)

    def toggle_object_visible(self):
        if self.store is None or self.obj < 1:
            return
        o = self.store.get_object(self.obj)
        self.store.set_visible(o.id, not o.visible)

    def delete_object(self, confirm=True):
        if self.store is None or self.obj < 1 or self.busy():
            return
        o = self.store.get_object(self.obj)
        if confirm:
            ans = QMessageBox.question(
                self, 'Delete object',
                f'Delete "{o.name}" and its masks in every frame? Objects above it move down '
                f'by one. This cannot be undone.')
            if ans != QMessageBox.Yes:
                return
        try:
            self.session.remove_object(o.id)
        except UserError as e:
            self.error(str(e))
            return
        self.log(f'Deleted object {o.id} ({o.name})')
        if self.obj > self.store.num_objects:
            self.obj = self.store.num_objects
        self._rebuild_object_list()
        self._flush_workspace()

    # ================================================================== interaction
    def set_mode(self, mode):
        if mode not in MODES:
            return
        if mode != self.mode:
            self._end_interaction_marks()
            # Each mode keeps its own brush: thin scribbles (what S2M was trained on), a wider
            # free brush.
            self._brush_by_mode[self.mode] = self.canvas.brush
            self.canvas.set_brush(self._brush_by_mode.get(mode, self.canvas.brush))
        self.mode = mode
        self.canvas.mode = mode
        for m, b in self.mode_buttons.items():
            b.setChecked(m == mode)
        self.mode_actions[mode].setChecked(True)
        self._update_status()
        self.canvas.update()

    def _on_brush_changed_from_canvas(self, r):
        if self.brush_slider.value() != r:
            self.brush_slider.blockSignals(True)
            self.brush_slider.setValue(r)
            self.brush_slider.blockSignals(False)
        self.brush_label.setText(str(r))
        self._update_status()

    def _can_edit(self):
        if self.store is None or self.session is None:
            return False
        if self.busy():
            self.log('Busy: wait for the running job or cancel it (Esc).', 'warning')
            return False
        if self.obj < 1:
            self.error('There is no object: add one first (N).')
            return False
        return True

    def _after_edit(self, what, t0):
        self._last_interaction_ms = (time.perf_counter() - t0) * 1000
        self.log(f'{what} on frame {self.cursor}, object {self.obj} '
                 f'({self._last_interaction_ms:.0f} ms)')
        self._flush_workspace()
        self._update_undo_actions()
        self.refresh_view()

    def _on_stroke(self, points, positive):
        if not self._can_edit():
            self.canvas.clear_marks()
            return
        t0 = time.perf_counter()
        try:
            QApplication.setOverrideCursor(Qt.WaitCursor)
            if self.mode == 'free':
                mask = stroke_mask(points, self.canvas.brush, self.store.height, self.store.width)
                self.session.paint(self.cursor, self.obj, mask, erase=not positive)
                what = 'Painted' if positive else 'Erased'
            elif self.local_mode and self.local_rect is not None:
                self._local_scribble(points, positive)
                what = 'Local scribble'
            else:
                pts = _session_points(points)
                kw = {'positive': [pts], 'negative': []} if positive else \
                    {'positive': [], 'negative': [pts]}
                self.session.scribble(self.cursor, self.obj, brush=2 * self.canvas.brush + 1, **kw)
                what = 'Scribble' if positive else 'Negative scribble'
        except UserError as e:
            self.error(str(e))
            return
        finally:
            QApplication.restoreOverrideCursor()
        self._after_edit(what, t0)

    def _on_click(self, x, y, positive):
        if not self._can_edit():
            return
        t0 = time.perf_counter()
        try:
            QApplication.setOverrideCursor(Qt.WaitCursor)
            (px, py), = _session_points([(x, y)])
            self.session.click(self.cursor, self.obj, px, py, positive=positive)
        except UserError as e:
            self.error(str(e))
            return
        finally:
            QApplication.restoreOverrideCursor()
        self.canvas.add_click_mark(x, y, positive)
        self._after_edit('Click' if positive else 'Negative click', t0)

    # ---- local refinement: the zoomed region, enlarged, goes through its own small Session
    def set_local_mode(self, on):
        self.local_mode = bool(on)
        if self.act_local.isChecked() != self.local_mode:
            self.act_local.setCheckable(True)
            self.act_local.setChecked(self.local_mode)
        self._end_interaction_marks()
        if on:
            self.canvas.region_select = True
            self.log('Local refinement: drag a box around the part to refine.')
        else:
            self.canvas.region_select = False
            self.local_rect = None
            self.canvas.reset_view()
        self._update_status()

    def _on_region_selected(self, rect):
        self.canvas.region_select = False
        self.local_rect = QRectF(rect)
        self.canvas.zoom_to_rect(rect)
        if self.mode == 'click':
            self.set_mode('scribble')
        self.log(f'Local region x {rect.x():.0f}\u2013{rect.right():.0f}, '
                 f'y {rect.y():.0f}\u2013{rect.bottom():.0f}: scribbles now refine this region.')

    def _local_scribble(self, points, positive):
        from inference_core.session import Session
        from inference_core.store import FrameStore, resize_labels
        # The region is what the zoomed view shows (it follows zooming and panning).
        r = self.canvas.visible_rect()
        H, W = self.store.height, self.store.width
        x0, y0 = max(int(np.floor(r.x())), 0), max(int(np.floor(r.y())), 0)
        x1, y1 = min(int(np.ceil(r.right())), W), min(int(np.ceil(r.bottom())), H)
        ch, cw = y1 - y0, x1 - x0
        # MiVOS local mode: the region is enlarged to the processing size so small details get
        # as many network pixels as a whole frame.
        scale = min(max(1.0, min(H, W) / min(ch, cw)), MAX_LOCAL_SCALE)
        lh, lw = int(round(ch * scale)), int(round(cw * scale))
        key = (self.cursor, x0, y0, x1, y1, self.store.num_objects)
        cache = self._local_cache
        if cache is None or cache[0] != key:
            crop = np.ascontiguousarray(self.store.frame(self.cursor)[y0:y1, x0:x1])
            big = cv2.resize(crop, (lw, lh), interpolation=cv2.INTER_CUBIC)
            sub = FrameStore(big[None], storage='memory')
            sub.ensure_objects(self.store.num_objects)
            sess = Session(sub, networks=self.networks, device=self.opts.device,
                           history_bytes=16 << 20)
            cache = self._local_cache = (key, sub, sess)
        _, sub, sess = cache
        # The sub-session starts from the current mask of the region every time, so edits made
        # outside local mode (or undone) are respected.
        cur = self.store.get_mask(self.cursor)
        sub.set_mask(0, resize_labels(cur[y0:y1, x0:x1], lh, lw), notify=False)
        pts = _session_points([((x - x0) * scale, (y - y0) * scale) for x, y in points])
        kw = {'positive': [pts], 'negative': []} if positive else {'positive': [], 'negative': [pts]}
        sess.scribble(0, self.obj, brush=max(1, int(round((2 * self.canvas.brush + 1) * scale))), **kw)
        local = resize_labels(sub.get_mask(0), ch, cw)
        new = cur.copy()
        new[y0:y1, x0:x1] = local
        self.session.set_labels(self.cursor, new)

    def _end_interaction_marks(self):
        """A new frame or mode starts a new interaction (MiVOS behaviour): clear the marks and
        let the Session start over from the current mask."""
        if self.canvas.marks:
            self.canvas.clear_marks()
        if self.session is not None and not self.busy():
            self.session.end_interaction()

    def commit(self):
        """MiVOS 'Commit': finish the current interaction; the next strokes start a new one
        from the current mask."""
        if self.session is None or self.busy():
            return
        self._end_interaction_marks()
        self.log(f'Committed frame {self.cursor}')

    def undo(self):
        self._undo_redo('undo')

    def redo(self):
        self._undo_redo('redo')

    def _undo_redo(self, which):
        if self.session is None or self.busy():
            return
        self.canvas.clear_marks()
        try:
            res = getattr(self.session, which)()
        except UserError as e:
            self.error(str(e))
            return
        changed = list(res or [])
        if not changed:
            self.log(f'Nothing to {which}.')
        else:
            # Show the edit that was undone: stay if it touched this frame, else jump to it.
            if self.cursor not in changed and len(changed) == 1:
                self.goto(changed[0])
            what = f'frame {changed[0]}' if len(changed) == 1 else f'{len(changed)} frames'
            self.log(f'{which.capitalize()}: {what}')
            # Click undo/redo steps the click sequence: show the clicks still in effect.
            active = self.session.active_clicks
            if active is not None and active[0] == self.cursor:
                for x, y, positive in active[2]:
                    self.canvas.add_click_mark(x + 0.5, y + 0.5, positive)
        self._flush_workspace()
        self._update_undo_actions()
        self.refresh_view()

    def reset_frame(self):
        if not self._can_edit():
            return
        self.canvas.clear_marks()
        self.session.reset_frame(self.cursor)
        self.log(f'Reset frame {self.cursor}')
        self._flush_workspace()
        self._update_undo_actions()
        self.refresh_view()

    def propagate(self):
        if not self._can_edit():
            return
        t = self.cursor
        if not self.store.get_mask(t).any() and t not in self.store.edited_frames:
            self.error(f'Frame {t} has no mask to propagate: scribble, click or paint first.',
                       'Nothing to propagate')
            return
        self._end_interaction_marks()
        session = self.session
        self.log(f'Propagating from frame {t} \u2026')

        def job(progress, should_cancel):
            return session.propagate(t, progress=progress, should_cancel=should_cancel)
        return self.run_job(job, 'Propagating', lambda _ok: self.refresh_view(),
                            title='Propagation failed')

    def adapt_network(self):
        if not self._can_edit():
            return
        session = self.session      # (the action is disabled when the networks cannot be adapted)
        self._end_interaction_marks()
        frames = session.interacted_frames
        if not frames:
            self.error('Annotate a frame first (scribble, click, paint or load masks): the network '
                       'is adapted to the annotated frames.', 'Nothing to adapt to')
            return
        self.log(f'Adapting the propagation network to frame(s) {", ".join(map(str, frames))} \u2026')

        def job(progress, should_cancel):
            return session.adapt(frames, progress=progress, should_cancel=should_cancel)

        def done(ok):
            if ok:
                self.log('Network adapted: propagate (P) to use it; Edit \u25b8 Use the shipped '
                         'network undoes it.')
        return self.run_job(job, 'Adapting network', done, title='Adaptation failed')

    def reset_adaptation(self):
        if not self._can_edit() or not self.session.adapted_frames:
            return
        self.session.reset_adaptation()
        self.log('Propagating with the shipped network again.')
        self._set_editing_enabled(True)

    # ================================================================== export
    def export_dialog(self):
        if self.store is None or self.busy():
            return
        default = self._export_dir or (os.path.splitext(self.store.source.rstrip(os.sep))[0] + '_masks'
                                        if self.store.source else os.path.expanduser('~/ivos_export'))
        dlg = ExportDialog(self, default, size_text=f'{self.store.orig_width}x{self.store.orig_height}')
        if dlg.exec_() != ExportDialog.Accepted:
            return
        self.export(dlg.out_dir(), dlg.formats(), dlg.alpha())

    def export(self, out_dir, formats, alpha=0.5, overwrite=None):
        """Export through the Session in a worker. Existing files are replaced only after the
        person agrees (overwrite=None asks; True/False decide); errors -> message box, and the
        previous export stays as it was."""
        from util.atomic import ensure_writable_dir
        from util.export import existing_outputs
        if self.store is None:
            return None
        try:
            ensure_writable_dir(out_dir)       # fail fast, before the worker starts
            existing = existing_outputs(self.store, out_dir, formats)
        except UserError as e:
            self.error(str(e), 'Cannot export')
            return None
        if existing and overwrite is None:
            overwrite = confirm_replace(self, out_dir, existing)
            if not overwrite:
                self.log('Export cancelled: nothing was replaced.')
                return None
        self._flush_workspace()
        self._export_dir = out_dir
        session, inputs = self.session, list(self._mask_inputs)

        def job(progress, should_cancel):
            return session.export(out_dir, formats=formats, alpha=alpha, progress=progress,
                                  should_cancel=should_cancel, overwrite=bool(overwrite),
                                  inputs=inputs)

        def done(ok):
            if ok:
                self.log(f'Exported {", ".join(formats)} to {out_dir}')
            else:
                self.log('Export cancelled: nothing was written or replaced.', 'warning')
        return self.run_job(job, 'Exporting', done, title='Cannot export')

    # ================================================================== workspace
    def _workspace_settings(self):
        return {'current_frame': self.cursor,
                'settings': {'resolution': self.opts.resolution, 'mem_freq': self.opts.mem_freq,
                             'model': self.opts.model, 'overlay': self.overlay_mode,
                             'mode': self.mode, 'brush': self.canvas.brush}}

    def _flush_workspace(self):
        ws, store = self.workspace, self.store
        if ws is None or store is None or not ws.has_dirty():
            return
        try:
            ws.flush(store, self._workspace_settings())
        except UserError as e:
            # Never interrupt work for an autosave problem; it is retried every second, so
            # the log gets the message once, not once per retry.
            if str(e) != self._autosave_error:
                self._autosave_error = str(e)
                self.log(f'{e} (autosave will retry)', 'warning')
        else:
            if self._autosave_error:
                self.log('Autosave works again.')
            self._autosave_error = None

    def _autosave_tick(self):
        self._flush_workspace()

    # ================================================================== misc
    def show_help(self):
        HelpDialog(self).exec_()

    def interaction_ms(self):
        return self._last_interaction_ms

    def closeEvent(self, e):
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()
            self.worker = None
        self.play_timer.stop()
        self.autosave_timer.stop()
        self._close_store()
        super().closeEvent(e)


def _session_points(points):
    """Canvas coordinates (pixel i spans [i, i+1)) -> Session coordinates (pixel i at i)."""
    return [(max(x - 0.5, 0.0), max(y - 0.5, 0.0)) for x, y in points]


def stroke_mask(points, radius, h, w):
    """Rasterise a brush stroke (image coords) into a bool (h, w) mask: a polyline of round
    caps with the brush radius."""
    mask = np.zeros((h, w), np.uint8)
    # Canvas coordinates put pixel i's centre at i + 0.5, cv2 puts it at i; 4 bits sub-pixel.
    pts = np.round((np.asarray(points, np.float64) - 0.5) * 16).astype(np.int32)
    r = max(int(radius), 1)
    if len(pts) == 1:
        cv2.circle(mask, tuple(int(v) for v in pts[0]), r * 16, 1, -1, cv2.LINE_8, 4)
    else:
        cv2.polylines(mask, [pts.reshape(-1, 1, 2)], False, 1, 2 * r + 1, cv2.LINE_8, 4)
        for p in (pts[0], pts[-1]):
            cv2.circle(mask, tuple(int(v) for v in p), r * 16, 1, -1, cv2.LINE_8, 4)
    return mask.astype(bool)


