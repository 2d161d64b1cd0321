"""Label maps and masks as the engine's padded probability maps (K+1, 1, nh, nw): one-hot of the
labels inside the frame, zero (background included) in the pad, as MiVOS pads them."""
import numpy as np
import torch

from inference_core.padding import pad_divide_by, unpad
from util.errors import UserError


def mask_box(mask):
    """(y0, x0, y1, x1) integer bounding box (ends exclusive) of the pixels of `mask` (H, W bool
    tensor), or None when it is empty."""
    rows, cols = mask.any(1), mask.any(0)
    if not bool(rows.any()):
        return None
    ys, xs = torch.nonzero(rows)[:, 0], torch.nonzero(cols)[:, 0]
    return int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1


def zero_pad_border(x, pad):
    """`x` (..., nh, nw) with its pad border (pad_amount's tuple) set to zero."""
    if any(pad):
        lw, uw, lh, uh = pad
        inner = unpad(x, pad)
        x = torch.zeros_like(x)
        x[..., lh:lh + inner.shape[-2], lw:lw + inner.shape[-1]] = inner
    return x


def onehot_padded(labels, k, device):
    """One-hot (k+1, 1, nh, nw) of an unpadded label map, zero (incl. background) in the pad."""
    lab = torch.from_numpy(np.asarray(labels).astype(np.int64))
    if int(lab.max()) > k:
        raise UserError(f'label map has object id {int(lab.max())} but only {k} objects exist')
    onehot = torch.zeros((k + 1, 1) + tuple(lab.shape), dtype=torch.float32)
    onehot.scatter_(0, lab[None, None], 1.0)
    return pad_divide_by(onehot, 16)[0].to(device)


def mask_to_prob(mask, k, size, device):
    """A mask for k objects on a frame of `size` (h, w) as a padded probability: a label map
    (h, w) -> its one-hot; probabilities (K+1, [1,] h, w) -> padded, missing objects zero."""
    h, w = size
    if isinstance(mask, np.ndarray) and mask.ndim == 2 or \
            isinstance(mask, torch.Tensor) and mask.dim() == 2:
        labels = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else mask
        if labels.shape != (h, w):
            raise UserError(f'mask is {labels.shape[1]}x{labels.shape[0]}, the video is {w}x{h}')
        return onehot_padded(labels, k, device)
    m = torch.as_tensor(mask).float().to(device)
    if m.dim() == 3:
        m = m.unsqueeze(1)
    if m.dim() != 4 or m.shape[1] != 1 or tuple(m.shape[-2:]) != (h, w):
        raise UserError(f'mask must be (K+1, 1, {h}, {w}) probabilities or a ({h}, {w}) label '
                        f'map, got {tuple(m.shape)}')
    if m.shape[0] > k + 1:
        raise UserError(f'mask has {m.shape[0] - 1} objects but only {k} exist')
    if m.shape[0] < k + 1:
        m = torch.cat([m, m.new_zeros((k + 1 - m.shape[0], 1, h, w))], 0)
    return pad_divide_by(m, 16)[0]
