"""Interaction training samples beyond one simulated round (scripts/simulated_marks.py):

* photo composites: an object cut from one photo pasted on another; the target is either of the
  two objects, so the marks, not saliency, decide what is wanted (a salient-object photo alone
  teaches "take the salient thing", which spreads a stroke over look-alike surroundings);
* boxes: the inputs `inference_core.box_prompt` gives the network for a drawn box (the ellipse
  inscribed in the box as previous mask, a centre disk, negative lines just outside the box),
  on the same zoomed crop around the box, with the box jittered like a hand-drawn one;
* click sequences (RITM's iterative training): k clicks placed one after another by a robot on
  the network's own answers (no gradient), accumulated in the pos/neg planes over an unchanged
  previous mask exactly as `inference_core.click` accumulates a user's clicks; the network then
  learns from the k-th answer, so later clicks correct what it actually got wrong.
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inference_core.box_prompt import box_guidance, crop_for_box
from scripts.eval_noc import next_click
from scripts.simulated_marks import click, perturb_mask


PASTE_AREA = (0.03, 0.35)     # share of the frame a pasted object covers (uniform)


def photo_paste_sample(static_fg, rng, size, area=None, p_twin=0.0):
    """(frame, object, soft target) of a photo with another photo's object pasted on it (scaled,
    rotated, placed at random); the object is the pasted one or the photo's own visible part
    (when at least 2% of it stays in view), at random. The pasted object covers a share of the
    frame drawn uniformly from PASTE_AREA, or log-uniformly from `area` (min, max): small
    objects are as frequent per factor of size as large ones. With chance `p_twin` a look-alike
    of the pasted object (recoloured a little, mirrored half the time) is pasted elsewhere too,
    never the target: the marks, not the look, must say which of two alike things is wanted
    (a herd, a crowd)."""
    from scripts.train.static_fg import fit, twin
    h, w = size
    rgb, mask, ignore = static_fg.load(int(rng.integers(len(static_fg))))
    rgb, (mask, ignore) = fit(rgb, (mask, ignore), size)
    orgb, omask = static_fg.cutout(int(rng.integers(len(static_fg))))
    share = rng.uniform(*PASTE_AREA) if area is None else np.exp(rng.uniform(*np.log(area)))
    s = np.sqrt(share * h * w / max(1, omask.sum()))
    oh, ow = max(8, int(omask.shape[0] * s)), max(8, int(omask.shape[1] * s))
    if oh >= h or ow >= w:
        k = min((h - 1) / oh, (w - 1) / ow)
        oh, ow = max(8, int(oh * k)), max(8, int(ow * k))
    orgb = cv2.resize(orgb, (ow, oh), interpolation=cv2.INTER_AREA)
    omask = cv2.resize(omask.astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST)
    frame, pasted = _paste(rgb, orgb, omask, rng)
    own = mask & ~pasted
    if p_twin and rng.random() < p_twin:
        trgb, mirrored = twin(orgb, rng)
        frame, copy = _paste(frame, np.ascontiguousarray(trgb),
                             np.ascontiguousarray(omask[:, ::-1] if mirrored else omask), rng)
        pasted, own, ignore = pasted & ~copy, own & ~copy, ignore & ~copy
    if pasted.sum() < 20 or (rng.random() < 0.5 and own.sum() >= 0.02 * max(1, mask.sum())
                             and own.sum() >= 50):
        return frame, own, np.where(own, 1.0, np.where(ignore & ~pasted, 0.5, 0.0)).astype(np.float32)
    return frame, pasted, pasted.astype(np.float32)


def _paste(rgb, orgb, omask, rng):
    """(frame, mask of the pasted pixels): the object orgb / omask (uint8) placed at random on
    rgb, rotated and scaled a little, its border blended."""
    from util.augment import random_affine
    h, w = rgb.shape[:2]
    oh, ow = omask.shape
    canvas = np.zeros((h, w, 3), np.uint8)
    cmask = np.zeros((h, w), np.uint8)
    y, x = int(rng.integers(0, h - oh + 1)), int(rng.integers(0, w - ow + 1))
    canvas[y:y + oh, x:x + ow], cmask[y:y + oh, x:x + ow] = orgb, omask
    m = random_affine(rng, h, w, rot=20, scale=(0.9, 1.1), shear=5, trans=0.0)
    canvas = cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    pasted = cv2.warpAffine(cmask, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 0
    alpha = cv2.GaussianBlur(pasted.astype(np.float32), (3, 3), 0)[..., None]
    return (rgb * (1 - alpha) + canvas * alpha).astype(np.uint8), pasted


def jittered_box(gt, rng, jitter=0.06):
    """(x0, y0, x1, y1) floats of the object's box, each edge moved by up to `jitter` of the box's
    size (a hand-drawn box is loose or tight by a few pixels); None for an empty mask."""
    ys, xs = np.nonzero(gt)
    if len(ys) == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    bw, bh = x1 - x0, y1 - y0
    d = rng.uniform(-jitter, jitter, 4) * np.array([bw, bh, bw, bh])
    H, W = gt.shape
    x0, y0 = np.clip(x0 + d[0], 0, W - 2), np.clip(y0 + d[1], 0, H - 2)
    x1, y1 = np.clip(x1 + d[2], x0 + 2, W), np.clip(y1 + d[3], y0 + 2, H)
    return int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))


def box_sample(frame, gt, soft, rng, crop):
    """A box round on a whole photo: (frame, gt, soft, guide) on the crop `box_probability`
    would segment for a jittered box of the object, resized to `crop` (h, w); guide is
    (prev, pos, neg) float32. None when the object is empty."""
    box = jittered_box(gt, rng)
    if box is None:
        return None
    H, W = gt.shape
    x0, y0, x1, y1 = crop_for_box(box, H, W)
    ch, cw = crop
    win = lambda a, interp: cv2.resize(np.ascontiguousarray(a[y0:y1, x0:x1]), (cw, ch),  # noqa: E731
                                       interpolation=interp)
    frame = win(frame, cv2.INTER_LINEAR)
    gt = win(gt.astype(np.uint8), cv2.INTER_NEAREST) > 0
    soft = win(soft.astype(np.float32), cv2.INTER_LINEAR)
    scr, prev = box_guidance(box, (H, W), (x0, y0, x1, y1), crop)
    # the network answers 0 outside the box at inference: the target there does not matter
    guide = np.stack([prev.astype(np.float32), (scr == 1).astype(np.float32),
                      (scr == 0).astype(np.float32)])
    return frame, gt, soft, guide


def error_click(pred, gt, rng, radius=3):
    """The robot's next click on a prediction (scripts/eval_noc.py's next_click: positive in the
    missed pixels or negative in the false positives, whichever error is deeper), moved at random
    within the error region it falls in (simulated_marks.click). Returns (disk bool map,
    positive) or None when the prediction is right."""
    got = next_click(pred, gt)
    if got is None:
        return None
    x, y, positive = got
    error = (gt & ~pred) if positive else (pred & ~gt)
    _, lab = cv2.connectedComponents(error.astype(np.uint8), connectivity=8)
    return click(lab == lab[y, x], rng, radius), positive


@torch.no_grad()
def click_sequences(head, maps, gts, counts, rng, radius=3, p_prev=0.3):
    """(B, 3, h, w) guides of click sequences: sample i gets counts[i] clicks, the first in the
    object, each later one where the network's answer to the clicks so far is most wrong. The
    previous mask stays what the sequence started from: empty, or with probability p_prev a
    perturbed copy of the object (clicks that correct an existing mask).

    head: the network's head(f2, f4, f16, guide) -> logits; maps: stacked (f2, f4, f16)."""
    b = len(gts)
    prev = np.zeros((b,) + gts[0].shape, np.float32)
    pos, neg = np.zeros_like(prev), np.zeros_like(prev)
    for i, gt in enumerate(gts):
        if rng.random() < p_prev and gt.any():
            prev[i] = perturb_mask(gt, rng)
            got = error_click(prev[i] > 0, gt, rng, radius)
            if got is not None:
                plane = pos if got[1] else neg
                plane[i] = np.maximum(plane[i], got[0])
                continue
        if gt.any():
            pos[i] = np.maximum(pos[i], click(gt, rng, radius))
    f2, f4, f16 = maps
    for step in range(1, int(max(counts))):
        active = [i for i in range(b) if counts[i] > step]
        guide = torch.from_numpy(np.stack([prev[active], pos[active], neg[active]], 1))
        logits = head(f2[active], f4[active], f16[active], guide)
        pred = F.interpolate(logits, size=gts[0].shape, mode='bilinear', align_corners=False)[:, 0] > 0
        for j, i in enumerate(active):
            got = error_click(pred[j].numpy(), gts[i], rng, radius)
            if got is not None:
                plane = pos if got[1] else neg
                plane[i] = np.maximum(plane[i], got[0])
    return torch.from_numpy(np.stack([prev, pos, neg], 1))
