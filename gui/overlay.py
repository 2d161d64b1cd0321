"""Frame + mask compositing for the canvas (pure numpy, no Qt).

Overlay modes (MiVOS parity):
  davis    object colours blended at 50 % with opaque outlines (the DAVIS look)
  fade     like davis, background darkened so the objects stand out
  light    a light 25 % tint with outlines: the image detail stays readable under the mask
  popup    objects in full colour, background grey and dimmed
  layered  objects cut out over a layer (checkerboard, or an image the user picks)
  mask     the label map in object colours only
"""
import cv2
import numpy as np

from util.palette import overlay as palette_overlay

MODES = ('davis', 'fade', 'light', 'popup', 'layered', 'mask')
MODE_LABELS = {
    'davis': 'DAVIS colours',
    'fade': 'Fade background',
    'light': 'Light tint',
    'popup': 'Pop-up objects',
    'layered': 'Layered (cut-out)',
    'mask': 'Mask only',
}


def checkerboard(h, w, cell=16, dark=58, light=84):
    """Neutral grey checkerboard (H,W,3) uint8, the usual 'transparent' pattern."""
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2).astype(bool)
    out = np.where(board, light, dark).astype(np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2)


def _visible_fg(labels, visible):
    fg = labels > 0
    if visible is not None:
        keep = np.zeros(256, bool)
        keep[[int(v) for v in visible if 0 < int(v) < 256]] = True
        fg &= keep[labels]
    return fg


def compose(frame, labels, mode='davis', colors=None, visible=None, layer=None):
    """Render `frame` (H,W,3) uint8 with `labels` (H,W) uint8 in one of MODES.

    `colors`: (256,3) colour table (object id -> RGB); `visible`: ids to draw (None = all);
    `layer`: (H,W,3) uint8 background for 'layered' (checkerboard when None).
    Returns a new contiguous (H,W,3) uint8 array.
    """
    if mode not in MODES:
        raise ValueError(f'unknown overlay mode {mode!r} (choose from {", ".join(MODES)})')
    frame = np.asarray(frame, np.uint8)
    labels = np.asarray(labels, np.uint8)
    colors = np.asarray(colors, np.uint8) if colors is not None else None
    if colors is None:
        from util.palette import davis_palette
        colors = davis_palette()
    fg = _visible_fg(labels, visible)
    if mode == 'davis':
        return palette_overlay(frame, labels, colors, alpha=0.5, visible=visible)
    if mode == 'light':
        return palette_overlay(frame, labels, colors, alpha=0.25, visible=visible)
    if mode == 'fade':
        base = (frame.astype(np.float32) * 0.35).astype(np.uint8)
        base[fg] = frame[fg]
        out = palette_overlay(base, labels, colors, alpha=0.45, visible=visible)
        return out
    if mode == 'popup':
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        out = np.repeat((grey.astype(np.float32) * 0.55).astype(np.uint8)[:, :, None], 3, axis=2)
        out[fg] = frame[fg]
        # Thin coloured outline so each object's extent is clear.
        return _outline(out, labels, fg, colors)
    if mode == 'layered':
        h, w = labels.shape
        if layer is None or layer.shape[:2] != (h, w):
            base = checkerboard(h, w) if layer is None else \
                cv2.resize(layer, (w, h), interpolation=cv2.INTER_AREA)
        else:
            base = layer
        out = np.array(base, np.uint8, copy=True)
        out[fg] = frame[fg]
        return out
    # mask
    out = np.zeros_like(frame)
    out[fg] = colors[labels[fg]]
    return out


def _outline(img, labels, fg, colors):
    lab = np.where(fg, labels, 0).astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    border = (cv2.dilate(lab, k) != cv2.erode(lab, k)) & fg
    img[border] = colors[labels[border]]
    return img
