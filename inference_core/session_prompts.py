"""The prompts of a Session in progress: strokes, clicks, boxes and local strokes turned into
label maps, with the state each one continues from.

A Prompts object owns the scribble sequence (strokes accumulated on one frame), the click
sequence (the ClickController and its ClickSeq), the soft result of the last prompt of each
frame (what `propagate` commits while the labels still match it), the interaction networks'
cached image and the one-frame session of local refinement. It reads the store; writing the
labels, the undo steps and the pending frames are the Session's.
"""
import numpy as np
import torch

from inference_core.box_prompt import box_probability
from inference_core.interaction import NO_SCRIBBLE, ScribbleController, keep_unscribbled
from inference_core.local_refine import LocalRefiner
from inference_core.padding import pad_divide_by, unpad
from inference_core.scribble_zoom import focus_box, zoomed_predict
from inference_core.session_state import ClickSeq, ScribbleSeq
from util.errors import UserError
from util.tensor_util import argmax0, normalize_frames


class Prompts:
    """store: the Session's FrameStore; networks: its Networks (interaction / click nets);
    zoom: corrective strokes on small objects are segmented on an enlarged crop
    (inference_core/scribble_zoom.py); local_session(frames, num_objects): the one-frame
    Session that local refinement runs in."""

    def __init__(self, store, networks, device, amp_dtype, zoom, local_session):
        self.store = store
        self.networks = networks
        self.device = device
        self.amp_dtype = amp_dtype
        self.zoom = bool(zoom)
        self.scribbler = ScribbleController(networks.interaction, device, amp_dtype)
        self.clicker = None          # ClickController, made at the first click
        self.click_seq = None        # ClickSeq of the clicks in the controller, or None
        self.scribbles = None        # ScribbleSeq in progress
        self.soft = {}               # t -> (prob (K+1,1,H,W) float32, store revision it matches)
        self.local = LocalRefiner(local_session)
        self._image_cache = (None, None)

    # ------------------------------------------------------------------ prompts
    def scribble(self, t, obj_id, pos, neg, zoom=None):
        """(labels, prob, ScribbleSeq) after strokes (bool masks) on frame t. Strokes accumulate
        on the frame until its labels are changed by something else; call `scribbled` once the
        labels are written."""
        store = self.store
        cur = store.get_mask(t)
        k = store.num_objects
        st = self.scribbles
        if (st is None or st.frame != t or st.num_objects != k
                or st.revision != store.revision(t)):
            st = ScribbleSeq(t, cur, k)
        st.scribbles[neg] = 0
        st.scribbles[pos] = obj_id
        box = None
        if self.zoom if zoom is None else zoom:
            # an object missing here but present nearby was lost: zoom on it too
            nearby = (st.nearby_size(store, obj_id)
                      if not (st.prev_labels == obj_id).any() else None)
            box = focus_box(st.prev_labels, st.scribbles, obj_id, nearby_size=nearby)
        if box is not None:
            prob = zoomed_predict(self.scribbler, store.frame(t), st.prev_labels, st.scribbles,
                                  k, obj_id, box)
        else:
            image, pad = self.image(t)
            prev = pad_divide_by(torch.from_numpy(st.prev_labels)[None, None], 16)[0][0, 0]
            # the scribbled object takes other objects' pixels where its strokes point
            # (latest intent wins)
            prob = self.scribbler.predict(image, prev.numpy(), st.scribbles, k, claim_for=obj_id)
            prob = unpad(prob, pad).float().cpu()
        keep_unscribbled(prob, st.prev_labels, st.scribbles)
        return argmax0(prob)[0].to(torch.uint8).numpy(), prob, st

    def scribbled(self, seq):
        """The labels of `seq`'s strokes are written: the next strokes on the frame continue it."""
        seq.revision = self.store.revision(seq.frame)
        self.scribbles = seq

    def region(self, t, obj_id, box, positive, negative, brush):
        """The frame's new labels after strokes in `box` (local refinement); call `written_region`
        once they are written."""
        store = self.store
        return self.local.scribble(store.frame(t), store.get_mask(t), store.revision(t), box,
                                   obj_id, store.num_objects, positive or [], negative or [],
                                   brush)

    def written_region(self, t):
        self.local.written(self.store.revision(t))

    def click(self, t, obj_id, x, y, positive):
        """(labels, prob, ClickSeq) after a click; clicks on the same frame and object continue
        the sequence while its labels are the last click's. Call `clicked` once they are
        written."""
        ctrl = self.controller()
        base = self.store.get_mask(t)
        k = self.store.num_objects
        st = self.click_seq
        if (st is None or st.key != (t, obj_id, k) or ctrl.num_clicks == 0
                or st.revision != self.store.revision(t)):
            ctrl.reset()
            self.click_seq = None
            st = ClickSeq((t, obj_id, k), base)
        image, _ = self.image(t)
        obj_prob = ctrl.click(image, x, y, positive, prev_labels=st.base, obj_id=obj_id,
                              num_objects=k, frame=t)
        prob = self.click_probs(st, ctrl, obj_prob)
        if not any(c[2] for c in ctrl.clicks):
            # negative clicks only: the object may shrink where they point, not grow (as for
            # strokes; the click disks are the background marks)
            from inference_core.click import click_maps
            marks = np.full(st.base.shape, NO_SCRIBBLE, np.uint8)
            marks[click_maps(*st.base.shape, ctrl.clicks)[1] > 0] = 0
            keep_unscribbled(prob, st.base, marks)
        self.click_seq = st
        return argmax0(prob)[0].to(torch.uint8).numpy(), prob, st

    def clicked(self, seq):
        seq.revision = self.store.revision(seq.key[0])

    def box(self, t, obj_id, box):
        """(labels, prob) of a box prompt: obj_id's mask on frame t becomes what the box holds."""
        from inference_core.click import compose_click_probs
        base = self.store.get_mask(t)
        base[base == obj_id] = 0
        obj_prob, seeds = box_probability(self.scribbler, self.store.frame(t), box)
        prob = compose_click_probs(base, obj_id, obj_prob, self.store.num_objects, seeds=seeds)
        return argmax0(prob)[0].to(torch.uint8).numpy(), prob

    def prepare(self, t):
        """The bundled interaction net's image maps of frame t, ahead of the first prompt."""
        image, _ = self.image(t)
        self.scribbler.prepare(image)

    # ------------------------------------------------------------------ bookkeeping
    def applied(self, t, soft, keep_scribbles, keep_clicks):
        """Frame t's labels were replaced (by a prompt whose soft result is `soft`, or None):
        sequences that no longer continue end."""
        if soft is not None:
            self.soft[t] = (soft, self.store.revision(t))
        else:
            self.soft.pop(t, None)
        if not keep_scribbles:
            self.scribbles = None
        if not keep_clicks:
            self.reset_clicks()

    def valid_soft(self, t):
        """The soft result of the last scribble/click on frame t while its labels are still the
        ones it produced (same revision, same object count), else None."""
        soft = self.soft.get(t)
        if soft is not None and soft[1] == self.store.revision(t) \
                and soft[0].shape[0] == self.store.num_objects + 1:
            return soft[0]
        return None

    def mask_for(self, t):
        """The interaction mask committed for frame t: the soft result of the last scribble/click
        when the labels still match it (MiVOS passes that), else the label map."""
        soft = self.valid_soft(t)
        return soft if soft is not None else self.store.get_mask(t)

    def end(self, frame=None):
        """End the scribble / click sequence on `frame` (None: any)."""
        if frame is None or (self.scribbles is not None and self.scribbles.frame == frame):
            self.scribbles = None
        if frame is None or (self.click_seq is not None and self.click_seq.key[0] == frame):
            self.reset_clicks()

    def reset_clicks(self):
        self.click_seq = None
        if self.clicker is not None:
            self.clicker.reset()

    def active_clicks(self):
        cs, ctrl = self.click_seq, self.clicker
        if cs is None or ctrl is None or not ctrl.num_clicks:
            return None
        return cs.key[0], cs.key[1], list(ctrl.clicks)

    def click_state(self):
        """(ClickSeq, controller snapshot) of the click sequence in effect, or None: what an
        undo step keeps."""
        cs, ctrl = self.click_seq, self.clicker
        return (cs, ctrl.snapshot()) if cs is not None and ctrl is not None else None

    def restore_clicks(self, saved):
        """After undo/redo: the click controller returns to the sequence in effect in that state
        (its own snapshot, from the one history), so the next click continues it."""
        if saved is None or saved[0].key[2] != self.store.num_objects:
            self.reset_clicks()
            return
        seq, snap = saved
        ctrl = self.controller()
        ctrl.restore(snap)
        self.click_seq = seq
        t = seq.key[0]
        seq.revision = self.store.revision(t)
        if ctrl.num_clicks and ctrl.result is not None:
            # the soft mask propagation uses: the labels now are the ones this click made
            self.soft[t] = (self.click_probs(seq, ctrl, ctrl.result), seq.revision)

    def release(self):
        """Drop the interaction net's cached image maps (shared with the click controller)."""
        self.scribbler.clear_cache()

    # ------------------------------------------------------------------ internals
    def image(self, t):
        """Normalised padded frame (1, 3, Hp, Wp) on the device, and the pad tuple."""
        key, val = self._image_cache
        if key != t:
            x, pad = pad_divide_by(normalize_frames(np.array(self.store.frame(t))), 16)
            val = (x.to(self.device), pad)
            self._image_cache = (t, val)
        return val

    def click_probs(self, seq, ctrl, obj_prob):
        """(K+1, 1, H, W) frame probability for a click result. MiVOS: the object's channel
        becomes the click mask, the other objects keep their hard masks from before the click
        sequence, aggregate_sbg(hard=True); the clicked object takes other objects' pixels only
        in the parts of its mask that contain a positive click (the latest intent wins there;
        a far-away false positive of the network does not eat another object)."""
        from inference_core.click import compose_click_probs, positive_seeds
        _t, obj_id, k = seq.key
        seeds = positive_seeds(self.store.height, self.store.width, ctrl.clicks)
        return compose_click_probs(seq.base, obj_id, obj_prob, k, seeds=seeds)

    def controller(self):
        if self.clicker is None:
            try:
                from inference_core.click import ClickController
            except ImportError:
                raise UserError('click interaction is not available in this installation') from None
            self.clicker = ClickController(self.networks, self.device, amp_dtype=self.amp_dtype,
                                           features=self.scribbler.features)
        return self.clicker
