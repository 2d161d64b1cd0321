"""f-BRS-B click predictor, as MiVOS' GUI runs it (f-BRS `FeatureBRSPredictor` + `InteractiveController`).

Per click (see ../shared/reference/mivos/README.md section 4.8, case B):
  1. zoom-in from the 2nd click: bbox of (previous prob > 0.5) with the positive clicks, x1.4, at least
     200 px, clamped; the crop is resized to longest side 480 (bilinear, align_corners=True);
  2. longest-side limit 800 px (when not zoomed);
  3. batch [img, hflip(img)] with mirrored clicks;
  4. the features before `feature_extractor.head` are computed once per click;
  5. from the 2nd click, L-BFGS-B (SciPy) optimises a per-channel scale (1 + s) and bias b on them,
     shared by both flips; the logits with the lowest loss are kept;
  6. logits averaged over the flips, sigmoid, pasted back into the ROI (align_corners=True).

Deviations from the reference code, each only where the reference misbehaves:
  * the longest-side limit is undone only on the clicks where it was applied (the reference kept a
    stale limit ROI and resized zoomed results twice);
  * when the previous mask is empty after a zoomed click, the zoom ROI is dropped (the reference
    kept it and pasted a full-image prediction into the old ROI);
  * 3x3 click squares are clipped at the image border (the reference's negative slice start made
    clicks on row/column 0 vanish from the loss);
  * cached pre-head features are keyed on the actual network input, so undo with more than
    `net_clicks_limit` clicks cannot reuse features of an undone crop.
Click distance maps use the exact nearest-click distance with the click rounded to whole pixels
(the GUI's Cython maps round the same way; for clicks whose nearest click is unambiguous they agree).
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import fmin_l_bfgs_b


@dataclass(frozen=True)
class Click:
    row: float
    col: float
    positive: bool


# ----------------------------------------------------------------------------------------------
# Geometry helpers (f-BRS isegm.utils.misc / transforms)
# ----------------------------------------------------------------------------------------------

def _bbox_from_mask(mask):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _expand_bbox(bbox, ratio, min_size):
    rmin, rmax, cmin, cmax = bbox
    rc, cc = 0.5 * (rmin + rmax), 0.5 * (cmin + cmax)
    h = max(ratio * (rmax - rmin + 1), min_size)
    w = max(ratio * (cmax - cmin + 1), min_size)
    # Python round (ties to even), like the reference.
    return round(rc - 0.5 * h), round(rc + 0.5 * h), round(cc - 0.5 * w), round(cc + 0.5 * w)


def _segments_iou(a, b, c, d):
    inter = max(0, min(b, d) - max(a, c) + 1)
    union = max(1e-6, max(b, d) - min(a, c) + 1)
    return inter / union


def _bbox_iou(b1, b2):
    return _segments_iou(b1[0], b1[1], b2[0], b2[1]) * _segments_iou(b1[2], b1[3], b2[2], b2[3])


def _resize_roi(image, roi, target):
    """Crop `roi` (rmin, rmax, cmin, cmax) and resize it so its longest side is `target`."""
    rmin, rmax, cmin, cmax = roi
    h, w = rmax - rmin + 1, cmax - cmin + 1
    scale = target / max(h, w)
    size = (int(round(h * scale)), int(round(w * scale)))
    crop = image[:, :, rmin:rmax + 1, cmin:cmax + 1]
    return F.interpolate(crop, size=size, mode='bilinear', align_corners=True)


def _map_clicks(clicks, roi, size):
    rmin, rmax, cmin, cmax = roi
    return [Click(size[0] * (c.row - rmin) / (rmax - rmin + 1), size[1] * (c.col - cmin) / (cmax - cmin + 1),
                  c.positive) for c in clicks]


class ZoomIn:
    """f-BRS ZoomIn transform (state: ROI, previous full-size probability, ROI image)."""

    def __init__(self, target_size=480, skip_clicks=1, expansion_ratio=1.4, min_crop_size=200,
                 recompute_thresh_iou=0.5, prob_thresh=0.5):
        self.target_size = target_size
        self.skip_clicks = skip_clicks
        self.expansion_ratio = expansion_ratio
        self.min_crop_size = min_crop_size
        self.recompute_thresh_iou = recompute_thresh_iou
        self.prob_thresh = prob_thresh
        self.reset()

    def reset(self):
        self.object_roi = None
        self.prev_probs = None   # numpy (H, W) float32
        self.roi_image = None
        self.image_changed = False

    def get_state(self):
        return self.object_roi, self.prev_probs, self.roi_image, self.image_changed

    def set_state(self, state):
        self.object_roi, self.prev_probs, self.roi_image, self.image_changed = state

    def _object_roi(self, clicks):
        mask = self.prev_probs > self.prob_thresh
        if not mask.any():
            return None
        mask = mask.copy()
        for c in clicks:
            if c.positive:
                mask[int(c.row), int(c.col)] = True
        bbox = _expand_bbox(_bbox_from_mask(mask), self.expansion_ratio, self.min_crop_size)
        h, w = mask.shape
        return max(0, bbox[0]), min(h - 1, bbox[1]), max(0, bbox[2]), min(w - 1, bbox[3])

    def _roi_holds_clicks(self, clicks):
        r0, r1, c0, c1 = self.object_roi
        # `>= rmax` (not `>`) as in the reference.
        return all(not c.positive or (r0 <= c.row < r1 and c0 <= c.col < c1) for c in clicks)

    def transform(self, image, clicks):
        self.image_changed = False
        if len(clicks) <= self.skip_clicks:
            return image, clicks
        roi = self._object_roi(clicks) if self.prev_probs is not None else None
        if roi is None:
            if self.object_roi is not None:   # reference bug fix: no stale ROI for a full-image pass
                self.object_roi = self.roi_image = None
                self.image_changed = True
            return image, clicks
        if (self.object_roi is None or not self._roi_holds_clicks(clicks)
                or _bbox_iou(roi, self.object_roi) < self.recompute_thresh_iou):
            self.object_roi = roi
            self.roi_image = _resize_roi(image, roi, self.target_size)
            self.image_changed = True
        return self.roi_image, _map_clicks(clicks, self.object_roi, self.roi_image.shape[2:])

    def inv_transform(self, prob):
        """prob (1,1,h,w) -> full-size (1,1,H,W); remembers it for the next click's ROI."""
        if self.object_roi is not None:
            rmin, rmax, cmin, cmax = self.object_roi
            roi_prob = F.interpolate(prob, size=(rmax - rmin + 1, cmax - cmin + 1), mode='bilinear',
                                     align_corners=True)
            prob = torch.zeros((1, 1) + self.prev_probs.shape, dtype=prob.dtype, device=prob.device)
            prob[:, :, rmin:rmax + 1, cmin:cmax + 1] = roi_prob
        self.prev_probs = prob[0, 0].detach().cpu().numpy()
        return prob


# ----------------------------------------------------------------------------------------------
# Optimisation objective (f-BRS ScaleBiasOptimizer + BRSMaskLoss)
# ----------------------------------------------------------------------------------------------

class _ScaleBiasObjective:
    def __init__(self, logits_fn, pos_mask, neg_mask, prob_thresh, min_iou_diff, reg_weight, reg_bias_weight,
                 device):
        self.logits_fn = logits_fn
        self.pos_mask, self.neg_mask = pos_mask, neg_mask
        self.prob_thresh = prob_thresh
        self.min_iou_diff = min_iou_diff
        self.reg_weight = reg_weight
        self.reg_bias_weight = reg_bias_weight
        self.device = device
        self.best_logits = None
        self.best_loss = None
        self.last_mask = None
        self.nfev = 0

    def unpack(self, params):
        scale, bias = torch.chunk(params, 2, dim=0)
        reg = self.reg_weight * (torch.sum(scale ** 2) + self.reg_bias_weight * torch.sum(bias ** 2))
        return 1 + scale, bias, reg

    def __call__(self, x):
        self.nfev += 1
        params = torch.from_numpy(x).float().to(self.device).requires_grad_(True)
        with torch.enable_grad():
            scale, bias, reg = self.unpack(params)
            logits = self.logits_fn(scale, bias)
            prob = torch.sigmoid(logits)
            pos_diff = (1 - prob) * self.pos_mask
            neg_diff = prob * self.neg_mask
            loss = (torch.sum(pos_diff ** 2) / (torch.sum(self.pos_mask) + 1e-5)
                    + torch.sum(neg_diff ** 2) / (torch.sum(self.neg_mask) + 1e-5))
            loss = loss + reg
        f_val = loss.detach().cpu().numpy()
        if self.best_logits is None or f_val < self.best_loss:
            self.best_logits = logits.detach()
            self.best_loss = f_val
        with torch.no_grad():
            max_pos = torch.max(torch.abs(pos_diff)).item()
            max_neg = torch.max(torch.abs(neg_diff)).item()
        if max_pos < 1 - self.prob_thresh and max_neg < self.prob_thresh:
            return f_val, np.zeros_like(x)   # every click is satisfied: stop moving
        mask = (prob > self.prob_thresh).detach()
        if self.last_mask is not None and self.min_iou_diff > 0:
            dims = tuple(range(1, mask.dim()))
            union = torch.mean((mask | self.last_mask).float(), dim=dims).cpu().numpy()
            inter = torch.mean((mask & self.last_mask).float(), dim=dims).cpu().numpy()
            nz = union > 0
            iou = inter[nz] / union[nz]
            if len(iou) > 0 and iou.mean() > 1 - self.min_iou_diff:
                return f_val, np.zeros_like(x)   # the mask stopped changing
        self.last_mask = mask
        (grad,) = torch.autograd.grad(loss, params)
        return f_val, grad.cpu().numpy().ravel().astype(np.float64)


# ----------------------------------------------------------------------------------------------
# Predictor
# ----------------------------------------------------------------------------------------------

class FBRSPredictor:
    """Click history + f-BRS-B prediction for one image (one object).

    `set_image(image (1,3,H,W) normalised)`, then `add_click(row, col, positive) -> prob (1,1,H,W)`;
    `undo() -> prob or None`. After each click: `zoom_roi` (rmin, rmax, cmin, cmax) or None,
    `lbfgs_nfev`, `opt_data` (scale offsets then biases, numpy).
    """

    def __init__(self, net, device=None, prob_thresh=0.5, with_flip=True, zoom_in=True, zoom_target_size=480,
                 zoom_expansion_ratio=1.4, zoom_skip_clicks=1, net_clicks_limit=8, max_size=800,
                 optimize_after_n_clicks=1, min_iou_diff=1e-3, reg_weight=1e-3, reg_bias_weight=10.0,
                 lbfgs_params=None):
        self.net = net
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.prob_thresh = prob_thresh
        self.with_flip = with_flip
        self.zoom = ZoomIn(zoom_target_size, zoom_skip_clicks, zoom_expansion_ratio,
                           prob_thresh=prob_thresh) if zoom_in else None
        self.net_clicks_limit = net_clicks_limit
        self.max_size = max_size
        self.optimize_after_n_clicks = optimize_after_n_clicks
        self.min_iou_diff = min_iou_diff
        self.reg_weight = reg_weight
        self.reg_bias_weight = reg_bias_weight
        self.lbfgs_params = dict(m=20, factr=0, pgtol=1e-8, maxfun=20)
        self.lbfgs_params.update(lbfgs_params or {})
        self.lbfgs_params.setdefault('maxiter', 2 * self.lbfgs_params['maxfun'])
        self.image = None
        self._reset_clicks()

    # -- state ---------------------------------------------------------------------------------

    def _reset_clicks(self):
        self.clicks = []
        self.probs_history = []
        self._states = []
        self._redo = []            # [(state after the click, prob)] of undone clicks, last first
        self.opt_data = None
        self._input_key = None
        self._input_data = None
        self.zoom_roi = None
        self.lbfgs_nfev = 0
        if self.zoom is not None:
            self.zoom.reset()

    def set_image(self, image):
        """New image (1,3,H,W) or (3,H,W), ImageNet-normalised; clears the clicks."""
        if image.dim() == 3:
            image = image.unsqueeze(0)
        with torch.inference_mode(False):   # L-BFGS needs autograd: no inference tensors
            image = image.to(self.device, torch.float32)
            self.image = image.clone() if image.is_inference() else image
        self._reset_clicks()

    def reset(self):
        """Forget the clicks, keep the image."""
        self._reset_clicks()

    @property
    def num_clicks(self):
        return len(self.clicks)

    def _get_state(self):
        return (list(self.clicks), self.zoom.get_state() if self.zoom is not None else None, self.opt_data,
                self.zoom_roi, self.lbfgs_nfev)

    def snapshot(self):
        """Everything the next click, undo and redo depend on (tensors shared, not copied)."""
        return (self.image, self._get_state(), tuple(self.probs_history), tuple(self._states),
                tuple(self._redo))

    def restore(self, snap):
        """Return to a `snapshot()`; None forgets the image and the clicks."""
        if snap is None:
            self.image = None
            self.reset()
            return
        self.image, state, probs, states, redo = snap
        self._restore(state)
        self.probs_history, self._states, self._redo = list(probs), list(states), list(redo)

    def add_click(self, row, col, positive):
        if self.image is None:
            raise RuntimeError('FBRSPredictor.add_click before set_image')
        self._states.append(self._get_state())
        self.clicks.append(Click(row, col, bool(positive)))
        try:
            with torch.inference_mode(False):   # callers may run under inference_mode
                prob = self._predict()
        except BaseException:
            self._restore(self._states.pop())
            raise
        self.probs_history.append(prob)
        self._redo.clear()
        return prob

    def _restore(self, state):
        self.clicks, zoom_state, self.opt_data, self.zoom_roi, self.lbfgs_nfev = state
        if self.zoom is not None:
            self.zoom.set_state(zoom_state)

    def undo(self):
        """Remove the last click; returns the previous probability, or None when no click is left."""
        if not self._states:
            return None
        self._redo.append((self._get_state(), self.probs_history.pop()))
        self._restore(self._states.pop())
        return self.probs_history[-1] if self.probs_history else None

    def redo(self):
        """Put back the last undone click (no recomputation); returns its probability, or None
        when there is nothing to redo."""
        if not self._redo:
            return None
        state, prob = self._redo.pop()
        self._states.append(self._get_state())
        self._restore(state)
        self.probs_history.append(prob)
        return prob

    # -- prediction ------------------------------------------------------------------------------

    def _predict(self):
        image, clicks = self.image, self.clicks
        if self.zoom is not None:
            image, clicks = self.zoom.transform(image, clicks)
            self.zoom_roi = self.zoom.object_roi
        limited = None
        if self.max_size is not None and max(image.shape[2:]) > self.max_size:
            limited = tuple(image.shape[2:])
            roi = (0, limited[0] - 1, 0, limited[1] - 1)
            image = _resize_roi(image, roi, self.max_size)
            clicks = _map_clicks(clicks, roi, image.shape[2:])
        clicks_lists = [clicks]
        if self.with_flip:
            w = image.shape[3]
            image = torch.cat([image, torch.flip(image, dims=[3])], dim=0)
            clicks_lists.append([Click(c.row, w - c.col - 1, c.positive) for c in clicks])

        logits = self._get_logits(image, clicks_lists)
        if self.with_flip:
            logits = 0.5 * (logits[:1] + torch.flip(logits[1:], dims=[3]))
        prob = torch.sigmoid(logits)
        if limited is not None:
            prob = F.interpolate(prob, size=limited, mode='bilinear', align_corners=True)
        if self.zoom is not None:
            prob = self.zoom.inv_transform(prob)
        return prob

    def _points(self, clicks_lists):
        """(B, 2P, 2) float32 rounded (row, col) points + (B, 2P) validity, f-BRS `get_points_nd` layout."""
        limit = self.net_clicks_limit
        n_pos = [sum(c.positive for c in cl) for cl in clicks_lists]
        n_neg = [len(cl) - p for cl, p in zip(clicks_lists, n_pos)]
        num = max(n_pos + n_neg)
        if limit is not None:
            num = min(limit, num)
        num = max(1, num)
        pts, valid = [], []
        for cl in clicks_lists:
            cl = cl[:limit] if limit is not None else cl
            row_pts, row_valid = [], []
            for positive in (True, False):
                sel = [(c.row, c.col) for c in cl if c.positive == positive]
                row_pts += sel + [(-1, -1)] * (num - len(sel))
                row_valid += [True] * len(sel) + [False] * (num - len(sel))
            pts.append(row_pts)
            valid.append(row_valid)
        # The GUI's Cython maps take float32 points and round them half-to-even.
        pts = np.round(np.asarray(pts, dtype=np.float32))
        return torch.from_numpy(pts).to(self.device), torch.tensor(valid, device=self.device)

    def _click_masks(self, clicks_lists, shape, radius=1):
        pos = np.zeros((len(clicks_lists), 1) + tuple(shape), dtype=np.float32)
        neg = np.zeros_like(pos)
        for i, cl in enumerate(clicks_lists):
            for c in cl:
                r, col = int(round(c.row)), int(round(c.col))
                target = pos if c.positive else neg
                target[i, 0, max(0, r - radius):r + radius + 1, max(0, col - radius):col + radius + 1] = 1
        return torch.from_numpy(pos).to(self.device), torch.from_numpy(neg).to(self.device)

    def _get_logits(self, image, clicks_lists):
        net = self.net
        size = image.shape[2:]
        bs = image.shape[0] // 2 if self.with_flip else image.shape[0]
        nch = net.num_opt_channels
        points, valid = self._points(clicks_lists)
        pos_mask, neg_mask = self._click_masks(clicks_lists, size)
        num_clicks = len(clicks_lists[0])

        if self.opt_data is None or self.opt_data.shape[0] // (2 * nch) != bs:
            self.opt_data = np.zeros(bs * 2 * nch, dtype=np.float32)

        key = (self.zoom_roi, tuple(image.shape), points.cpu().numpy().tobytes(), valid.cpu().numpy().tobytes())
        if self._input_data is None or key != self._input_key:
            with torch.no_grad():
                coord = net.coord_features(image, points, valid)
                self._input_data = net.backbone_features(image, coord)
            self._input_key = key
        feats = self._input_data

        def logits_fn(scale, bias):
            scale = scale.view(bs, -1, 1, 1)
            bias = bias.view(bs, -1, 1, 1)
            if self.with_flip:
                scale = scale.repeat(2, 1, 1, 1)
                bias = bias.repeat(2, 1, 1, 1)
            return net.head_logits(feats * scale + bias, size)

        objective = _ScaleBiasObjective(logits_fn, pos_mask, neg_mask, self.prob_thresh, self.min_iou_diff,
                                        self.reg_weight, self.reg_bias_weight, self.device)
        if num_clicks > self.optimize_after_n_clicks:
            self.opt_data = fmin_l_bfgs_b(func=objective, x0=self.opt_data, **self.lbfgs_params)[0]
        self.lbfgs_nfev = objective.nfev
        if objective.best_logits is not None:
            return objective.best_logits
        with torch.no_grad():
            scale, bias, _ = objective.unpack(torch.from_numpy(self.opt_data).float().to(self.device))
            return logits_fn(scale, bias)
