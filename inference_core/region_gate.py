"""Regional gate: an object is looked for near where it was one frame ago.

A bundled network reads its memory globally: every position of the new frame is matched against
every memory position, so in a crowd or a herd a position on a look-alike (another girl in the
same uniform, another dog of the same breed) reads "object k" as strongly as object k itself, and
the mask jumps or spreads to the look-alike. As in regional memory reading (RMNet, CVPR 2021),
each object's result is kept to a window around its mask in the previous frame of the pass: the
box times CONTEXT, at least MIN_SIDE of the frame on each side, fading to zero over RAMP of the
frame's shorter side outside it. Objects that were absent or nearly so in the previous frame are
not gated (they may reappear anywhere), and objects whose window covers the frame are unchanged.

The small-object zoom (small_object_zoom.py) already restricts small objects to its window; this
gate does the same, more loosely, for the rest.
"""
import torch

from inference_core.masks import mask_box

CONTEXT = 2.0        # window side / object box side
MIN_SIDE = 0.3       # smallest window side, a share of the frame's side
RAMP = 0.1           # width of the fade outside the window, a share of the shorter side
MIN_PIXELS = 16      # objects with fewer pixels above 0.5 in the previous frame are not gated


def _profile(n, lo, hi, ramp, device=None):
    """1-D gate of length n: 1 on [lo, hi), falling linearly to 0 over `ramp` on both sides."""
    x = torch.arange(n, dtype=torch.float32, device=device) + 0.5
    d = torch.clamp(lo - x, min=0) + torch.clamp(x - hi, min=0)
    return torch.clamp(1 - d / max(ramp, 1e-6), min=0)


def window(mask, valid):
    """(y0, x0, y1, x1) float window around the pixels of `mask` (H, W bool), or None when the
    object is (nearly) absent. valid: (top, left, height, width) of the frame in its padding."""
    if int(mask.sum()) < MIN_PIXELS:
        return None
    _, _, vh, vw = valid
    y0, x0, y1, x1 = mask_box(mask)
    hh = max((y1 - y0) * CONTEXT, MIN_SIDE * vh) / 2
    hw = max((x1 - x0) * CONTEXT, MIN_SIDE * vw) / 2
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    return cy - hh, cx - hw, cy + hh, cx + hw


def gate(raw, prev, valid):
    """raw (K,1,H,W) per-object probabilities of a frame, prev (K,1,H,W) the previous frame's
    result of the pass; returns raw with each object's probability faded out away from its
    previous window (a new tensor when anything changed)."""
    _, _, vh, vw = valid
    ramp = RAMP * min(vh, vw)
    h, w = raw.shape[-2:]
    out = None
    for k in range(raw.shape[0]):
        win = window(prev[k, 0] > 0.5, valid)
        if win is None:
            continue
        y0, x0, y1, x1 = win
        oy, ox = valid[0], valid[1]
        if y0 - ramp <= oy and x0 - ramp <= ox and y1 + ramp >= oy + vh and x1 + ramp >= ox + vw:
            continue                       # the window covers the frame
        g = _profile(h, y0, y1, ramp, raw.device)[:, None] * _profile(w, x0, x1, ramp, raw.device)[None]
        if out is None:
            out = raw.clone()
        out[k, 0] *= g.to(raw.dtype)
    return raw if out is None else out
