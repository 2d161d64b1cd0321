"""The window's widgets: canvas and timeline, the Controls dock (objects, interaction, view),
the Messages dock and the status bar. Behaviour lives in gui/main_window.py."""
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (QComboBox, QDockWidget, QGroupBox, QHBoxLayout, QLabel,
                             QListWidget, QProgressBar, QSizePolicy, QSlider, QToolButton,
                             QVBoxLayout, QWidget)

from gui import overlay as overlay_mod
from gui.canvas import Canvas
from gui.controller import MODE_NAMES
from gui.icons import icon
from gui.widgets import Console, Minimap, Timeline


def setup_ui(self):
    """Widgets of the window (Qt Designer's setupUi pattern: they become attributes of the
    window, whose methods they are connected to)."""
    central = QWidget(self)
    vbox = QVBoxLayout(central)
    vbox.setContentsMargins(4, 4, 4, 4)
    vbox.setSpacing(4)
    self.canvas = Canvas(central)
    self.canvas.strokeFinished.connect(self.stroke)
    self.canvas.clicked.connect(self.click)
    self.canvas.regionSelected.connect(self.on_region_selected)
    self.canvas.boxDrawn.connect(self.box)
    self.canvas.brushChanged.connect(self.on_brush_changed)
    self.canvas.viewChanged.connect(self.on_view_changed)
    self.canvas.hovered.connect(self.on_hover)
    vbox.addWidget(self.canvas, 1)

    row = QHBoxLayout()
    self.btn_prev = tool_button('prev', 'Previous frame (Left)', lambda: self.step(-1))
    self.btn_play = tool_button('play', 'Play / pause (Space)', self.toggle_play)
    self.btn_next = tool_button('next', 'Next frame (Right)', lambda: self.step(1))
    for b in (self.btn_prev, self.btn_play, self.btn_next):
        row.addWidget(b)
    self.timeline = Timeline(central)
    self.timeline.valueChanged.connect(self.goto)
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
    self.object_list.currentRowChanged.connect(self.on_object_row)
    self.object_list.itemChanged.connect(self.on_object_item_changed)
    self.object_list.itemDoubleClicked.connect(lambda _i: self.rename_object())
    self.object_list.setMinimumHeight(120)
    ol.addWidget(self.object_list)
    orow = QHBoxLayout()
    self.btn_obj_add = tool_button('add', 'Add an object (N)', self.add_object)
    self.btn_obj_rename = tool_button('rename', 'Rename the object', self.rename_object)
    self.btn_obj_color = tool_button('color', 'Change the object colour', self.recolor_object)
    self.btn_obj_hide = tool_button('eye', 'Hide / show the object (H)', self.toggle_object_visible)
    self.btn_obj_del = tool_button('remove', 'Delete the object (all its masks)', self.delete_object)
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
            ('free', 'brush', 'Free: paint the mask directly, right button erases (F)'),
            ('box', 'box', 'Box: drag a rectangle around the object; clicks or scribbles then '
                           'refine it (B)')):
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
    zrow.addWidget(tool_button('zoom_in', 'Zoom in (+, ctrl+wheel)', lambda: self.canvas.zoom_by(1.5)))
    zrow.addWidget(tool_button('zoom_out', 'Zoom out (-)', lambda: self.canvas.zoom_by(1 / 1.5)))
    zrow.addWidget(tool_button('zoom_fit', 'Fit the frame (0)', self.canvas.reset_view))
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
    # work that is not being saved (autosave fails, read-only workspace): red, until it is
    self.status_saved = QLabel()
    self.status_saved.setStyleSheet('QLabel { color: white; background: #b00020; '
                                    'font-weight: bold; padding: 0 6px; }')
    self.status_saved.hide()
    sb.addPermanentWidget(self.status_saved)
    self.progress = QProgressBar()
    self.progress.setMaximumWidth(260)
    self.progress.setTextVisible(True)
    self.progress.hide()
    self.cancel_button = QToolButton()
    self.cancel_button.setIcon(icon('cancel'))
    self.cancel_button.setText('Cancel')
    self.cancel_button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
    self.cancel_button.setToolTip('Stop the running job after the current frame (Esc)')
    self.cancel_button.hide()
    sb.addPermanentWidget(self.progress)
    sb.addPermanentWidget(self.cancel_button)


def tool_button(icon_name, tip, slot):
    b = QToolButton()
    b.setIcon(icon(icon_name))
    b.setToolTip(tip)
    b.setAutoRaise(True)
    b.clicked.connect(lambda _c=False: slot())
    return b
