"""Small widgets: timeline with edited-frame ticks, minimap, message console, colour swatch,
tool buttons."""
import time

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PyQt5.QtWidgets import (QPlainTextEdit, QSlider, QStyle, QStyleOptionSlider, QToolButton,
                             QWidget)

from gui.icons import icon

EDITED_COLOR = QColor(255, 193, 7)
MASKED_COLOR = QColor(79, 195, 247)
SUGGEST_COLOR = QColor(255, 255, 255)


def confidence_color(c):
    """Red (confidence <= 0.5) -> yellow (0.7) -> green (>= 0.9): propagated frames mostly score
    0.6-1, so the scale spreads that range."""
    c = float(min(1.0, max(0.0, (c - 0.5) / 0.4)))
    if c < 0.5:
        return QColor(230, int(60 + 340 * c), 60)
    return QColor(int(230 - 380 * (c - 0.5)), 230, 60)


class Timeline(QSlider):
    """Frame slider that paints a tick for every person-edited frame (amber), a thin band under
    frames that have a mask (blue), and above the groove how sure the propagation is of each
    frame (green = sure, through yellow, to red = check it) with a marker on the frame to check
    next (key N)."""

    def __init__(self, parent=None):
        super().__init__(Qt.Horizontal, parent)
        self.setMinimumHeight(40)
        self.setFocusPolicy(Qt.NoFocus)        # arrow keys belong to the main window
        self.setToolTip('Timeline: amber ticks = edited frames, blue band = frames with a mask, '
                        'top strip = propagation confidence (red = check this frame; N jumps to '
                        'the least confident one)')
        self.edited = set()
        self.has_mask = np.zeros(0, bool)
        self.confidence = np.zeros(0)
        self.suggested = None

    def set_marks(self, edited, has_mask):
        self.edited = set(edited)
        self.has_mask = np.asarray(has_mask, bool)
        self.update()

    def set_confidence(self, confidence, suggested=None):
        """(T,) values in [0, 1] (NaN = unknown, not drawn) and the frame to check next."""
        self.confidence = np.asarray(confidence, np.float64)
        self.suggested = suggested
        self.update()

    def _groove(self):
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        groove = self.style().subControlRect(QStyle.CC_Slider, opt, QStyle.SC_SliderGroove, self)
        handle = self.style().subControlRect(QStyle.CC_Slider, opt, QStyle.SC_SliderHandle, self)
        return opt, groove, handle

    def _x_of(self, value, opt, groove, handle):
        span = groove.width() - handle.width()
        pos = QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), value, span,
                                             opt.upsideDown)
        return groove.x() + handle.width() / 2 + pos

    def mousePressEvent(self, e):
        # Jump straight to the clicked frame (QSlider's default only steps by a page).
        if e.button() == Qt.LeftButton and self.maximum() > self.minimum():
            opt, groove, handle = self._groove()
            if not handle.contains(e.pos()):
                span = groove.width() - handle.width()
                x = e.pos().x() - groove.x() - handle.width() / 2
                self.setValue(QStyle.sliderValueFromPosition(
                    self.minimum(), self.maximum(), int(round(x)), span, opt.upsideDown))
        super().mousePressEvent(e)

    def paintEvent(self, e):
        super().paintEvent(e)
        if self.maximum() <= self.minimum() and not self.edited:
            return
        opt, groove, handle = self._groove()
        p = QPainter(self)
        n = len(self.has_mask)
        if n and self.has_mask.any():
            # Runs of masked frames as bands below the groove.
            y = groove.bottom() + 3
            idx = np.flatnonzero(np.diff(np.concatenate([[0], self.has_mask.astype(np.int8), [0]])))
            for a, b in zip(idx[::2], idx[1::2]):
                x0 = self._x_of(a, opt, groove, handle) - 1
                x1 = self._x_of(b - 1, opt, groove, handle) + 1
                p.fillRect(QRectF(x0, y, max(x1 - x0, 2), 3), MASKED_COLOR)
        c = self.confidence
        if len(c) and np.isfinite(c).any():
            y = groove.top() - 9
            for t in np.flatnonzero(np.isfinite(c)):
                x0 = self._x_of(t, opt, groove, handle)
                x1 = self._x_of(t + 1, opt, groove, handle) if t + 1 < len(c) else x0 + 2
                p.fillRect(QRectF(x0 - 0.5, y, max(x1 - x0, 1.5), 3), confidence_color(c[t]))
            if self.suggested is not None:
                x = self._x_of(self.suggested, opt, groove, handle)
                p.setPen(QPen(SUGGEST_COLOR, 2))
                p.drawLine(QPointF(x, y - 3), QPointF(x, y + 5))
        p.setPen(QPen(EDITED_COLOR, 2))
        for t in self.edited:
            x = self._x_of(t, opt, groove, handle)
            p.drawLine(QPointF(x, groove.top() - 5), QPointF(x, groove.top() + 1))
            p.drawLine(QPointF(x, groove.bottom() - 1), QPointF(x, groove.bottom() + 2))
        p.end()


class Minimap(QWidget):
    """Thumbnail of the whole frame with the zoomed viewport as a rectangle; click or drag to
    move the view."""
    centerRequested = pyqtSignal(float, float)   # image coordinates

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(160, 100)
        self.setToolTip('Minimap: the yellow box is the part shown; click or drag to move it')
        self._pix = None
        self._img_size = (0, 0)
        self._view = None

    def sizeHint(self):
        return QSize(220, 140)

    def set_image(self, rgb):
        h, w = rgb.shape[:2]
        self._img_size = (w, h)
        # A small thumbnail keeps repaints cheap while playing.
        step = max(1, int(max(w / 320, h / 200)))
        small = np.ascontiguousarray(rgb[::step, ::step])
        qimg = QImage(small.data, small.shape[1], small.shape[0], 3 * small.shape[1],
                      QImage.Format_RGB888).copy()
        self._pix = QPixmap.fromImage(qimg)
        self.update()

    def set_view(self, rect):
        self._view = QRectF(rect)
        self.update()

    def _target(self):
        w, h = self._img_size
        if not w:
            return QRectF(), 1.0
        s = min(self.width() / w, self.height() / h)
        tw, th = w * s, h * s
        return QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th), s

    def paintEvent(self, _e):
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 31, 34))
        if self._pix is None:
            return
        target, s = self._target()
        p.setRenderHint(QPainter.SmoothPixmapTransform, True)
        p.drawPixmap(target, self._pix, QRectF(self._pix.rect()))
        if self._view is not None:
            w, h = self._img_size
            if self._view.width() < w - 1 or self._view.height() < h - 1:
                r = QRectF(target.x() + self._view.x() * s, target.y() + self._view.y() * s,
                           self._view.width() * s, self._view.height() * s)
                p.setPen(QPen(QColor(255, 213, 79), 2))
                p.setBrush(Qt.NoBrush)
                p.drawRect(r)

    def _emit(self, pos):
        target, s = self._target()
        if s <= 0 or target.isEmpty():
            return
        self.centerRequested.emit((pos.x() - target.x()) / s, (pos.y() - target.y()) / s)

    def mousePressEvent(self, e):
        if e.button() == Qt.LeftButton:
            self._emit(e.pos())

    def mouseMoveEvent(self, e):
        if e.buttons() & Qt.LeftButton:
            self._emit(e.pos())


class Console(QPlainTextEdit):
    """Read-only message log with time stamps."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(2000)
        self.setPlaceholderText('Messages')
        self.setObjectName('console')

    def log(self, text, level='info'):
        stamp = time.strftime('%H:%M:%S')
        prefix = {'info': '', 'warning': 'warning: ', 'error': 'error: '}.get(level, '')
        self.appendPlainText(f'[{stamp}] {prefix}{text}')
        sb = self.verticalScrollBar()
        sb.setValue(sb.maximum())

    def messages(self):
        return self.toPlainText()


def color_icon(rgb, size=16, hidden=False):
    """Square swatch icon of an object colour (hatched when the object is hidden)."""
    pix = QPixmap(size, size)
    pix.fill(Qt.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.Antialiasing, True)
    c = QColor(*rgb)
    if hidden:
        c.setAlpha(70)
    p.setBrush(c)
    p.setPen(QPen(QColor(230, 230, 230), 1))
    p.drawRoundedRect(QRectF(1, 1, size - 2, size - 2), 3, 3)
    if hidden:
        p.setPen(QPen(QColor(230, 230, 230), 1.5))
        p.drawLine(QPointF(3, size - 3), QPointF(size - 3, 3))
    p.end()
    return QIcon(pix)


def tool_button(icon_name, tip, slot):
    b = QToolButton()
    b.setIcon(icon(icon_name))
    b.setToolTip(tip)
    b.setAutoRaise(True)
    b.clicked.connect(lambda _c=False: slot())
    return b
