"""The image canvas: shows the composed frame, collects strokes and clicks, zoom and pan.

All coordinates handed out are IMAGE coordinates (processing resolution, float, x right, y down).
Mouse: left = positive, right = negative, middle drag = pan, wheel = brush size,
ctrl+wheel = zoom about the cursor. In 'region' state a left drag picks a rectangle to zoom into
(local refinement); in 'box' mode a left drag draws a box around an object (boxDrawn).
"""
import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QImage, QPainter, QPainterPath, QPen
from PyQt5.QtWidgets import QSizePolicy, QWidget

CANVAS_BG = QColor(30, 31, 34)
POSITIVE_COLOR = QColor(0, 230, 118)
NEGATIVE_COLOR = QColor(255, 82, 82)
MIN_BRUSH, MAX_BRUSH = 1, 100
MAX_ZOOM = 32.0


def numpy_to_qimage(rgb):
    """(H,W,3) uint8 RGB -> QImage that owns a copy of the pixels."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class Canvas(QWidget):
    strokeFinished = pyqtSignal(list, bool)      # [(x, y), ...] image coords, positive
    clicked = pyqtSignal(float, float, bool)     # x, y, positive
    regionSelected = pyqtSignal(QRectF)          # image rect picked in 'region' state
    boxDrawn = pyqtSignal(float, float, float, float)   # x0, y0, x1, y1 image coords ('box' mode)
    brushChanged = pyqtSignal(int)
    viewChanged = pyqtSignal()
    hovered = pyqtSignal(int, int)               # image pixel under the cursor (-1 when outside)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self._image = None               # QImage of the composed frame
        self._img_w = self._img_h = 0
        self.mode = 'scribble'           # 'scribble' | 'click' | 'free' | 'box'
        self.brush = 1                   # radius in image pixels (diameter 2r+1)
        self.editable = True
        self.region_select = False       # next left drag picks a zoom region
        self.paint_color = QColor(255, 255, 255)   # current object's colour (free-mode preview)
        self.marks = []                  # [('stroke', pts, positive) | ('click', (x, y), positive)
                                         #  | ('box', (x0, y0, x1, y1), True)]
        self._stroke = None              # points of the stroke being drawn
        self._stroke_positive = True
        self._drag_button = None
        self._pan_last = None
        self._region_start = None
        self._region_end = None
        self._mouse = None               # widget position of the cursor
        self.zoom = 1.0                  # 1 = whole image fits the widget
        self.center = QPointF(0, 0)      # image point shown at the widget centre

    # ------------------------------------------------------------------ content
    def set_image(self, rgb):
        h, w = rgb.shape[:2]
        if (w, h) != (self._img_w, self._img_h):
            self._img_w, self._img_h = w, h
            self.reset_view(emit=False)
        self._image = numpy_to_qimage(rgb)
        self.update()

    def has_image(self):
        return self._image is not None

    def clear_marks(self):
        self.marks = []
        self.update()

    def set_brush(self, radius):
        radius = int(max(MIN_BRUSH, min(MAX_BRUSH, radius)))
        if radius != self.brush:
            self.brush = radius
            self.brushChanged.emit(radius)
            self.update()

    # ------------------------------------------------------------------ view transform
    def _fit_scale(self):
        if not self._img_w:
            return 1.0
        return min(self.width() / self._img_w, self.height() / self._img_h)

    def scale(self):
        return self._fit_scale() * self.zoom

    def image_to_widget(self, x, y):
        s = self.scale()
        return QPointF((x - self.center.x()) * s + self.width() / 2,
                       (y - self.center.y()) * s + self.height() / 2)

    def widget_to_image(self, p):
        s = self.scale()
        return ((p.x() - self.width() / 2) / s + self.center.x(),
                (p.y() - self.height() / 2) / s + self.center.y())

    def visible_rect(self):
        """Part of the image shown, in image coordinates (clipped to the image)."""
        x0, y0 = self.widget_to_image(QPointF(0, 0))
        x1, y1 = self.widget_to_image(QPointF(self.width(), self.height()))
        r = QRectF(QPointF(x0, y0), QPointF(x1, y1))
        return r.intersected(QRectF(0, 0, self._img_w, self._img_h))

    def reset_view(self, emit=True):
        self.zoom = 1.0
        self.center = QPointF(self._img_w / 2, self._img_h / 2)
        self.update()
        if emit:
            self.viewChanged.emit()

    def set_zoom(self, zoom, anchor=None):
        """Zoom keeping the image point under widget position `anchor` fixed."""
        zoom = float(max(1.0, min(MAX_ZOOM, zoom)))
        if anchor is not None:
            ix, iy = self.widget_to_image(anchor)
        self.zoom = zoom
        if anchor is not None:
            s = self.scale()
            self.center = QPointF(ix - (anchor.x() - self.width() / 2) / s,
                                  iy - (anchor.y() - self.height() / 2) / s)
        self._clamp_center()
        self.update()
        self.viewChanged.emit()

    def zoom_by(self, factor, anchor=None):
        self.set_zoom(self.zoom * factor, anchor)

    def set_center(self, x, y):
        self.center = QPointF(x, y)
        self._clamp_center()
        self.update()
        self.viewChanged.emit()

    def zoom_to_rect(self, rect):
        """Show image rect `rect` as large as possible."""
        if rect.width() < 2 or rect.height() < 2 or not self._img_w:
            return
        fit = self._fit_scale()
        zoom = min(self.width() / rect.width(), self.height() / rect.height()) / fit
        self.zoom = float(max(1.0, min(MAX_ZOOM, zoom)))
        self.center = rect.center()
        self._clamp_center()
        self.update()
        self.viewChanged.emit()

    def _clamp_center(self):
        s = self.scale()
        half_w, half_h = self.width() / 2 / s, self.height() / 2 / s
        cx = min(max(self.center.x(), half_w), self._img_w - half_w) \
            if 2 * half_w < self._img_w else self._img_w / 2
        cy = min(max(self.center.y(), half_h), self._img_h - half_h) \
            if 2 * half_h < self._img_h else self._img_h / 2
        self.center = QPointF(cx, cy)

    def resizeEvent(self, e):
        self._clamp_center()
        super().resizeEvent(e)
        self.viewChanged.emit()

    # ------------------------------------------------------------------ painting
    def paintEvent(self, _e):
        p = QPainter(self)
        p.fillRect(self.rect(), CANVAS_BG)
        if self._image is None:
            p.setPen(QColor(150, 150, 150))
            p.drawText(self.rect(), Qt.AlignCenter,
                       'Open a video or an image folder\n(File \u25b8 Open, or drop it here)')
            return
        s = self.scale()
        tl = self.image_to_widget(0, 0)
        p.save()
        p.translate(tl)
        p.scale(s, s)
        # Smooth when shrinking, crisp pixels when zoomed in (to see what is being refined).
        p.setRenderHint(QPainter.SmoothPixmapTransform, s < 2)
        p.drawImage(0, 0, self._image)
        p.setRenderHint(QPainter.Antialiasing, True)
        for kind, data, positive in self.marks:
            if kind == 'stroke':
                self._draw_stroke(p, data, positive, False)
            elif kind == 'box':
                p.setPen(QPen(POSITIVE_COLOR, 2.0 / s))
                p.setBrush(Qt.NoBrush)
                p.drawRect(QRectF(QPointF(*data[:2]), QPointF(*data[2:])))
            else:
                self._draw_click(p, data, positive, s)
        if self._stroke:
            self._draw_stroke(p, self._stroke, self._stroke_positive, self.mode == 'free')
        p.restore()
        if self._region_start is not None and self._region_end is not None:
            box = self.mode == 'box' and not self.region_select
            color = POSITIVE_COLOR if box else QColor(255, 213, 79)
            p.setPen(QPen(color, 1.5, Qt.SolidLine if box else Qt.DashLine))
            p.setBrush(QColor(color.red(), color.green(), color.blue(), 40))
            p.drawRect(QRectF(self._region_start, self._region_end).normalized())
        if self._mouse is not None and self.editable and self.mode in ('scribble', 'free') \
                and not self.region_select:
            r = max((self.brush + 0.5) * s, 2)
            p.setRenderHint(QPainter.Antialiasing, True)
            p.setBrush(Qt.NoBrush)
            p.setPen(QPen(QColor(0, 0, 0, 160), 3))
            p.drawEllipse(self._mouse, r, r)
            ring = QColor(self.paint_color) if self.mode == 'free' else QColor(255, 255, 255)
            ring.setAlpha(230)
            p.setPen(QPen(ring, 1.5))
            p.drawEllipse(self._mouse, r, r)

    def _draw_stroke(self, p, pts, positive, free):
        if free:
            color = QColor(self.paint_color) if positive else QColor(20, 20, 20)
            color.setAlpha(170)
        else:
            color = QColor(POSITIVE_COLOR if positive else NEGATIVE_COLOR)
            color.setAlpha(220)
        pen = QPen(color, 2 * self.brush + 1, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
        p.setPen(pen)
        p.setBrush(Qt.NoBrush)
        if len(pts) == 1:
            p.drawPoint(QPointF(*pts[0]))
            return
        path = QPainterPath(QPointF(*pts[0]))
        for x, y in pts[1:]:
            path.lineTo(QPointF(x, y))
        p.drawPath(path)

    def _draw_click(self, p, pt, positive, s):
        r = 5.0 / s     # constant on-screen size
        p.setPen(QPen(QColor(255, 255, 255), 1.5 / s))
        p.setBrush(POSITIVE_COLOR if positive else NEGATIVE_COLOR)
        p.drawEllipse(QPointF(*pt), r, r)

    # ------------------------------------------------------------------ mouse
    def _inside(self, x, y):
        return 0 <= x < self._img_w and 0 <= y < self._img_h

    def mousePressEvent(self, e):
        self.setFocus()
        if self._image is None:
            return
        if e.button() == Qt.MiddleButton:
            self._pan_last = e.pos()
            self.setCursor(Qt.ClosedHandCursor)
            return
        if e.button() not in (Qt.LeftButton, Qt.RightButton) or self._drag_button is not None:
            return
        if self.region_select:
            if e.button() == Qt.LeftButton:
                self._drag_button = e.button()
                self._region_start = self._region_end = QPointF(e.pos())
            return
        if not self.editable:
            return
        x, y = self.widget_to_image(e.pos())
        if not self._inside(x, y):
            return
        positive = e.button() == Qt.LeftButton
        if self.mode == 'box':
            if positive:
                self._drag_button = e.button()
                self._region_start = self._region_end = QPointF(e.pos())
            return
        if self.mode == 'click':
            self.clicked.emit(float(x), float(y), positive)
            return
        self._drag_button = e.button()
        self._stroke = [(x, y)]
        self._stroke_positive = positive
        self.update()

    def mouseMoveEvent(self, e):
        self._mouse = QPointF(e.pos())
        x, y = self.widget_to_image(e.pos())
        if self._inside(x, y):
            self.hovered.emit(int(x), int(y))
        else:
            self.hovered.emit(-1, -1)
        if self._pan_last is not None:
            d = e.pos() - self._pan_last
            self._pan_last = e.pos()
            s = self.scale()
            self.set_center(self.center.x() - d.x() / s, self.center.y() - d.y() / s)
            return
        if self._region_start is not None:
            self._region_end = QPointF(e.pos())
        elif self._stroke is not None:
            x = min(max(x, 0), self._img_w - 1)
            y = min(max(y, 0), self._img_h - 1)
            lx, ly = self._stroke[-1]
            if (x - lx) ** 2 + (y - ly) ** 2 >= 0.25:
                self._stroke.append((x, y))
        self.update()

    def mouseReleaseEvent(self, e):
        if e.button() == Qt.MiddleButton and self._pan_last is not None:
            self._pan_last = None
            self.unsetCursor()
            return
        if e.button() != self._drag_button:
            return
        self._drag_button = None
        if self._region_start is not None:
            r = QRectF(self._region_start, QPointF(e.pos())).normalized()
            self._region_start = self._region_end = None
            a = self.widget_to_image(r.topLeft())
            b = self.widget_to_image(r.bottomRight())
            rect = QRectF(QPointF(*a), QPointF(*b)).intersected(
                QRectF(0, 0, self._img_w, self._img_h))
            self.update()
            if self.mode == 'box' and not self.region_select:
                if rect.width() >= 2 and rect.height() >= 2:
                    self.boxDrawn.emit(rect.left(), rect.top(), rect.right(), rect.bottom())
            elif rect.width() >= 4 and rect.height() >= 4:
                self.regionSelected.emit(rect)
            return
        if self._stroke is None:
            return
        pts, positive = self._stroke, self._stroke_positive
        self._stroke = None
        if self.mode == 'scribble':
            self.marks.append(('stroke', pts, positive))
        self.update()
        self.strokeFinished.emit([(float(x), float(y)) for x, y in pts], positive)

    def cancel_stroke(self):
        self._stroke = None
        self._drag_button = None
        self._region_start = self._region_end = None
        self.update()

    def add_click_mark(self, x, y, positive):
        self.marks.append(('click', (x, y), positive))
        self.update()

    def add_box_mark(self, x0, y0, x1, y1):
        self.marks = [m for m in self.marks if m[0] != 'box'] + [('box', (x0, y0, x1, y1), True)]
        self.update()

    def leaveEvent(self, e):
        self._mouse = None
        self.hovered.emit(-1, -1)
        self.update()
        super().leaveEvent(e)

    def wheelEvent(self, e):
        delta = e.angleDelta().y()
        if not delta or self._image is None:
            return
        steps = delta / 120.0
        if e.modifiers() & Qt.ControlModifier:
            self.zoom_by(1.25 ** steps, QPointF(e.pos()))
        else:
            step = max(1, round(self.brush * 0.15))
            self.set_brush(self.brush + (step if steps > 0 else -step))
        e.accept()
