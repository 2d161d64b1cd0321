"""DAVIS palette (the PASCAL VOC colour map DAVIS/YouTube-VOS PNGs use) and colour overlays."""
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _palette():
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    pal.flags.writeable = False
    return pal


def davis_palette():
    """(256, 3) uint8 RGB table: index 0 black, 1 (128,0,0), 2 (0,128,0), 3 (128,128,0) ..."""
    return _palette()


def davis_palette_flat():
    """The palette as a flat list of 768 ints, as PIL's Image.putpalette wants."""
    return _palette().reshape(-1).tolist()


def overlay(frame, labels, colors=None, alpha=0.5, visible=None, outline=True):
    """Blend the object colours over an RGB frame.

    frame (H,W,3) uint8, labels (H,W) uint8 of the same size; `colors` a (256,3) table (default
    DAVIS); `visible` an optional iterable of ids to draw (others are left as the plain frame).
    With outline=True, object borders are drawn opaque so small objects stay visible.
    Returns a new (H,W,3) uint8 image.
    """
    colors = davis_palette() if colors is None else np.asarray(colors, np.uint8)
    fg = labels > 0
    if visible is not None:
        keep = np.zeros(256, bool)
        keep[[int(v) for v in visible if 0 < int(v) < 256]] = True
        fg &= keep[labels]
    out = np.array(frame, dtype=np.uint8, copy=True)
    if not fg.any():
        return out
    col = colors[labels[fg]].astype(np.float32)
    out[fg] = (out[fg].astype(np.float32) * (1 - alpha) + col * alpha + 0.5).astype(np.uint8)
    if outline:
        import cv2
        lab = np.where(fg, labels, 0).astype(np.uint8)
        k = np.ones((3, 3), np.uint8)
        border = (cv2.dilate(lab, k) != cv2.erode(lab, k)) & fg
        out[border] = colors[labels[border]]
    return out
