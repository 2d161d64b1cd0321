"""Vector icons drawn with QPainter (no image files to ship, crisp at any DPI)."""
import math
from functools import lru_cache

from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

FG = QColor(222, 224, 228)
ACCENT = QColor(79, 195, 247)
GOOD = QColor(0, 200, 110)
BAD = QColor(240, 90, 90)


def _arrow_head(p, tip, angle, size=5.0):
    a1, a2 = angle + math.radians(150), angle - math.radians(150)
    path = QPainterPath(tip)
    path.lineTo(tip + QPointF(size * math.cos(a1), size * math.sin(a1)))
    path.lineTo(tip + QPointF(size * math.cos(a2), size * math.sin(a2)))
    path.closeSubpath()
    p.fillPath(path, p.pen().color())


def _draw(name, p):
    pen = QPen(FG, 2.0, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
    p.setPen(pen)
    p.setBrush(Qt.NoBrush)
    if name == 'scribble':
        path = QPainterPath(QPointF(3, 17))
        path.cubicTo(QPointF(7, 4), QPointF(10, 20), QPointF(13, 10))
        path.cubicTo(QPointF(15, 4), QPointF(19, 14), QPointF(21, 6))
        p.setPen(QPen(GOOD, 2.4, Qt.SolidLine, Qt.RoundCap))
        p.drawPath(path)
        p.setPen(QPen(BAD, 2.4, Qt.SolidLine, Qt.RoundCap))
        p.drawLine(QPointF(5, 21), QPointF(19, 21))
    elif name == 'click':
        p.drawEllipse(QPointF(12, 12), 7, 7)
        p.setBrush(GOOD)
        p.setPen(Qt.NoPen)
        p.drawEllipse(QPointF(12, 12), 3, 3)
        p.setPen(pen)
        for a, b in (((12, 1), (12, 4)), ((12, 20), (12, 23)), ((1, 12), (4, 12)), ((20, 12), (23, 12))):
            p.drawLine(QPointF(*a), QPointF(*b))
    elif name == 'brush':
        p.drawLine(QPointF(20, 3), QPointF(10, 13))
        p.setBrush(ACCENT)
        path = QPainterPath(QPointF(10, 12))
        path.cubicTo(QPointF(5, 12), QPointF(6, 18), QPointF(3, 21))
        path.cubicTo(QPointF(9, 21), QPointF(13, 18), QPointF(12, 14))
        path.closeSubpath()
        p.drawPath(path)
    elif name == 'box':
        p.setPen(QPen(GOOD, 2.0, Qt.DashLine, Qt.SquareCap, Qt.MiterJoin))
        p.drawRect(QRectF(3, 4, 18, 16))
        p.setPen(Qt.NoPen)
        p.setBrush(ACCENT)
        p.drawEllipse(QPointF(12, 12), 4.5, 3.5)
    elif name == 'propagate':
        p.drawLine(QPointF(12, 6), QPointF(12, 18))
        p.setBrush(FG)
        p.drawEllipse(QPointF(12, 12), 2.5, 2.5)
        p.drawLine(QPointF(3, 12), QPointF(9, 12))
        p.drawLine(QPointF(15, 12), QPointF(21, 12))
        _arrow_head(p, QPointF(22, 12), 0)
        _arrow_head(p, QPointF(2, 12), math.pi)
    elif name == 'commit':
        p.setPen(QPen(GOOD, 2.6, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin))
        path = QPainterPath(QPointF(4, 13))
        path.lineTo(QPointF(10, 19))
        path.lineTo(QPointF(20, 6))
        p.drawPath(path)
    elif name in ('undo', 'redo'):
        if name == 'redo':
            p.translate(24, 0)
            p.scale(-1, 1)
        path = QPainterPath(QPointF(7, 9))
        path.lineTo(QPointF(15, 9))
        path.cubicTo(QPointF(22, 9), QPointF(22, 19), QPointF(15, 19))
        path.lineTo(QPointF(9, 19))
        p.drawPath(path)
        _arrow_head(p, QPointF(4, 9), math.pi, 6)
    elif name == 'reset':
        p.setPen(QPen(BAD, 2.4, Qt.SolidLine, Qt.RoundCap))
        p.drawLine(QPointF(6, 6), QPointF(18, 18))
        p.drawLine(QPointF(18, 6), QPointF(6, 18))
    elif name in ('zoom_in', 'zoom_out', 'local', 'zoom_fit'):
        p.drawEllipse(QPointF(10, 10), 6.5, 6.5)
        p.setPen(QPen(FG, 3, Qt.SolidLine, Qt.RoundCap))
        p.drawLine(QPointF(15, 15), QPointF(21, 21))
        p.setPen(pen)
        if name != 'local':
            p.drawLine(QPointF(7, 10), QPointF(13, 10))
        if name == 'zoom_in':
            p.drawLine(QPointF(10, 7), QPointF(10, 13))
        if name == 'local':
            p.setPen(QPen(ACCENT, 1.6))
            p.drawRect(QRectF(7, 7, 6, 6))
        if name == 'zoom_fit':
            p.drawLine(QPointF(7, 10), QPointF(13, 10))
            p.drawLine(QPointF(10, 7), QPointF(10, 13))
            p.setPen(QPen(ACCENT, 1.6))
            p.drawRect(QRectF(2, 2, 20, 20))
    elif name == 'play':
        path = QPainterPath(QPointF(7, 4))
        path.lineTo(QPointF(20, 12))
        path.lineTo(QPointF(7, 20))
        path.closeSubpath()
        p.fillPath(path, FG)
    elif name == 'pause':
        p.fillRect(QRectF(6, 5, 4, 14), FG)
        p.fillRect(QRectF(14, 5, 4, 14), FG)
    elif name in ('prev', 'next'):
        if name == 'next':
            p.translate(24, 0)
            p.scale(-1, 1)
        path = QPainterPath(QPointF(17, 5))
        path.lineTo(QPointF(8, 12))
        path.lineTo(QPointF(17, 19))
        path.closeSubpath()
        p.fillPath(path, FG)
        p.fillRect(QRectF(5, 5, 2.5, 14), FG)
    elif name == 'open':
        path = QPainterPath(QPointF(3, 7))
        path.lineTo(QPointF(9, 7))
        path.lineTo(QPointF(11, 9))
        path.lineTo(QPointF(20, 9))
        path.lineTo(QPointF(20, 19))
        path.lineTo(QPointF(3, 19))
        path.closeSubpath()
        p.drawPath(path)
    elif name == 'export':
        p.drawLine(QPointF(12, 3), QPointF(12, 14))
        _arrow_head(p, QPointF(12, 16), math.pi / 2, 6)
        path = QPainterPath(QPointF(4, 14))
        path.lineTo(QPointF(4, 20))
        path.lineTo(QPointF(20, 20))
        path.lineTo(QPointF(20, 14))
        p.drawPath(path)
    elif name == 'cancel':
        p.setPen(QPen(BAD, 2))
        p.drawEllipse(QPointF(12, 12), 8, 8)
        p.drawLine(QPointF(6.5, 17.5), QPointF(17.5, 6.5))
    elif name == 'add':
        p.drawLine(QPointF(12, 5), QPointF(12, 19))
        p.drawLine(QPointF(5, 12), QPointF(19, 12))
    elif name == 'remove':
        p.drawLine(QPointF(5, 12), QPointF(19, 12))
    elif name == 'help':
        p.drawEllipse(QPointF(12, 12), 9, 9)
        p.drawText(QRectF(0, 0, 24, 24), Qt.AlignCenter, '?')
    elif name == 'eye':
        path = QPainterPath(QPointF(2, 12))
        path.cubicTo(QPointF(7, 4), QPointF(17, 4), QPointF(22, 12))
        path.cubicTo(QPointF(17, 20), QPointF(7, 20), QPointF(2, 12))
        p.drawPath(path)
        p.setBrush(FG)
        p.drawEllipse(QPointF(12, 12), 3, 3)
    elif name == 'color':
        for i, c in enumerate((QColor(230, 80, 80), QColor(80, 200, 110), QColor(80, 140, 240))):
            p.setBrush(c)
            p.setPen(Qt.NoPen)
            p.drawEllipse(QPointF(8 + 8 * (i % 2), 8 + 8 * (i // 2) + (4 if i == 2 else 0)), 5, 5)
    elif name == 'rename':
        p.drawLine(QPointF(4, 20), QPointF(20, 20))
        p.drawLine(QPointF(8, 16), QPointF(18, 6))
        p.drawLine(QPointF(8, 16), QPointF(7, 18))


@lru_cache(maxsize=None)
def icon(name):
    """QIcon named `name` (see _draw); blank for unknown names."""
    pix = QPixmap(48, 48)
    pix.fill(Qt.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.Antialiasing, True)
    p.scale(2, 2)
    _draw(name, p)
    p.end()
    return QIcon(pix)
