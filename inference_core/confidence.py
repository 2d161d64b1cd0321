"""How sure the propagation is of a frame, from its own soft output: where to look next.

frame_confidence(prob, prev) in [0, 1]:
  * margin: the mean, over the frame's uncertain-or-object region (pixels where any object has
    probability > REGION_P), of the gap between the two most likely labels. A frame where the
    network hesitates about the object's extent scores low;
  * area change: the relative change of each object's area since the previous frame of the same
    pass (a mask that suddenly shrinks, grows or vanishes is suspicious), averaged over objects;
  confidence = margin * (1 - min(1, area change)).
Interacted frames have confidence 1 (a person made them). suggest_frame() picks the least
confident frame that is not interacted.
"""
import numpy as np
import torch

REGION_P = 0.1        # an object's probability above this puts a pixel in the scored region
MIN_REGION = 16       # fewer region pixels (full resolution): score the whole frame
STEP = 2              # scored on every STEP-th pixel in each direction: a mean and area ratios
                      # need no more, and at full resolution it took ~7% of a propagation pass


def frame_confidence(prob, prev=None):
    """prob, prev: (K+1, 1, H, W) probabilities with background (prev: the previous frame of
    the pass, or None). Returns a float in [0, 1]."""
    p = prob[:, 0, ::STEP, ::STEP].float()
    if p.shape[0] < 2:
        return 1.0
    # top-2 margin without torch.topk over the channel dimension (10x slower on CPU here)
    first, lab = p.max(0)
    second = p.scatter(0, lab[None], float('-inf')).amax(0)
    margin = first - second
    region = p[1:].amax(0) > REGION_P
    n = int(region.sum())
    m = float((margin * region).sum()) / n if n * STEP * STEP >= MIN_REGION else float(margin.mean())
    change = 0.0
    if prev is not None:
        plab = prev[:, 0, ::STEP, ::STEP].float().max(0).indices   # max().indices: argmax(0) is ~15x slower
        areas = torch.bincount(lab.flatten(), minlength=p.shape[0])
        pareas = torch.bincount(plab.flatten(), minlength=p.shape[0])
        changes = []
        for k in range(1, p.shape[0]):
            a, b = int(areas[k]), int(pareas[k])
            if a or b:
                changes.append(abs(a - b) / max(a, b))
        change = float(np.mean(changes)) if changes else 0.0
    return max(0.0, min(1.0, m * (1.0 - min(1.0, change))))


def suggest_frame(confidence, exclude=()):
    """The frame with the lowest confidence (NaN = unknown, skipped) outside `exclude`, or None."""
    c = np.asarray(confidence, dtype=np.float64).copy()
    for t in exclude:
        if 0 <= t < len(c):
            c[t] = np.nan
    if not np.isfinite(c).any():
        return None
    return int(np.nanargmin(c))
