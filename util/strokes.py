"""Drawing strokes: polylines in image coordinates (x, y) rasterised with a round brush, and
brush disks, as bool masks (the strokes of the Session's prompts and of the evaluation robots)."""
import cv2
import numpy as np

from util.errors import UserError

MAX_COORD = 1 << 20      # beyond this a point cannot be drawn (int32 casts overflow): refused


def _as_polylines(strokes):
    """Accept one polyline [(x, y), ...] or a list of polylines; return list of int32 arrays."""
    if strokes is None:
        return []
    if isinstance(strokes, np.ndarray) and strokes.ndim == 2 and strokes.shape[1] == 2:
        strokes = [strokes]
    try:
        strokes = list(strokes)
    except TypeError:
        raise UserError(f'strokes must be polylines [(x, y), ...], got {strokes!r}') from None
    if not strokes:
        return []
    first = strokes[0]
    if np.ndim(first) == 1 and len(first) == 2 and np.isscalar(first[0]):
        strokes = [strokes]
    out = []
    for s in strokes:
        try:
            a = np.asarray(s, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError('a stroke must be a list of (x, y) points (numbers)') from None
        if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
            raise UserError('a stroke must be a list of (x, y) points')
        if not np.isfinite(a).all():
            raise UserError('stroke coordinates must be finite numbers (got NaN or infinity)')
        if np.abs(a).max() > MAX_COORD:
            raise UserError(f'stroke coordinates must be within \u00b1{MAX_COORD} pixels, got '
                            f'{a[np.unravel_index(np.abs(a).argmax(), a.shape)]:g}')
        out.append(a)
    return out


def stroke_mask(height, width, strokes, width_px=3):
    """Rasterise polylines (image coordinates x, y) drawn with a round brush of diameter
    `width_px` into a bool (height, width) mask. A one-point stroke draws a disk."""
    if isinstance(width_px, (bool, np.bool_)) or not isinstance(
            width_px, (int, float, np.integer, np.floating)) or not width_px >= 1 \
            or not np.isfinite(width_px):
        raise UserError(f'brush width must be a number >= 1, got {width_px!r}')
    canvas = np.zeros((height, width), np.uint8)
    thickness = max(1, int(round(width_px)))
    for pts in _as_polylines(strokes):
        p = np.round(pts).astype(np.int32)
        if len(p) == 1:
            cv2.circle(canvas, tuple(int(v) for v in p[0]), max(0, thickness // 2), 1, -1)
        else:
            cv2.polylines(canvas, [p.reshape(-1, 1, 2)], False, 1, thickness, lineType=cv2.LINE_8)
            if thickness > 2:     # round caps at both ends
                for q in (p[0], p[-1]):
                    cv2.circle(canvas, (int(q[0]), int(q[1])), thickness // 2, 1, -1)
    return canvas.astype(bool)


def brush_disk(height, width, x, y, radius):
    """Bool mask of a filled disk of `radius` pixels at (x, y)."""
    canvas = np.zeros((height, width), np.uint8)
    cv2.circle(canvas, (int(round(x)), int(round(y))), max(0, int(round(radius))), 1, -1)
    return canvas.astype(bool)
