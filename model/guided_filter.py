"""Edge-aware refinement of a soft mask: the colour guided filter (He, Sun and Tang, ECCV 2010)
with its coefficients on a subsampled grid (He and Sun, "Fast Guided Filter", 2015).

The bundled heads predict at stride 2-4 of a processing size well below the frame's, so their
masks, upsampled bilinearly, have smooth blob-like boundaries that ignore the image's edges.
The guided filter fits, in every window, the mask as a linear function of the frame's colours;
the output follows the image's edges where the mask changes and keeps it where the image is
flat. No parameters are learnt.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _window_sums(c, r, dim):
    """Sums over [i-r, i+r] (clipped) along `dim`, from the cumulative sums c along it
    (written into one buffer: torch.cat along the last dimension is slow on the CPU)."""
    n = c.shape[dim]
    out = torch.empty_like(c)
    out.narrow(dim, 0, r + 1).copy_(c.narrow(dim, r, r + 1))
    out.narrow(dim, r + 1, n - 2 * r - 1).copy_(c.narrow(dim, 2 * r + 1, n - 2 * r - 1)
                                                - c.narrow(dim, 0, n - 2 * r - 1))
    out.narrow(dim, n - r, r).copy_(c.narrow(dim, n - 1, 1) - c.narrow(dim, n - 2 * r - 1, r))
    return out


def _clipped_counts(n, r, device):
    """How many of [i-r, i+r] fall inside [0, n-1], for each i."""
    i = torch.arange(n, device=device, dtype=torch.float64)
    return (i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1


def box_mean(x, r):
    """Mean of x (B,C,H,W) over (2r+1)^2 windows clipped at the borders; needs 2r+1 <= H, W.
    Summed-area tables, in float64 so that the differences of large sums stay exact enough for
    the variances (float32 would err by ~1e-5, a tenth of eps)."""
    h, w = x.shape[-2:]
    sums = _window_sums(_window_sums(x.double().cumsum(2), r, 2).cumsum(3), r, 3)
    count = _clipped_counts(h, r, x.device)[:, None] * _clipped_counts(w, r, x.device)[None]
    return sums / count


def guided_filter(image, p, radius, eps=1e-4, subsample=2, colour=None):
    """image (1 or B,3,H,W) colours in [0,1]; p (B,1,H,W) soft masks in [0,1] -> filtered p
    (B,1,H,W). radius in pixels of the full size; the coefficients are computed at 1/subsample.
    colour: (scale, shift) per channel when the image is normalised: its colours in [0, 1] are
    image * scale + shift (the map is folded into the coefficients, so the full-size image is
    never converted)."""
    dtype = p.dtype
    h, w = p.shape[-2:]
    image, p = image.float(), p.float()
    if subsample > 1:
        def shrink(x):      # the mean of each subsample x subsample cell
            return F.avg_pool2d(x, subsample, subsample, ceil_mode=True,
                                count_include_pad=False).double()
        small_i, small_p = shrink(image), shrink(p)
        r = max(1, round(radius / subsample))
    else:
        small_i, small_p, r = image.double(), p.double(), radius
    if colour is not None:
        scale, shift = (torch.as_tensor(v, dtype=torch.float64, device=image.device).view(1, 3, 1, 1)
                        for v in colour)
        small_i = small_i * scale + shift
    r = max(0, min(r, (min(small_p.shape[-2:]) - 1) // 2))
    b = p.shape[0]
    i = small_i.expand(b, -1, -1, -1)
    pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    # every window statistic in one pass: E[I] (3), E[p] (1), E[I p] (3), E[I_i I_j] (6)
    stats = box_mean(torch.cat([i, small_p, i * small_p]
                               + [i[:, m:m + 1] * i[:, n:n + 1] for m, n in pairs], 1), r)
    mean_i, mean_p, mean_ip = stats[:, 0:3], stats[:, 3:4], stats[:, 4:7]
    cov = mean_ip - mean_i * mean_p
    v = {mn: stats[:, 7 + k] - mean_i[:, mn[0]] * mean_i[:, mn[1]] for k, mn in enumerate(pairs)}
    # (Sigma + eps I)^-1 cov by the symmetric 3x3 inverse's cofactors
    a11, a12, a13 = v[0, 0] + eps, v[0, 1], v[0, 2]
    a22, a23, a33 = v[1, 1] + eps, v[1, 2], v[2, 2] + eps
    c11, c12, c13 = a22 * a33 - a23 * a23, a13 * a23 - a12 * a33, a12 * a23 - a13 * a22
    c22, c23, c33 = a11 * a33 - a13 * a13, a12 * a13 - a11 * a23, a11 * a22 - a12 * a12
    det = a11 * c11 + a12 * c12 + a13 * c13
    x, y, z = cov[:, 0], cov[:, 1], cov[:, 2]
    a = torch.stack([c11 * x + c12 * y + c13 * z, c12 * x + c22 * y + c23 * z,
                     c13 * x + c23 * y + c33 * z], 1) / det.unsqueeze(1)
    bias = mean_p - (a * mean_i).sum(1, keepdim=True)
    if colour is not None:      # a . (x * scale + shift) + bias = (a * scale) . x + (bias + a . shift)
        bias = bias + (a * shift).sum(1, keepdim=True)
        a = a * scale
    coef = box_mean(torch.cat([a, bias], 1), r).float()
    if subsample > 1:
        coef = F.interpolate(coef, size=(h, w), mode='bilinear', align_corners=False)
    return ((coef[:, :3] * image).sum(1, keepdim=True) + coef[:, 3:]).to(dtype)


LOW = 0.1      # probabilities between LOW and 1 - LOW are the uncertain band


def band_box(band, margin):
    """(y0, y1, x0, x1) around the True pixels of band (B,1,H,W), grown by `margin` and clipped
    to the frame; None when there are none."""
    band = band.flatten(0, 1).any(0)
    rows, cols = band.any(1).nonzero(), band.any(0).nonzero()
    if not len(rows):
        return None
    h, w = band.shape
    return (max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin),
            max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin))


class EdgeRefine(nn.Module):
    """Refines soft masks along the image's edges with the guided filter.

    The radius is a share of the frame's shorter side (1/30: 16 pixels at 480p). Only the box
    around the masks' uncertain band (probability 0.1-0.9, grown by twice the radius: the
    filter's reach) is filtered; outside it the masks are confident and kept as they are. The
    coefficients are computed at 1/3 of the size (within 0.1 J of 1/2 on the first scribbles
    measured, at less than half the time)."""

    def __init__(self, radius_share=1 / 30, eps=1e-4, subsample=3):
        super().__init__()
        self.radius_share, self.eps, self.subsample = radius_share, eps, subsample

    def forward(self, image, logits, colour=None, inplace=False):
        """image (1 or B,3,H,W); logits (B,1,H,W) -> refined logits (written into `logits`
        with inplace=True). colour: guided_filter's (scale, shift) of a normalised image; None:
        its colours are in [0, 1]."""
        radius = max(1, round(self.radius_share * min(logits.shape[-2:])))
        box = band_box(logits.abs() < math.log((1 - LOW) / LOW), 2 * radius + self.subsample)
        if box is None:
            return logits
        y0, y1, x0, x1 = box
        q = guided_filter(image[..., y0:y1, x0:x1], torch.sigmoid(logits[..., y0:y1, x0:x1].float()),
                          radius, self.eps, self.subsample, colour).clamp(1e-4, 1 - 1e-4)
        out = logits if inplace else logits.clone()
        out[..., y0:y1, x0:x1] = torch.log(q / (1 - q)).to(logits.dtype)
        return out
