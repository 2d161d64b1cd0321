"""PropagationEngine: MiVOS (STCN branch) InferenceCore behaviour over a FrameStore.

What it reproduces (see ../shared/reference/mivos/README.md §4.7):
  * frames are ImageNet-normalised and zero-padded to a multiple of 16 (after normalisation);
  * the stored probability of a never-touched frame is background 1e-7, objects 0;
  * `interact(t, mask)`: mask diff = mask - stored prob (incl. background, taken before the
    overwrite), the mask becomes the stored prob of t, t's key/value go to the permanent memory,
    then a forward and a backward pass;
  * a pass stops before the nearest other interacted frame (or at the clip end); memory = the
    permanent entries + a temporary frame every `mem_freq` frames (never the last frame of the
    pass), values encoded from the UNFUSED result; when the pass is bounded by another
    interacted frame tc the result is fused with the stored prob using the attention of the
    latest mask diff and dist = (|tc-ti|, |tr-ti|) / |tc-tr|.

Beyond MiVOS: frames are read from the store one at a time (no float copy of the video); key
features live in a bounded LRU; soft probabilities live in a ProbabilityCache (compact dtype,
byte budget, fallback to the one-hot of the store's labels); the memory of a pass is bounded by
default (`working_frames` recent frames + a long-term memory of pooled prototypes of the frames
evicted from it, `long_term_frames`; see MemoryBank), so a 10,000-frame video costs the same per
frame at its end as at its start; `working_frames=None` is MiVOS's unbounded memory, and
`max_memory_frames` is the expert cap on all frames; objects may be added (channels are padded) or removed between interactions;
AMP on CUDA; progress and cancellation between frames (each frame's labels are written
atomically, so a cancelled run leaves every frame either old or new).
"""
import contextlib
import threading

import numpy as np
import torch

from inference_core.aggregate import aggregate_wbg
from inference_core.confidence import frame_confidence
from inference_core.memory_bank import (DEFAULT_LONG_TERM_FRAMES, DEFAULT_WORKING_FRAMES, FeatureCache,
                                        MemoryBank, ProbabilityCache)
from inference_core.masks import mask_to_prob, onehot_padded, zero_pad_border
from inference_core.padding import pad_amount, pad_divide_by, unpad
from inference_core import region_gate, small_object_zoom
from util.errors import UserError
from util.device import amp_dtype
from util.tensor_util import argmax0, normalize_frames

DIRECTIONS = ('both', 'forward', 'backward')
# Budgets of the two per-frame caches. The feature cache only saves re-encoding on a later pass
# (the current pass needs the last frame or two), and one official 480p frame's features take
# ~48 MB (the bundled ones ~2.7 MB): 384 MiB keeps ~8 official / ~140 bundled frames and keeps the
# official kind's long-video peak RSS under 4 GB.
DEFAULT_FEATURE_CACHE_BYTES = 384 << 20
DEFAULT_PROB_CACHE_BYTES = 512 << 20


def drain(gen):
    """Run a generator to its end; returns its value (StopIteration.value)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


class PropagationEngine:
    """Propagates interacted masks through the video held by a FrameStore.

    networks: an object with `.propagation`, `.fusion` (nn.Modules, see docs/ARCHITECTURE.md)
    and optionally `.device`. `prob_dtype`/`prob_cache_bytes` configure the ProbabilityCache
    (use 'float32' and None for bit-level MiVOS behaviour), `feature_cache_bytes` the key
    feature LRU. `frame_loader(t) -> (1,3,H,W) float32` optionally replaces reading +
    normalising store.frame(t) (e.g. to feed pre-normalised reference images).
    """

    def __init__(self, networks, store, mem_freq=5, top_k=20, max_memory_frames=None, amp=False,
                 device=None, prob_dtype='uint8', prob_cache_bytes=DEFAULT_PROB_CACHE_BYTES,
                 feature_cache_bytes=DEFAULT_FEATURE_CACHE_BYTES, frame_loader=None,
                 working_frames=DEFAULT_WORKING_FRAMES, long_term_frames=DEFAULT_LONG_TERM_FRAMES,
                 keep_confident=True, zoom_small_objects=True, gate_regions=True):
        if int(mem_freq) < 1:
            raise UserError(f'mem_freq must be >= 1, got {mem_freq}')
        if max_memory_frames is not None and int(max_memory_frames) < 1:
            raise UserError(f'max_memory_frames must be >= 1, got {max_memory_frames}')
        self.store = store
        self.prop_net = networks.propagation
        self.fuse_net = getattr(networks, 'fusion', None)
        if device is None:
            device = getattr(networks, 'device', None)
            if device is None:
                device = next(self.prop_net.parameters()).device
        self.device = torch.device(device)
        self.mem_freq = int(mem_freq)
        self.top_k = int(top_k)
        self.amp_dtype = amp_dtype(amp, self.device)
        self._frame_loader = frame_loader

        self.h, self.w = store.height, store.width
        self.pad = pad_amount(self.h, self.w, 16)
        self.nh = self.h + self.pad[2] + self.pad[3]
        self.nw = self.w + self.pad[0] + self.pad[1]

        if working_frames is not None and int(working_frames) < 1:
            raise UserError(f'working_frames must be >= 1 (or None: unbounded), got {working_frames}')
        if long_term_frames is None or int(long_term_frames) < 0:
            raise UserError(f'long_term_frames must be >= 0, got {long_term_frames}')
        self.memory = MemoryBank(max_memory_frames, working_frames, long_term_frames)
        self.probs = ProbabilityCache(prob_dtype, prob_cache_bytes)
        self.features = FeatureCache(feature_cache_bytes)
        self.interacted = frozenset()    # replaced, never mutated: safe to read from other threads
        self.num_objects = store.num_objects
        self.before_write = None         # optional fn(t) called before frame t's labels are written
        self.last_mask_diff = None
        self.confidence = {}             # frame -> how sure the pass that wrote it was (confidence.py)
        self.source = {}                 # frame -> the interacted frame whose pass wrote it
        # A new pass that is less sure of a frame than the result already there is blended with
        # it instead of overwriting it (False: MiVOS, the new pass always wins).
        self.keep_confident = bool(keep_confident)
        # small objects also get an object-centred zoomed pass (small_object_zoom.py; bundled
        # networks only: the official ones match at full resolution)
        self.zoom_small_objects = bool(zoom_small_objects)
        # each object's result is kept near its previous-frame mask (region_gate.py; networks
        # that take the previous mask, i.e. the bundled ones)
        self.gate_regions = bool(gate_regions)
        self.peak_memory_frames = 0
        self._lock = threading.RLock()
        self._set_top_k()

    # ------------------------------------------------------------------ public API
    @property
    def max_memory_frames(self):
        return self.memory.max_frames

    @property
    def memory_size(self):
        """Number of frames in the memory of the pass in progress (0 between passes)."""
        return self.memory.size

    def interact(self, frame_idx, mask, direction='both', end=None, progress=None,
                 should_cancel=None):
        """Commit `mask` at `frame_idx` and propagate from it.

        mask: probabilities with background (K+1, 1, H, W) (tensor or array, H, W = store size),
        or a label map (H, W) of ids 0..K. `direction`: 'both' | 'forward' | 'backward'.
        `end`: optional last frame to process; it bounds the pass on its side of frame_idx (a
        pass still stops before the nearest other interacted frame). Labels are written into the
        store frame by frame. Returns True when finished, False when cancelled.
        """
        return drain(self.passes(frame_idx, mask, direction, end, progress, should_cancel))

    def passes(self, frame_idx, mask, direction='both', end=None, progress=None,
               should_cancel=None):
        """`interact` as a generator: commits the mask, then yields each frame index once its
        labels are written; its value when exhausted is True, or False when cancelled. Closed
        early, it stops between frames as a cancel does (the pass's memory is dropped)."""
        if direction not in DIRECTIONS:
            raise UserError(f'direction must be one of {", ".join(DIRECTIONS)}, got {direction!r}')
        with self._lock:
            with torch.inference_mode():
                t = self._check_frame(frame_idx)
                if end is not None:
                    end = self._check_frame(end)
                ranges = self.pass_ranges(t, direction, end)    # validates before any change
                self.commit(t, mask, _diff=True)
                total = sum(len(r[0]) for r in ranges)
                done = [0]
                self.memory.reset_peak()
            for frames, bound in ranges:
                if not (yield from self._do_pass(t, frames, bound, done, total, progress,
                                                 should_cancel)):
                    return False
            return True

    def commit(self, frame_idx, mask, _diff=False):
        """Add an interacted frame to the permanent memory without propagating (its mask also
        becomes the frame's stored probability and labels)."""
        with self._lock, torch.inference_mode():
            t = self._check_frame(frame_idx)
            if self.store.num_objects < 1:
                raise UserError('there are no objects to propagate: add an object first')
            self._sync_objects()
            mask = self._mask_to_prob(mask)
            if _diff:
                prev = self._prob(t)
                diff = mask - prev
                self.last_mask_diff = diff
                self._pos_diff = diff.clamp(0, 1)
                self._neg_diff = (-diff).clamp(0, 1)
            self.interacted = self.interacted | {t}
            self.confidence[t] = 1.0
            self.source[t] = t
            self.probs.put(t, mask)
            self._write_labels(t, mask, edited=None, only_if_changed=True)
            self._refresh_stale_memory()
            key, value = self._encode_memory(t, mask)
            self.memory.set_permanent(t, key, value, self._labels_padded(mask))

    def forget(self, frame_idx):
        """Remove an interacted frame from the memory (e.g. after its edits were undone)."""
        with self._lock:
            t = int(frame_idx)
            self.interacted = self.interacted - {t}
            self.memory.remove_permanent(t)
            self.probs.discard(t)
            self.confidence.pop(t, None)
            self.source.pop(t, None)

    def invalidate(self, frames):
        """Forget the stored soft probabilities (and confidences) of frames whose labels changed
        outside the engine."""
        for t in frames:
            self.probs.discard(t)
            self.confidence.pop(int(t), None)
            self.source.pop(int(t), None)

    def reset(self):
        """Forget everything (memory, interacted frames, probabilities); features are kept."""
        with self._lock:
            self.memory.clear()
            self.probs.clear()
            self.confidence.clear()
            self.source.clear()
            self.interacted = frozenset()
            self.last_mask_diff = None
            self.num_objects = self.store.num_objects

    def clear_feature_cache(self):
        self.features.clear()

    def set_propagation_net(self, net):
        """Use another propagation network (e.g. an adapted copy, inference_core/adaptation.py).
        Cached keys and the memory's keys and values came from the old one: they are recomputed
        (memory values from the stored labels of the interacted frames)."""
        with self._lock, torch.inference_mode():
            self.prop_net = net
            self.features.clear()
            for e in self.memory.permanent.values():
                e.key = self._features(e.frame)[0].unsqueeze(2)
                e.value = None
            self._refresh_stale_memory()

    def remove_object(self, obj_id):
        """Drop object `obj_id` (call together with store.remove_object): its probability goes to
        the background and ids above it shift down, as in the store."""
        with self._lock:
            obj_id = int(obj_id)
            if not 1 <= obj_id <= self.num_objects:
                return
            self.probs.remove_channel(obj_id)
            lut = np.arange(256, dtype=np.uint8)
            lut[obj_id] = 0
            lut[obj_id + 1:] = np.arange(obj_id, 255, dtype=np.uint8)
            for e in self.memory.permanent.values():
                if e.labels is not None:
                    e.labels = lut[e.labels]
                e.value = None          # "others" channels changed: re-encode before next use
            self.num_objects -= 1

    def pass_ranges(self, t, direction='both', end=None):
        """[(frames, bound), ...] of the passes an interaction at t runs; bound is the nearest
        other interacted frame on that side (None at the clip end): fusion happens iff not None.
        `end` bounds the pass on its side of t; the other side (direction 'both') is unbounded."""
        if end is not None and end != t:
            if direction == 'forward' and end < t or direction == 'backward' and end > t:
                raise UserError(f'end frame {end} is on the wrong side of frame {t} for '
                                f'{direction} propagation')
        out = []
        T = self.store.num_frames
        if direction in ('both', 'forward'):
            nxt = min([f for f in self.interacted if f > t], default=None)
            stop = T if nxt is None else nxt
            if end is not None and end >= t:
                stop = min(stop, end + 1)
            out.append((list(range(t + 1, stop)), nxt))
        if direction in ('both', 'backward'):
            prv = max([f for f in self.interacted if f < t], default=None)
            stop = -1 if prv is None else prv
            if end is not None and end <= t:
                stop = max(stop, end - 1)
            out.append((list(range(t - 1, stop, -1)), prv))
        return [(f, b) for f, b in out if f]

    def prob(self, t):
        """Stored probability of frame t, float32 (K+1, 1, nh, nw) padded, on the CPU."""
        with torch.inference_mode():
            return self._prob(int(t)).cpu()

    def cached_prob(self, t):
        """The soft probability the engine holds for frame t, float32 (K+1, 1, H, W) unpadded on
        the CPU, or None when it holds only labels (never propagated, edited since, evicted)."""
        p = self.probs.get(int(t), self.num_objects + 1)
        return None if p is None else unpad(p, self.pad).float().cpu()

    # ------------------------------------------------------------------ passes
    def _do_pass(self, idx, frames, bound, done, total, progress, should_cancel):
        """One pass, as a generator: yields each frame index once its labels are written; its
        value is False when cancelled. The computation runs in inference mode, the caller's code
        between frames does not."""
        net = self.prop_net
        with torch.inference_mode():
            key_idx = self.memory.permanent[idx].key
            last = idx
            end = frames[-1]
            # Networks with `uses_previous_mask` also get the previous frame's result of the pass.
            prev = self._prob(idx)[1:] if getattr(net, 'uses_previous_mask', False) else None
            last_result = self._prob(idx)      # previous frame's result, for the confidence
            self.memory.begin_pass(idx)
            valid = (self.pad[2], self.pad[0], self.h, self.w)     # (top, left, height, width)
            zoom = None
            if self.zoom_small_objects and small_object_zoom.supported(net):
                lw, _, lh, _ = self.pad
                zoom = small_object_zoom.SmallObjectZoom(net, (lh, lw, self.h, self.w), self.mem_freq)
                with self._autocast():
                    zoom.begin(idx, self._image(idx), last_result)
        try:
            for ti in frames:
                if should_cancel is not None and should_cancel():
                    return False
                with torch.inference_mode():
                    k16, qv16, f16, f8, f4 = self._features(ti)
                    mk, mv = self.memory.memory()
                    extra = {} if prev is None else {'prev_mask': prev}
                    img = self._image(ti) if zoom is not None and zoom.tracks else None
                    with self._autocast():
                        out = net.segment_with_query(mk, mv, f8, f4, k16, qv16, **extra)
                        if img is not None:
                            out = zoom.refine(img, out.float(), prev)
                    if self.gate_regions and prev is not None:
                        out = region_gate.gate(out.float(), prev.float(), valid)
                    out = aggregate_wbg(out.float(), keep_bg=True)
                    if ti != end and abs(ti - last) >= self.mem_freq and self.memory.can_add_temporary():
                        with self._autocast():
                            v = net.encode_value(self._image(ti) if img is None else img, f16, out[1:])
                        self.memory.add_temporary(ti, k16.unsqueeze(2), v)
                        last = ti
                    self.peak_memory_frames = max(self.peak_memory_frames, self.memory.size)
                    c_old = self.confidence.get(ti) if self.keep_confident else None
                    fused = bound is not None and self.fuse_net is not None
                    # the stored result of ti, decompressed once for the fusion and the combination;
                    # the one-hot of its labels where the soft result is gone but its confidence is
                    # known (after an undo, which restores labels and confidences, not soft masks)
                    old = self._prob(ti) if fused or c_old is not None else None
                    if fused:
                        result = self._fuse(bound, idx, ti, old, out, key_idx, k16)
                    else:
                        result = out
                    # scored on the pass's own output, not the fused one: the fusion network's
                    # output is sharper, and a score on it would always outrank the earlier result
                    c_new = frame_confidence(out, last_result)
                    last_result = out
                    src = idx
                    if c_old is not None:
                        result, c_new, src = self._keep_confident(ti, idx, result, c_new, old, c_old)
                    self.probs.put(ti, result)
                    self.confidence[ti] = c_new
                    self.source[ti] = src
                    if prev is not None:
                        prev = result[1:]
                    if img is not None:
                        with self._autocast():
                            zoom.observe(ti, img, result)
                    self._write_labels(ti, result, edited=False)
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], total)
                yield ti
            return True
        finally:
            with torch.inference_mode():
                self.memory.end_pass()

    def _keep_confident(self, ti, idx, new, c_new, old, c_old):
        """Combine a pass's result at frame ti (from the interaction at idx) with the result
        already there (from an earlier interaction at `source[ti]`): each is weighted by its
        confidence and inversely by its temporal distance to the interaction it comes from, so
        a weak correction cannot wreck frames that an earlier interaction segments well, while
        near the correction the correction wins. The new result wins outright when the old one
        came from this same frame (re-annotated), from an interaction that no longer exists, or
        from one that lacked an object the new interaction has.
        Returns (result, confidence, source frame)."""
        s_old = self.source.get(ti)
        if s_old is None or s_old == idx or s_old not in self.interacted \
                or not self._objects_of(idx) <= self._objects_of(s_old):
            # re-annotated frame, a forgotten interaction, or an object the old result never
            # saw (added since): the old result cannot speak for it
            return new, c_new, idx
        w_new = c_new * abs(ti - s_old)
        w_old = c_old * abs(ti - idx)
        if w_new + w_old <= 0:
            return new, c_new, idx
        w = w_new / (w_new + w_old)
        return w * new + (1 - w) * old, w * c_new + (1 - w) * c_old, idx if w >= 0.5 else s_old

    def _objects_of(self, t):
        """Object ids in the mask of interacted frame t (as committed to the memory)."""
        e = self.memory.permanent.get(t)
        return set() if e is None or e.labels is None else set(np.unique(e.labels).tolist()) - {0}

    def _fuse(self, tc, tr, ti, prev, curr, mk16, qk16):
        nc = abs(tc - ti) / abs(tc - tr)
        nr = abs(tr - ti) / abs(tc - tr)
        dist = torch.tensor([[nc, nr]], dtype=torch.float32, device=self.device)
        im = self._image(ti)
        with self._autocast():
            attn = self.prop_net.get_attention(mk16, self._pos_diff, self._neg_diff, qk16)
            probs = []
            for k in range(1, self.num_objects + 1):
                logits = self.fuse_net(im, prev[k:k + 1], curr[k:k + 1], attn[k:k + 1], dist)
                probs.append(torch.sigmoid(logits.float()).reshape(1, 1, self.nh, self.nw))
        return aggregate_wbg(torch.cat(probs, 0), keep_bg=True)

    # ------------------------------------------------------------------ helpers
    def _check_frame(self, t):
        try:
            t = int(t)
        except (TypeError, ValueError):
            raise UserError(f'frame index must be an integer, got {t!r}') from None
        if not 0 <= t < self.store.num_frames:
            raise UserError(f'frame {t} is out of range (0..{self.store.num_frames - 1})')
        return t

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type='cuda', dtype=self.amp_dtype)

    def _set_top_k(self):
        # The official net keeps top_k as an attribute (MiVOS PropagationNetwork(top_k=20)).
        for obj in (self.prop_net, getattr(self.prop_net, 'memory', None)):
            if obj is not None and hasattr(obj, 'top_k'):
                obj.top_k = self.top_k

    def _image(self, t):
        """Normalised, padded frame t (1, 3, nh, nw) on the device."""
        if self._frame_loader is not None:
            x = torch.as_tensor(self._frame_loader(t)).float()
            if x.dim() == 3:
                x = x.unsqueeze(0)
        else:
            x = normalize_frames(np.array(self.store.frame(t)))   # writable copy for torch
        x, _ = pad_divide_by(x.to(self.device), 16)
        return x

    def _features(self, t):
        feats = self.features.get(t)
        if feats is None:
            with self._autocast():
                feats = tuple(self.prop_net.encode_key(self._image(t)))
            self.features.put(t, feats)
        return feats

    def _encode_memory(self, t, mask):
        k16, _, f16, _, _ = self._features(t)
        with self._autocast():
            value = self.prop_net.encode_value(self._image(t), f16, mask[1:])
        return k16.unsqueeze(2), value

    def _sync_objects(self):
        """Follow the store's object count: new objects get zero channels (probabilities are
        padded on read; memory values are re-encoded, since every object's value depends on the
        others). A count that shrank without remove_object() resets the soft state."""
        k = self.store.num_objects
        if k == self.num_objects:
            return
        if k < self.num_objects:
            self.probs.clear()
            for e in self.memory.permanent.values():
                e.labels = self._labels_padded(self._onehot(self.store.get_mask(e.frame), k))
        for e in self.memory.permanent.values():
            e.value = None
        self.num_objects = k

    def _refresh_stale_memory(self):
        for e in self.memory.stale_entries():
            labels = torch.from_numpy(e.labels.astype(np.int64)).to(self.device)
            k = self.num_objects
            onehot = torch.zeros((k + 1, 1, self.nh, self.nw), dtype=torch.float32, device=self.device)
            onehot.scatter_(0, labels.clamp(max=k)[None, None], 1.0)
            onehot = zero_pad_border(onehot, self.pad)
            _, e.value = self._encode_memory(e.frame, onehot)

    def _onehot(self, labels, k):
        return onehot_padded(labels, k, self.device)

    def _mask_to_prob(self, mask):
        return mask_to_prob(mask, self.num_objects, (self.h, self.w), self.device)

    def _prob(self, t):
        """Stored probability (K+1, 1, nh, nw) float32 on the device. Not cached: the one-hot of
        the store's labels, or the MiVOS initial state (background 1e-7) for an empty frame."""
        k = self.num_objects
        p = self.probs.get(t, k + 1, self.device)
        if p is not None:
            return p
        labels = self.store.get_mask(t)
        if labels.any():
            return self._onehot(labels, k)
        p = torch.zeros((k + 1, 1, self.nh, self.nw), dtype=torch.float32, device=self.device)
        p[0] = 1e-7
        return p

    def _labels_padded(self, prob):
        return argmax0(prob)[0].to(torch.uint8).cpu().numpy()

    def _write_labels(self, t, prob, edited, only_if_changed=False):
        labels = unpad(argmax0(prob)[0], self.pad).to(torch.uint8).cpu().numpy()
        if only_if_changed and np.array_equal(labels, self.store.get_mask(t)):
            return
        if self.before_write is not None:
            self.before_write(t)
        self.store.set_mask(t, labels, edited=edited)
