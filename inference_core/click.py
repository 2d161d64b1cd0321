"""Click-to-mask for one (frame, object): f-BRS (official `saves/fbrs.pth`) or the interaction net.

    ctrl = ClickController(networks)            # or ClickController(click_model=fbrs, interaction=net)
    prob = ctrl.click(image, x, y, positive, prev_labels, obj_id, num_objects, frame=t)
    prob = ctrl.undo()                          # previous result, or None when no click is left
    prob = ctrl.redo()                          # the undone click back (no recomputation)
    ctrl.reset()                                # forget the clicks (another tool edited the frame)

`click(image, x, y, positive, prev_labels, obj_id, num_objects=None, frame=None) -> torch.Tensor`
    image        (1, 3, Hp, Wp) float: ImageNet-normalised frame, zero-padded with
                 `inference_core.padding.pad_divide_by` (the same input S2M gets).
    x, y         click position in pixels of the unpadded frame (column, row).
    positive     True: this is the object; False: this is not.
    prev_labels  (H, W) uint8 label map of the frame (unpadded) before this click; its size
                 defines the padding.
    obj_id       the object clicked for (1..num_objects).
    num_objects  objects on the frame (default: max(prev_labels, obj_id)).
    frame        optional frame index (a different frame, object or image starts a new sequence).
    returns      (1, 1, H, W) float32 on the CPU: the object's probability, > 0.5 = object.
                 f-BRS gives the binary mask (prob > 0.5); the interaction net its sigmoid.

Clicks accumulate while the (frame, object, image) stays the same; anything else starts a new
click sequence. Use `compose_click_probs` / `compose_click_labels` to merge the result into the
frame (MiVOS: the object's channel replaced by the binary mask, aggregate_sbg(hard=True)).

Backends:
  * 'fbrs' when `networks.click` (an f-BRS model) is loaded: f-BRS-B with zoom-in, flip TTA and
    L-BFGS (inference_core/fbrs_predictor.py), exactly as the MiVOS GUI.
  * 'interaction' otherwise: the clicks are drawn as disks (radius 5 px at 480p, scaled with the
    frame) into the positive / negative planes of the scribble net's 6-channel input
    [image, prev_labels == k, pos, neg]; prev is the mask when the click sequence started (as a
    MiVOS scribble interaction keeps its base mask while strokes accumulate). Works with the
    official S2M net and the bundled lite interaction net.
"""
import contextlib
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from inference_core.aggregate import aggregate_sbg
from inference_core.fbrs_predictor import FBRSPredictor
from inference_core.interaction import ImageFeatureCache, seeded_region
from inference_core.padding import pad_amount, pad_divide_by, unpad
from util.errors import UserError

CLICK_RADIUS_480P = 5


def click_radius(height, width):
    """Disk radius for a click on an (height, width) frame: 5 px at 480p, scaled with the short side."""
    return max(2, int(round(CLICK_RADIUS_480P * min(height, width) / 480)))


def click_maps(height, width, clicks, radius=None):
    """(2, H, W) float32 positive / negative disk planes for clicks [(x, y, positive), ...]."""
    radius = click_radius(height, width) if radius is None else radius
    planes = np.zeros((2, height, width), np.uint8)
    for x, y, positive in clicks:
        cv2.circle(planes[0 if positive else 1], (int(round(x)), int(round(y))), radius, 1, -1)
    return planes.astype(np.float32)


def compose_click_probs(prev_labels, obj_id, obj_prob, num_objects, seeds=None):
    """Merge a click result into the frame as MiVOS does: other objects keep their hard masks, the
    clicked object's channel becomes the binary mask (prob > 0.5), then aggregate_sbg(hard=True).

    Where the clicked object's mask overlaps another object's hard mask the clicked object wins
    (the latest intent; in MiVOS an exact tie resolved by the lower channel index). `seeds`
    (bool (H, W), e.g. the positive click disks) limits that: the object then takes other
    objects' pixels only in the connected parts of its mask that contain a seed, elsewhere it
    only gets background. Returns (K+1, 1, H, W) float32 with channel 0 = background.
    """
    labels = torch.as_tensor(np.asarray(prev_labels))
    mask = (torch.as_tensor(obj_prob).float().reshape(labels.shape) > 0.5).float()
    # 1 - 1e-3 keeps the others below the clicked object's clamped 1 - 1e-7 but far above the 0.5 bg.
    chans = torch.stack([(labels == j).float() * (1 - 1e-3) for j in range(1, num_objects + 1)], 0)
    if seeds is not None:
        # outside the seeded parts the clicked object sits just below the other objects
        won = torch.from_numpy(seeded_region(mask.numpy() > 0, seeds))
        mask = torch.where(won, mask, mask * (1 - 2e-3))
    chans[obj_id - 1] = mask
    return aggregate_sbg(chans[:, None], keep_bg=True, hard=True)


def compose_click_labels(prev_labels, obj_id, obj_prob, seeds=None):
    """Label-map form of `compose_click_probs`: the object takes its new mask (only background
    outside the seeded parts when `seeds` is given), loses the rest."""
    out = np.array(prev_labels, dtype=np.uint8, copy=True)
    mask = torch.as_tensor(obj_prob).float().reshape(out.shape).numpy() > 0.5
    if seeds is not None:
        mask &= seeded_region(mask, seeds) | (out == 0) | (out == obj_id)
    out[out == obj_id] = 0
    out[mask] = obj_id
    return out


def positive_seeds(height, width, clicks, radius=None):
    """Bool (H, W) disks of the positive clicks [(x, y, positive), ...]."""
    return click_maps(height, width, [c for c in clicks if c[2]], radius)[0] > 0


@dataclass(frozen=True)
class ClickSnapshot:
    """ClickController state at one moment (see ClickController.snapshot)."""
    key: object
    image: object
    base: object
    clicks: tuple
    results: tuple
    undone: tuple
    predictor: object

    @property
    def nbytes(self):
        return sum(r.numel() * r.element_size() for r in self.results)


class ClickController:
    """Click history of the current (frame, object) and the click-to-mask backend.

    networks: an `inference_core.networks.Networks` (uses `.click` if set, else `.interaction`);
    or pass `click_model` (f-BRS FBRSNet) / `interaction` (6-channel scribble net) directly.
    amp_dtype: optional autocast dtype for the interaction net on CUDA (f-BRS stays float32).
    fbrs_params: overrides for FBRSPredictor (defaults are the MiVOS GUI settings).
    """

    def __init__(self, networks=None, device=None, *, click_model=None, interaction=None, amp_dtype=None,
                 fbrs_params=None, features=None):
        if networks is not None:
            click_model = click_model if click_model is not None else getattr(networks, 'click', None)
            interaction = interaction if interaction is not None else getattr(networks, 'interaction', None)
            device = device if device is not None else getattr(networks, 'device', None)
        if click_model is None and interaction is None:
            raise UserError('clicks need the f-BRS model (saves/fbrs.pth) or an interaction network')
        net = click_model if click_model is not None else interaction
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.backend = 'fbrs' if click_model is not None else 'interaction'
        self.interaction = interaction
        self.predictor = FBRSPredictor(click_model, self.device, **(fbrs_params or {})) \
            if click_model is not None else None
        self.amp_dtype = amp_dtype if self.device.type == 'cuda' else None
        # interaction backend: the frame's backbone maps, kept across clicks (an
        # interaction.ImageFeatureCache, shared with the scribbles when given)
        self.features = features if features is not None else ImageFeatureCache()
        self.reset()

    # -- sequence state ------------------------------------------------------------------------

    def reset(self):
        """Forget the clicks; the next click starts a new sequence from the frame's labels."""
        self._key = None
        self._image = None
        self._base = None          # interaction backend: (H, W) bool object mask at sequence start
        self.clicks = []           # [(x, y, positive)] in unpadded frame pixels
        self._results = []
        self._undone = []          # [(click, result)] removed by undo(), last undone last
        if self.predictor is not None:
            self.predictor.image = None
            self.predictor.reset()

    @property
    def num_clicks(self):
        return len(self.clicks)

    def snapshot(self):
        """Everything the next click depends on, for the Session's undo history (restore()
        puts it back; nothing is recomputed). Tensors are shared, not copied."""
        pred = self.predictor.snapshot() if self.predictor is not None else None
        return ClickSnapshot(self._key, self._image, self._base, tuple(self.clicks),
                             tuple(self._results), tuple(self._undone), pred)

    def restore(self, snap):
        """Return to a `snapshot()`."""
        self._key, self._image, self._base = snap.key, snap.image, snap.base
        self.clicks, self._results, self._undone = list(snap.clicks), list(snap.results), \
            list(snap.undone)
        if self.predictor is not None:
            self.predictor.restore(snap.predictor)

    def _same_sequence(self, key, image):
        if self._key != key:
            return False
        return image is self._image or (image.shape == self._image.shape and torch.equal(image, self._image))

    def _start(self, key, image, prev_labels, obj_id):
        self.reset()
        self._key, self._image = key, image
        if self.predictor is not None:
            self.predictor.set_image(image)
        else:
            self._base = np.asarray(prev_labels) == obj_id

    # -- API -----------------------------------------------------------------------------------

    def click(self, *args, **kwargs):
        """`click(image, x, y, positive, prev_labels, obj_id, num_objects=None, frame=None)`, see the
        module docstring. Returns the (1, 1, H, W) float32 CPU probability of obj_id.

        Also accepts the Session's form `click(frame, obj_id, x, y, positive, *, image, labels,
        pad=None, rgb=None)` (told apart by an integer first argument).
        """
        if args and isinstance(args[0], (int, np.integer)):
            return self._click_frame_form(*args, **kwargs)
        return self._click(*args, **kwargs)

    def _click_frame_form(self, frame, obj_id, x, y, positive=True, *, image, labels, pad=None, rgb=None):
        del pad, rgb    # the pad follows from the sizes; the RGB frame is not needed
        return self._click(image, x, y, positive, labels, obj_id, frame=frame)

    def _click(self, image, x, y, positive, prev_labels, obj_id, num_objects=None, frame=None):
        labels = np.asarray(prev_labels)
        if labels.ndim != 2:
            raise UserError(f'prev_labels must be an (H, W) label map, got shape {labels.shape}')
        h, w = labels.shape
        if image.dim() == 3:
            image = image[None]
        pad = pad_amount(h, w)
        if tuple(image.shape[-2:]) != (h + pad[2] + pad[3], w + pad[0] + pad[1]):
            raise ValueError(f'image {tuple(image.shape[-2:])} is not the padded size of a {h}x{w} label map')
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f'click ({x:g}, {y:g}) is outside the {w}x{h} frame')
        obj_id = int(obj_id)
        num_objects = int(num_objects) if num_objects is not None else max(int(labels.max(initial=0)), obj_id)
        if not 1 <= obj_id <= num_objects:
            raise UserError(f'object {obj_id} does not exist (objects 1..{num_objects})')

        key = (frame, obj_id, (h, w))
        if not self._same_sequence(key, image):
            self._start(key, image, labels, obj_id)
        self.clicks.append((float(x), float(y), bool(positive)))
        try:
            if self.predictor is not None:
                prob = self.predictor.add_click(y + pad[2], x + pad[0], bool(positive))
                out = (prob > self.predictor.prob_thresh).float()
            else:
                out = self._interaction_prob(image, pad)
        except BaseException:
            self.clicks.pop()
            raise
        out = unpad(out, pad).float().cpu()
        self._results.append(out)
        self._undone.clear()      # (the predictor drops its own redo list on add_click)
        return out

    def undo(self):
        """Remove the last click; returns the previous result (1,1,H,W), or None when none is left."""
        if not self.clicks:
            return None
        self._undone.append((self.clicks.pop(), self._results.pop()))
        if self.predictor is not None:
            self.predictor.undo()
        return self._results[-1] if self._results else None

    def redo(self):
        """Put back the last click removed by `undo` (its result is kept, nothing is recomputed);
        returns that result (1,1,H,W), or None when there is nothing to redo. A new click or
        `reset` drops the clicks that could be redone."""
        if not self._undone:
            return None
        click, out = self._undone.pop()
        self.clicks.append(click)
        self._results.append(out)
        if self.predictor is not None:
            self.predictor.redo()
        return out

    @property
    def result(self):
        """The (1,1,H,W) result of the last click in effect, or None."""
        return self._results[-1] if self._results else None

    @property
    def num_redo(self):
        """How many undone clicks `redo` can put back."""
        return len(self._undone)

    @property
    def last_prob(self):
        """The f-BRS soft probability of the last click (1,1,Hp,Wp, padded), or the last result."""
        if self.predictor is not None and self.predictor.probs_history:
            return self.predictor.probs_history[-1]
        return self._results[-1] if self._results else None

    # -- interaction-net backend -----------------------------------------------------------------

    @torch.inference_mode()
    def _interaction_prob(self, image, pad):
        h, w = self._base.shape
        planes = np.concatenate([self._base[None].astype(np.float32), click_maps(h, w, self.clicks)], 0)
        planes, _ = pad_divide_by(torch.from_numpy(planes)[None].to(self.device), 16)
        image = image.to(self.device, torch.float32)
        ctx = torch.autocast('cuda', dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()
        with ctx:
            if hasattr(self.interaction, 'segment'):      # the frame's maps kept across clicks
                logits = self.interaction.segment(image, planes,
                                                  self.features.get(self.interaction, image))
            else:
                logits = self.interaction(torch.cat([image, planes], 1))
        return torch.sigmoid(logits.float())
