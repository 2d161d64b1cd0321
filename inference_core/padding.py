"""Pad images to a multiple of the network stride and crop results back (MiVOS convention)."""
import math

import torch.nn.functional as F


def pad_amount(h, w, d=16):
    """Return the pad tuple (left, right, top, bottom); the odd pixel goes bottom/right."""
    new_h = math.ceil(h / d) * d
    new_w = math.ceil(w / d) * d
    lh, uh = (new_h - h) // 2, (new_h - h) - (new_h - h) // 2
    lw, uw = (new_w - w) // 2, (new_w - w) - (new_w - w) // 2
    return (lw, uw, lh, uh)


def pad_divide_by(x, d=16):
    """Zero-pad the last two dims of `x` to a multiple of d. Returns (padded, pad)."""
    pad = pad_amount(x.shape[-2], x.shape[-1], d)
    if any(pad):
        x = F.pad(x, pad)
    return x, pad


def unpad(x, pad):
    """Crop a tensor or array padded by `pad_divide_by` back to its original size."""
    lw, uw, lh, uh = pad
    h, w = x.shape[-2], x.shape[-1]
    return x[..., lh:h - uh, lw:w - uw]
