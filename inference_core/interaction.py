"""Per-frame interactions: scribble-to-mask (MiVOS S2M GUI path) and free-draw helpers.

ScribbleController follows the MiVOS GUI (README §4.6): for each object k the network input is
[image(3), prev_hard_mask == k, positive = scribble == k, negative = scribble not in (k, 255)]
(6 channels, padded to a multiple of 16), the output goes through a sigmoid, and the GUI
aggregates the K sigmoids with aggregate_wbg(hard=True). The official S2M net and the bundled
interaction net share this input contract.

Scribble maps are uint8 (H, W) at the unpadded size: 255 = no scribble, 0 = background
scribble, k = scribble for object k.
"""
import contextlib

import cv2
import numpy as np
import torch

from inference_core.aggregate import aggregate_wbg
from inference_core.padding import pad_amount, pad_divide_by, unpad
from util.errors import UserError
from util.strokes import stroke_mask

NO_SCRIBBLE = 255


class ScribbleController:
    """Runs the scribble net for every object of a frame.

    net: forward(x (1, 6, H, W)) -> logits (1, 1, H, W), and optionally segment(image (1, 3, H, W),
    guidance (K, 3, H, W)) -> logits (K, 1, H, W) for all objects at once. `amp_dtype`: optional
    autocast dtype (CUDA only).
    """

    def __init__(self, net, device=None, amp_dtype=None):
        self.net = net
        if device is None and net is not None:
            device = next(net.parameters()).device
        self.device = torch.device(device or 'cpu')
        self.amp_dtype = amp_dtype if self.device.type == 'cuda' else None
        # the next strokes on the same frame reuse its backbone maps (a person draws several
        # strokes per frame)
        self.features = ImageFeatureCache()

    def guidance(self, prev_labels, scr_mask, num_objects, objects=None):
        """The (K, 3, Hp, Wp) guidance maps [prev == k, positive, negative] (object order 1..K,
        or the ids in `objects`).

        prev_labels: padded (Hp, Wp) or (1, Hp, Wp) uint8 hard labels; scr_mask: unpadded (H, W)
        uint8 scribble map.
        """
        prev = torch.as_tensor(np.asarray(prev_labels)).to(self.device)
        if prev.dim() == 3:
            prev = prev[0]
        scr = np.asarray(scr_mask)
        out = []
        for k in (range(1, num_objects + 1) if objects is None else objects):
            pos = (scr == k)
            neg = (scr != k) & (scr != NO_SCRIBBLE)
            rs = torch.from_numpy(np.stack([pos, neg], 0).astype(np.float32))[None].to(self.device)
            rs, _ = pad_divide_by(rs, 16)
            out.append(torch.cat([(prev == k).float()[None, None], rs], 1))
        return torch.cat(out, 0)

    def net_inputs(self, image, prev_labels, scr_mask, num_objects):
        """The (K, 6, Hp, Wp) network inputs [image, guidance] (object order 1..K); image:
        (1, 3, Hp, Wp) normalised padded frame, the rest as for `guidance`."""
        g = self.guidance(prev_labels, scr_mask, num_objects)
        image = torch.as_tensor(image).to(self.device)
        return torch.cat([image.expand(g.shape[0], -1, -1, -1), g], 1)

    def clear_cache(self):
        self.features.clear()

    def _autocast(self):
        return torch.autocast('cuda', dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()

    @torch.inference_mode()
    def prepare(self, image):
        """Compute the backbone maps of `image` ahead of the first stroke (nets that read the
        image apart from the strokes; others: nothing to do)."""
        if self.net is not None and hasattr(self.net, 'segment'):
            with self._autocast():
                self.features.get(self.net, torch.as_tensor(image).to(self.device))

    @torch.inference_mode()
    def interact(self, image, prev_labels, scr_mask, num_objects, shorts=None):
        """Per-object sigmoid probabilities (K, 1, Hp, Wp) (MiVOS S2MController.interact).
        The bundled net's backbone maps of the image are kept for the next call on the same
        image (the same frame, or the same zoomed crop); `shorts`: the bundled net runs at these
        short sides instead of its configured ones (the official net ignores it)."""
        if self.net is None:
            raise UserError('no scribble network is loaded')
        with self._autocast():
            if hasattr(self.net, 'segment'):
                # the bundled net reads the image apart from the guidance: one backbone pass
                # for all objects of the frame, kept for the next strokes
                image = torch.as_tensor(image).to(self.device)
                run = objects_stroked_or_touched(prev_labels, scr_mask, num_objects)
                # an object that no stroke is for and whose mask no stroke touches keeps its
                # mask exactly (keep_unscribbled): it stands in with that mask, and the network
                # runs only for the others (half the time of a scribble on a two-object frame)
                prev = torch.as_tensor(np.asarray(prev_labels)).to(self.device).reshape(1, 1, *image.shape[-2:])
                ids = torch.arange(1, num_objects + 1, device=self.device).view(-1, 1, 1, 1)
                sig = (prev == ids).float()
                if run:
                    g = self.guidance(prev_labels, scr_mask, num_objects, objects=run)
                    feats = self.features.get(self.net, image, shorts)
                    sig[[k - 1 for k in run]] = torch.sigmoid(self.net.segment(image, g, feats).float())
                return sig
            x = self.net_inputs(image, prev_labels, scr_mask, num_objects)
            # one object at a time, like the reference
            return torch.cat([torch.sigmoid(self.net(x[k:k + 1]).float())
                              for k in range(num_objects)], 0)

    def predict(self, image, prev_labels, scr_mask, num_objects, claim_for=None):
        """Probabilities with background (K+1, 1, Hp, Wp) as the GUI passes them on.

        claim_for: an object id whose positive strokes express the latest intent: where its
        network output is > 0.5, in the connected parts that its strokes touch, it takes the
        pixels from the other objects (plain MiVOS lets the larger sigmoid win there, so an
        object scribbled inside another object's mask mostly stayed the other object)."""
        sig = self.interact(image, prev_labels, scr_mask, num_objects)
        prob = aggregate_wbg(sig, keep_bg=True, hard=True)
        if claim_for:
            k = int(claim_for)
            seeds = torch.from_numpy((np.asarray(scr_mask) == k).astype(np.float32))[None, None]
            seeds = pad_divide_by(seeds, 16)[0][0, 0].numpy() > 0      # padded like the output
            region = seeded_region((sig[k - 1, 0] > 0.5).cpu().numpy(), seeds)
            claim_pixels(prob, k, region)
        return prob


def objects_stroked_or_touched(prev_labels, scr_mask, num_objects):
    """The object ids (1..K, ascending) a stroke can change: those with a positive stroke in
    `scr_mask` and those whose mask in `prev_labels` a stroke (of any kind) touches.

    prev_labels: (Hp, Wp) or (1, Hp, Wp) labels padded as pad_divide_by pads scr_mask (H, W)."""
    scr = np.asarray(scr_mask)
    prev = np.asarray(prev_labels)
    prev = unpad(prev[0] if prev.ndim == 3 else prev, pad_amount(*scr.shape))
    marks = scr != NO_SCRIBBLE
    # histograms: ~3x faster than np.unique on a 480p map
    stroked = np.bincount(scr[marks], minlength=256)
    touched = np.bincount(prev[marks].astype(np.int64), minlength=256)
    return [k for k in range(1, num_objects + 1) if stroked[k] or touched[k]]


class ImageFeatureCache:
    """The interaction net's backbone maps of the last image it read (nets with
    `image_features`: the bundled one reads the image apart from the strokes), reused while the
    net and the image stay the same. The image is compared by its pixels (~1 ms at 480p, against
    30-60 ms of backbone), so no caller has to name frames. Shared by the scribble and the click
    controllers of a Session, and filled ahead of time by Session.prepare_interaction."""

    def __init__(self):
        self._entry = None        # (net, image, shorts, features)

    def get(self, net, image, shorts=None):
        """The maps of `image` (1,3,H,W) for `net` (computed now unless kept; `shorts`: at these
        short sides, see LiteInteractionNet.image_features), or None when the net reads the
        image together with the strokes."""
        if not hasattr(net, 'image_features'):
            return None
        e = self._entry
        if e is None or e[0] is not net or e[2] != shorts or not _same_image(e[1], image):
            self._entry = None                 # drop the old maps before computing new ones
            e = self._entry = (net, image, shorts, net.image_features(image, shorts))
        return e[3]

    def clear(self):
        self._entry = None


def _same_image(a, b):
    return a is b or (a.shape == b.shape and a.device == b.device and torch.equal(a, b))


def finite_mask(mask):
    """`mask` (an array) unchanged, or UserError when it holds NaN / infinity (NaN is "true" to
    astype(bool): a NaN mask would paint the whole frame) or no numbers at all."""
    mask = np.asarray(mask)
    if mask.dtype.kind not in 'biuf':
        raise UserError(f'mask must hold booleans or numbers, got {mask.dtype}')
    if mask.dtype.kind == 'f' and not np.isfinite(mask).all():
        raise UserError('mask values must be finite numbers (got NaN or infinity)')
    return mask


def as_region(height, width, region, brush=3):
    """A bool mask from either a bool/0-1 array of the frame size or polylines + brush width."""
    if region is None:
        return np.zeros((height, width), bool)
    if isinstance(region, np.ndarray) and region.ndim == 2 and region.shape != (1, 2) \
            and not (region.shape[1] == 2 and region.dtype.kind == 'f'):
        if region.shape != (height, width):
            raise UserError(f'mask is {region.shape[1]}x{region.shape[0]}, the frame is '
                            f'{width}x{height}')
        return finite_mask(region).astype(bool)
    return stroke_mask(height, width, region, brush)


def paint_labels(labels, obj_id, region, erase=False):
    """Free brush on a label map: paint `region` with obj_id, or with erase=True clear the
    pixels of obj_id inside it (obj_id 0/None erases every object there). Returns a new map."""
    out = np.array(labels, dtype=np.uint8, copy=True)
    region = np.asarray(region, bool)
    if erase:
        if obj_id:
            out[region & (out == obj_id)] = 0
        else:
            out[region] = 0
    else:
        out[region] = obj_id
    return out


def set_object_region(labels, obj_id, region):
    """Replace object obj_id's mask by `region` (other objects under it are overwritten)."""
    out = np.array(labels, dtype=np.uint8, copy=True)
    out[out == obj_id] = 0
    out[np.asarray(region, bool)] = obj_id
    return out


def seeded_region(mask, seeds):
    """The pixels of `mask` in its 8-connected components that contain a `seeds` pixel (bool
    (H, W)). Used to let an interacted object take other objects' pixels only where the person
    pointed (clicks / positive strokes), not in far-away false positives of the network."""
    mask = np.asarray(mask, bool)
    seeds = np.asarray(seeds, bool) & mask
    if not seeds.any():
        return np.zeros_like(mask)
    n, cc = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(cc[seeds])] = True
    keep[0] = False
    return keep[cc]


def claim_pixels(prob, obj_id, region):
    """Give `region` (bool (H, W)) to obj_id in a (K+1, 1, H, W) probability (one-hot there):
    the interacted object wins over the others where the person pointed. In place; returns it."""
    region = torch.from_numpy(np.asarray(region, bool)).to(prob.device)
    if region.any():
        prob[:, 0, region] = 0
        prob[obj_id, 0, region] = 1
    return prob


def keep_unscribbled(prob, prev_labels, scribbles):
    """Objects without a positive stroke in `scribbles` may shrink but not grow, and only where
    a stroke touches them: such an object keeps its previous pixels in every part of its mask
    (8-connected component) that no stroke touches, and where it would win a pixel it did not
    hold, its probability there goes to the pixel's previous label. A background stroke on a
    false positive asks for less of that blob only; the network alone guarantees neither (a
    background stroke through a false blob grew it on a frame without the object, and one on
    a far-away false blob ate into the object).

    prob: (K+1, 1, H, W) probabilities with background; prev_labels, scribbles: (H, W) uint8
    at the same size (scribbles as for ScribbleController: 255 none, 0 background, k object k).
    In place; returns prob."""
    k_all = prob.shape[0] - 1
    scribbles = np.asarray(scribbles)
    prev_labels = np.asarray(prev_labels)
    # which labels have a stroke: a histogram is ~3x faster than np.unique on a 480p map, and
    # this runs on every stroke
    stroked = np.bincount(scribbles.ravel(), minlength=256) > 0
    fixed = [k for k in range(1, k_all + 1) if not stroked[k]]
    if not fixed:
        return prob
    marks = scribbles != NO_SCRIBBLE
    prev = torch.from_numpy(prev_labels.astype(np.int64)).to(prob.device)
    prev = prev.masked_fill(prev > k_all, 0)[None, None]          # (1, 1, H, W)
    for k in fixed:
        moved = prob[k:k + 1] * (prev != k)
        prob[k:k + 1] -= moved
        prob.scatter_add_(0, prev, moved)
        old = prev_labels == k
        untouched = old & ~seeded_region(old, marks)
        if untouched.any():
            claim_pixels(prob, k, untouched)
    return prob
