"""The Interaction panel: the tool (scribble, click, free, box), the brush radius and local
refinement; the canvas follows them."""
from PyQt5.QtCore import QObject, Qt, pyqtSignal
from PyQt5.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolButton,
                             QVBoxLayout)

from gui.controller import MODE_NAMES, MODES
from gui.icons import icon

MODE_BUTTONS = (
    ('scribble', 'scribble', 'Scribble: draw on the object (left) or background (right) (S)'),
    ('click', 'click', 'Click: click on the object (left) or background (right) (C)'),
    ('free', 'brush', 'Free: paint the mask directly, right button erases (F)'),
    ('box', 'box', 'Box: drag a rectangle around the object; clicks or scribbles then refine it '
                   '(B)'))


class ToolsPanel(QObject):
    modeChanged = pyqtSignal(str)
    localChanged = pyqtSignal(bool)
    toolChanged = pyqtSignal()          # tool, brush or local mode (the status bar follows)

    def __init__(self, window, controller, document, canvas, messages, jobs):
        super().__init__(window)
        self.controller, self.document, self.canvas = controller, document, canvas
        self.messages, self.jobs = messages, jobs
        self.box = QGroupBox('Interaction')
        tl = QVBoxLayout(self.box)
        mrow = QHBoxLayout()
        self.mode_buttons = {}
        for m, ic, tip in MODE_BUTTONS:
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
        self.brush_slider.setValue(canvas.brush)
        self.brush_slider.setToolTip('Brush radius in pixels (mouse wheel, [ and ])')
        self.brush_slider.valueChanged.connect(canvas.set_brush)
        brow.addWidget(self.brush_slider, 1)
        self.brush_label = QLabel(str(canvas.brush))
        self.brush_label.setMinimumWidth(24)
        self.brush_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        brow.addWidget(self.brush_label)
        tl.addLayout(brow)
        self.btn_local = b = QToolButton()
        b.setIcon(icon('local'))
        b.setText('Local refinement')
        b.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        b.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        b.setCheckable(True)
        b.setToolTip('Local refinement: drag a box to zoom in; scribbles then refine only that '
                     'region at a higher resolution (L)')
        b.toggled.connect(self.set_local_mode)
        tl.addWidget(b)
        canvas.brushChanged.connect(self.on_brush_changed)
        canvas.regionSelected.connect(self.on_region_selected)

    def set_mode(self, mode, force=False):
        c = self.controller
        if mode not in MODES or (mode == c.mode and not force):
            return
        self.canvas.clear_marks()
        c.set_mode(mode)
        self.canvas.set_brush(c.brush)
        c.set_brush(self.canvas.brush)       # the canvas's bounds: the two always agree
        self.canvas.mode = mode
        for m, b in self.mode_buttons.items():
            b.setChecked(m == mode)
        self.modeChanged.emit(mode)
        self.document.mark_settings_dirty()
        self.toolChanged.emit()
        self.canvas.update()

    def on_brush_changed(self, r):
        self.controller.set_brush(r)
        if self.brush_slider.value() != r:
            self.brush_slider.blockSignals(True)
            self.brush_slider.setValue(r)
            self.brush_slider.blockSignals(False)
        self.brush_label.setText(str(r))
        self.document.mark_settings_dirty()
        self.toolChanged.emit()

    def change_brush(self, sign):
        """[ and ]: a sixth of the radius smaller or larger (at least one pixel)."""
        b = self.canvas.brush
        self.canvas.set_brush(b + sign * max(1, b // 6))

    def set_local_mode(self, on):
        self.controller.set_local(on)
        self.localChanged.emit(bool(on))
        self.canvas.clear_marks()
        self.canvas.region_select = bool(on)
        if on:
            self.messages.log('Local refinement: drag a box around the part to refine.')
        else:
            self.canvas.reset_view()
        self.toolChanged.emit()

    def on_region_selected(self, rect):
        self.canvas.region_select = False
        self.canvas.zoom_to_rect(rect)
        self.controller.set_local_region(rect.x(), rect.y(), rect.right(), rect.bottom())
        self.set_mode(self.controller.mode, force=True)
        self.messages.log(f'Local region x {rect.x():.0f}\u2013{rect.right():.0f}, '
                          f'y {rect.y():.0f}\u2013{rect.bottom():.0f}: scribbles now refine this '
                          'region.')

    def escape(self):
        """Esc: cancel the running job, else the stroke (and the region being picked)."""
        if self.jobs.busy:
            self.jobs.cancel()
        else:
            self.canvas.cancel_stroke()
            if self.canvas.region_select:
                self.btn_local.setChecked(False)
