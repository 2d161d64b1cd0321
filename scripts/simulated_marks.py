"""Scribble and click simulation from ground-truth masks: the first-scribble and correction
evaluations (scripts/eval_semi_davis.py) and the interaction network's training
(scripts/train/train_interaction.py, interaction_samples.py) draw the same marks.

* Strokes: a random portion of the skeleton of the (eroded) region (DAVIS-interactive-like
  curves through the object), or a polyline through random interior points clipped to the region.
* Clicks: small disks at interior points (maximum of the distance transform, with jitter).
* Rounds: first interaction (empty previous mask, positive stroke in the object, often a negative
  stroke in the background near it) and corrections (a perturbed previous mask, strokes/clicks in
  its false-negative and false-positive regions).
"""
import cv2
import numpy as np
from skimage.morphology import skeletonize


def _largest_component(mask):
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return lab == k


def _components(mask, min_area):
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [lab == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]


def _erode(mask, r):
    if r <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.erode(mask.astype(np.uint8), k).astype(bool)


def _dilate(mask, r):
    if r <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def stroke(region, rng, thickness=2, frac=None):
    """One stroke inside `region` (bool HxW): returns a bool map (empty if the region is empty)."""
    region = np.asarray(region, bool)
    out = np.zeros(region.shape, np.uint8)
    if not region.any():
        return out.astype(bool)
    size = np.sqrt(region.sum())
    er = _erode(region, int(max(1, min(size * 0.08, 8))))
    inner = er if er.sum() > 20 else region
    if rng.random() < 0.6:
        skel = skeletonize(_largest_component(inner))
        ys, xs = np.nonzero(skel)
        if len(ys) == 0:
            ys, xs = np.nonzero(inner)
        i = rng.integers(len(ys))
        frac = rng.uniform(0.3, 1.0) if frac is None else frac
        rad = frac * size
        keep = (ys - ys[i]) ** 2 + (xs - xs[i]) ** 2 <= rad * rad
        out[ys[keep], xs[keep]] = 1
        out = _dilate(out, max(0, thickness // 2)).astype(np.uint8)
    else:
        ys, xs = np.nonzero(inner)
        n = rng.integers(2, 5)
        idx = rng.integers(len(ys), size=n)
        pts = np.stack([xs[idx], ys[idx]], 1).astype(np.int32)
        cv2.polylines(out, [pts], False, 1, thickness=max(1, thickness))
    return out.astype(bool) & region


def click(region, rng, radius=3):
    """A disk at a point deep inside `region` (jittered maximum of the distance transform)."""
    region = np.asarray(region, bool)
    out = np.zeros(region.shape, np.uint8)
    if not region.any():
        return out.astype(bool)
    dt = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    cand = dt >= max(1.0, dt.max() * rng.uniform(0.5, 0.95))
    ys, xs = np.nonzero(cand)
    i = rng.integers(len(ys))
    cv2.circle(out, (int(xs[i]), int(ys[i])), int(radius), 1, -1)
    return out.astype(bool)


def perturb_mask(gt, rng):
    """A plausible imperfect previous mask: shifted / eroded / dilated / with blobs added or cut."""
    gt = np.asarray(gt, bool)
    h, w = gt.shape
    m = gt.copy()
    size = max(4.0, np.sqrt(gt.sum()))
    r = rng.random()
    if r < 0.3:
        dx, dy = rng.normal(0, size * 0.15, 2)
        M = np.float32([[1, 0, dx], [0, 1, dy]])
        m = cv2.warpAffine(m.astype(np.uint8), M, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
    elif r < 0.55:
        k = int(rng.integers(2, max(3, int(size * 0.2))))
        m = _erode(m, k) if rng.random() < 0.5 else _dilate(m, k)
    for _ in range(rng.integers(0, 4)):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        if gt.any() and rng.random() < 0.6:   # blobs near the object edge are the usual errors
            ys, xs = np.nonzero(gt)
            j = rng.integers(len(ys))
            cy, cx = ys[j], xs[j]
        ax = int(rng.uniform(0.05, 0.35) * size) + 1
        ay = int(rng.uniform(0.05, 0.35) * size) + 1
        blob = np.zeros((h, w), np.uint8)
        cv2.ellipse(blob, (int(cx), int(cy)), (ax, ay), rng.uniform(0, 180), 0, 360, 1, -1)
        m = m | blob.astype(bool) if rng.random() < 0.5 else m & ~blob.astype(bool)
    return m


def first_scribbles(gt, rng, thickness=3, neg_prob=1.0):
    """First interaction on a frame: a positive stroke in the object and (with prob neg_prob) a
    negative stroke in the background around it. Returns (pos, neg) float32 maps."""
    gt = np.asarray(gt, bool)
    pos = stroke(gt, rng, thickness, frac=1.0)
    neg = np.zeros_like(gt)
    if rng.random() < neg_prob:
        size = max(4.0, np.sqrt(gt.sum()))
        ring = _dilate(gt, int(size * rng.uniform(0.15, 0.5))) & ~_dilate(gt, max(2, int(size * 0.05)))
        bg = ring if ring.sum() > 50 else ~gt
        neg = stroke(bg, rng, thickness)
    return pos.astype(np.float32), neg.astype(np.float32)


def simulate_round(gt, rng, thickness=2, click_radius=3):
    """Random training round: returns (prev, pos, neg) float32 maps for the ground truth `gt`."""
    gt = np.asarray(gt, bool)
    use_clicks = rng.random() < 0.35
    size = max(4.0, np.sqrt(gt.sum()))
    if rng.random() < 0.4 or not gt.any():
        prev = np.zeros_like(gt)
        if use_clicks:
            pos = click(gt, rng, click_radius)
            neg = np.zeros_like(gt)
            if rng.random() < 0.3:
                neg = click(~_dilate(gt, int(size * 0.1)), rng, click_radius)
        else:
            pos, neg = first_scribbles(gt, rng, thickness, neg_prob=0.7)
            pos, neg = pos > 0, neg > 0
    else:
        prev = perturb_mask(gt, rng)
        pos, neg = correction(gt, prev, rng, use_clicks, thickness, click_radius)
    return prev.astype(np.float32), pos.astype(np.float32), neg.astype(np.float32)


def correction(gt, prev, rng, use_clicks=False, thickness=2, click_radius=3):
    """Corrective marks for the previous mask `prev` against `gt` (both HxW bool): a positive
    stroke (or click) in each of the 1-2 largest missed regions, a negative one in each of the
    1-2 largest false-positive regions; a stroke in the object if neither is big enough.
    Returns (pos, neg) bool maps."""
    gt, prev = np.asarray(gt, bool), np.asarray(prev, bool)
    min_area = max(4, int(0.002 * gt.size))
    pos = np.zeros_like(gt)
    neg = np.zeros_like(gt)
    fn_c = sorted(_components(gt & ~prev, min_area), key=lambda c: -c.sum())
    fp_c = sorted(_components(prev & ~gt, min_area), key=lambda c: -c.sum())
    n_fix = rng.integers(1, 3)
    for c in fn_c[:n_fix]:
        pos |= click(c, rng, click_radius) if use_clicks else stroke(c, rng, thickness)
    for c in fp_c[:n_fix]:
        neg |= click(c, rng, click_radius) if use_clicks else stroke(c, rng, thickness)
    if not pos.any() and not neg.any() and gt.any():
        pos = click(gt, rng, click_radius) if use_clicks else stroke(gt, rng, thickness)
    return pos, neg
