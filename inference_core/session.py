"""Session: the headless interactive-segmentation API used by the GUI, the CLIs and tests.

    from inference_core.session import Session

    s = Session.open('video.mp4', resolution=480)          # or Session(store, networks=...)
    obj = s.add_object('dog')                               # object ids are 1..N
    s.scribble(0, obj, positive=[[(120, 80), (160, 95)]])   # polylines (x, y) at processing size
    s.scribble(0, obj, negative=[[(20, 20), (40, 30)]])     # refine; negative = background
    s.click(0, obj, x=150, y=90)                            # or clicks (f-BRS / bundled net)
    s.propagate(progress=lambda done, total: print(done, total))
    s.adapt()                                               # optional: tune the bundled network to this video
    s.paint(30, obj, bool_mask, erase=True)                 # fix frame 30 by hand ...
    s.propagate(30)                                         # ... fused with frame 0's result
    labels = s.get_mask(42)                                 # (H, W) uint8, 0 = background
    s.undo(); s.redo()                                      # a click undo steps its click sequence back
    s.load_masks('masks/')                                  # PNGs for any frames: one undo step

Interactions change a frame's labels at once, mark the frame as person-edited and make it
"pending"; `propagate` commits every pending frame to the engine's permanent memory and
propagates from one of them (default: the last one interacted with) in the requested direction,
up to the nearest other interacted frame (fusing the results in between, as MiVOS does).

Threading: `propagate` may run in a worker thread while the GUI reads masks (`get_mask`, the
store). Edits attempted while a propagation runs raise UserError; cancel it with the
`should_cancel` callback.
"""
import contextlib
import threading

import numpy as np
import torch

from inference_core.box_prompt import box_probability, check_box
from inference_core.cpu_threads import check_policy, interaction_threads
from inference_core.engine import (DEFAULT_FEATURE_CACHE_BYTES, DEFAULT_PROB_CACHE_BYTES,
                                   DIRECTIONS, PropagationEngine, amp_dtype)
from inference_core.history import Action, History
from inference_core.memory_bank import DEFAULT_LONG_TERM_FRAMES, DEFAULT_WORKING_FRAMES
from inference_core.interaction import (NO_SCRIBBLE, ScribbleController, as_region,
                                        finite_mask, keep_unscribbled, paint_labels,
                                        set_object_region)
from inference_core.local_refine import LocalRefiner, region_box
from inference_core.padding import pad_divide_by, unpad
from inference_core.scribble_zoom import focus_box, zoomed_predict
from inference_core.session_adaptation import AdaptationMixin
from inference_core.session_history import HistoryMixin
from inference_core.session_objects import ObjectsMixin
from inference_core.session_reads import ReadsMixin
from inference_core.session_state import (ClickSeq, Listeners, ScribbleSeq,
                                          SessionEvent, check_int, check_number)
from inference_core.store import FrameStore
from util.errors import UserError
from util.tensor_util import argmax0, normalize_frames


class Session(ReadsMixin, ObjectsMixin, HistoryMixin, AdaptationMixin):
    """Owns a FrameStore, the networks, the propagation engine, the interactions and history.

    store: inference_core.store.FrameStore. networks: inference_core.networks.Networks or None
    (load with `model` / `saves_dir` / `device`). amp: None = fp16 autocast on CUDA, off on CPU.
    Other arguments go to PropagationEngine. `history_bytes` bounds undo/redo memory.
    Memory of a pass: `working_frames` recent frames + a long-term memory of `long_term_frames`
    frames' worth of prototypes (the bounded default; working_frames=None is MiVOS's unbounded
    memory, max_memory_frames the expert cap; see inference_core/memory_bank.py).
    keep_confident: a correction's pass does not simply overwrite frames that already hold a
    result it is less sure of (PropagationEngine; False = MiVOS: the newest pass always wins).
    zoom_small_objects: small objects also get an object-centred zoomed pass
    (inference_core/small_object_zoom.py; bundled networks only).
    interaction_threads: intra-op threads of clicks, strokes and boxes on a CPU: 'auto' (no
    more than the cores the rest of the machine leaves free), an int, or None (torch's setting);
    see inference_core/cpu_threads.py. Propagation keeps torch's setting.
    """

    def __init__(self, store, networks=None, device='auto', mem_freq=5, top_k=20,
                 max_memory_frames=None, amp=None, *, model='auto', saves_dir='saves',
                 prob_dtype='uint8', prob_cache_bytes=DEFAULT_PROB_CACHE_BYTES,
                 feature_cache_bytes=DEFAULT_FEATURE_CACHE_BYTES, history_bytes=256 << 20,
                 working_frames=DEFAULT_WORKING_FRAMES, long_term_frames=DEFAULT_LONG_TERM_FRAMES,
                 keep_confident=True, zoom_corrections=True, zoom_small_objects=True,
                 interaction_threads='auto'):
        self._closed = False
        try:
            self.interaction_threads = check_policy(interaction_threads)
        except ValueError as e:
            raise UserError(str(e)) from None
        # corrective scribbles on small objects are segmented on an enlarged crop
        # (inference_core/scribble_zoom.py)
        self.zoom_corrections = bool(zoom_corrections)
        mem_freq = check_int('mem_freq', mem_freq, 1)
        top_k = check_int('top_k', top_k, 1)
        if max_memory_frames is not None:
            max_memory_frames = check_int('max_memory_frames', max_memory_frames, 1)
        history_bytes = check_int('history_bytes', history_bytes, 0)
        if working_frames is not None:
            working_frames = check_int('working_frames', working_frames, 1)
        long_term_frames = check_int('long_term_frames', long_term_frames, 0)
        if networks is None:
            from inference_core.networks import load_networks
            networks = load_networks(model, saves_dir=saves_dir, device=device)
        self.store = store
        self.networks = networks
        self.device = torch.device(networks.device)
        if amp is None:
            amp = 'fp16' if self.device.type == 'cuda' else False
        self.amp = amp
        self.engine = PropagationEngine(networks, store, mem_freq=mem_freq, top_k=top_k,
                                        max_memory_frames=max_memory_frames, amp=amp,
                                        device=self.device, prob_dtype=prob_dtype,
                                        prob_cache_bytes=prob_cache_bytes,
                                        feature_cache_bytes=feature_cache_bytes,
                                        working_frames=working_frames,
                                        long_term_frames=long_term_frames,
                                        keep_confident=keep_confident,
                                        zoom_small_objects=zoom_small_objects)
        self._amp_dtype = amp_dtype(amp, self.device)
        self.scribbler = ScribbleController(networks.interaction, self.device, self._amp_dtype)
        self._click = None
        self._click_state = None    # ClickSeq of the clicks in the controller, or None
        self.history = History(history_bytes)
        self._pending = frozenset(store.edited_frames)   # interacted, not yet committed
        self._last = None                                # last frame interacted with
        self._soft = {}          # t -> (prob (K+1,1,H,W) float32, store revision it matches)
        self._scr = None         # ScribbleSeq in progress
        self._image_cache = (None, None)
        self._run_lock = threading.Lock()
        self._adapted = ()       # frames the propagation network was adapted to (see adapt)
        self._local = LocalRefiner(self._local_session)
        self._listeners = Listeners()
        store.add_listener(self._on_frames)
        store.add_object_listener(self._on_objects)

    @classmethod
    def open(cls, path, resolution=480, masks=None, networks=None, *, storage='auto',
             num_objects=0, progress=None, should_cancel=None, **kwargs):
        """Load a video file or image folder (shorter side -> `resolution`, -1 = original), with
        optional masks (folder / PNG / list of PNGs, see util.mask_io.load_masks) and at least
        `num_objects` objects. Returns None when cancelled while loading."""
        from inference_core.store_io import load_masks, open_frames
        store = open_frames(path, resolution=resolution, storage=storage, progress=progress,
                            should_cancel=should_cancel)
        if store is None:
            return None
        try:
            store.ensure_objects(num_objects)
            if masks is not None:
                load_masks(store, masks)
            return cls(store, networks=networks, **kwargs)
        except BaseException:
            store.close()
            raise

    @classmethod
    def from_frames(cls, frames, *, num_frames=None, orig_size=None, frame_names=None,
                    source='', fps=None, storage='auto', num_objects=0, progress=None,
                    should_cancel=None, **kwargs):
        """A session on frames held in memory or produced one by one: a (T, H, W, 3) uint8
        array or an iterable of (H, W, 3) uint8 frames at processing size. `orig_size`: (h, w)
        the exports are written at (default: the frames' size). `num_objects` objects are
        created. Returns None when cancelled while reading the frames."""
        if isinstance(frames, np.ndarray):
            num_frames = len(frames) if num_frames is None else num_frames
        store = FrameStore.from_frame_iter(frames, num_frames=num_frames, orig_size=orig_size,
                                           storage=storage, source=source,
                                           frame_names=frame_names, progress=progress,
                                           should_cancel=should_cancel)
        if store is None:
            return None
        store.fps = fps
        try:
            store.ensure_objects(num_objects)
            return cls(store, **kwargs)
        except BaseException:
            store.close()
            raise

    def close(self):
        """Free the memory and close the store; later calls raise UserError('session is
        closed'). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.store.remove_listener(self._on_frames)
        self.store.remove_object_listener(self._on_objects)
        self._local.reset()
        self.engine.reset()
        self.engine.clear_feature_cache()
        self.history.clear()
        self._soft.clear()
        self.store.close()

    def release_memory(self):
        """Free the propagation memory and caches (masks, objects and history stay). Frames
        committed to the memory are committed again from their labels by the next propagate."""
        with self._exclusive('release memory'):
            self._pending = self._pending | self.engine.interacted
            self.engine.reset()
            self.engine.clear_feature_cache()
            self.scribbler.clear_cache()       # (shared with the click controller)
            self._soft.clear()

    # ------------------------------------------------------------------ events
    def subscribe(self, fn):
        """Call fn(SessionEvent) after changes: labels of frames, objects, busy / idle. It runs
        in the thread that made the change (a propagation's worker thread too): GUIs forward
        it to their own thread (gui/session_bridge.py)."""
        self._listeners.add(fn)

    def unsubscribe(self, fn):
        self._listeners.remove(fn)

    def _on_frames(self, frames):
        self._listeners.send(SessionEvent('frames', tuple(int(t) for t in frames)))

    def _on_objects(self):
        self._listeners.send(SessionEvent('objects'))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ interactions
    def scribble(self, frame, obj_id, positive=None, negative=None, brush=3):
        """Scribble-to-mask on a frame. positive/negative: polylines [(x, y), ...] (or a list of
        them) drawn with a `brush`-pixel brush, or bool masks of the frame size. Positive strokes
        belong to obj_id, negative ones to the background. Strokes accumulate on the frame until
        its labels are changed by something else. Returns the new label map."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        h, w = self.store.height, self.store.width
        pos = as_region(h, w, positive, brush)
        neg = as_region(h, w, negative, brush)
        if not pos.any() and not neg.any():
            raise UserError('empty scribble: draw at least one stroke inside the frame')
        with self._exclusive('scribble'), self._interaction_threads():
            cur = self.store.get_mask(t)
            k = self.store.num_objects
            st = self._scr
            if (st is None or st.frame != t or st.num_objects != k
                    or st.revision != self.store.revision(t)):
                st = ScribbleSeq(t, cur, k)
            st.scribbles[neg] = 0
            st.scribbles[pos] = obj_id
            box = None
            if self.zoom_corrections:
                # an object missing here but present nearby was lost: zoom on it too
                nearby = (st.nearby_size(self.store, obj_id)
                          if not (st.prev_labels == obj_id).any() else None)
                box = focus_box(st.prev_labels, st.scribbles, obj_id, nearby_size=nearby)
            if box is not None:
                prob = zoomed_predict(self.scribbler, self.store.frame(t), st.prev_labels,
                                      st.scribbles, k, obj_id, box)
            else:
                image, pad = self._image(t)
                prev = pad_divide_by(torch.from_numpy(st.prev_labels)[None, None], 16)[0][0, 0]
                # the scribbled object takes other objects' pixels where its strokes point
                # (latest intent wins)
                prob = self.scribbler.predict(image, prev.numpy(), st.scribbles, k,
                                              claim_for=obj_id)
                prob = unpad(prob, pad).float().cpu()
            keep_unscribbled(prob, st.prev_labels, st.scribbles)
            labels = argmax0(prob)[0].to(torch.uint8).numpy()
            self._apply(t, labels, 'scribble', soft=prob)
            st.revision = self.store.revision(t)
            self._scr = st
            return labels

    def scribble_region(self, frame, obj_id, region, positive=None, negative=None, brush=3):
        """Local refinement: scribble-to-mask on `region` = (x0, y0, x1, y1) of a frame only,
        enlarged to the processing size first (inference_core/local_refine.py). Strokes are
        polylines in frame coordinates, as for `scribble`. Returns the frame's new labels."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        box = region_box(region, self.store.height, self.store.width)
        if not positive and not negative:
            raise UserError('empty scribble: draw at least one stroke inside the region')
        with self._exclusive('scribble'), self._interaction_threads():
            labels = self._local.scribble(self.store.frame(t), self.store.get_mask(t),
                                          self.store.revision(t), box, obj_id,
                                          self.store.num_objects, positive or [], negative or [],
                                          brush)
            self._apply(t, labels, 'local scribble')
            self._local.written(self.store.revision(t))
            return labels

    def prepare_interaction(self, frame):
        """Compute what the first stroke or click on `frame` needs of the image alone (the
        bundled interaction net's backbone maps) ahead of time, so that it answers faster: the
        GUI calls this when the person stops on a frame. Does nothing with networks that read
        the image together with the strokes. Returns False (and does nothing) while a
        propagation or another call is running, True otherwise."""
        t = self._check_frame(frame)
        if not self._run_lock.acquire(blocking=False):
            return False
        try:            # no busy/idle events: nothing the person asked for is happening
            with self._interaction_threads():
                image, _ = self._image(t)
                self.scribbler.prepare(image)
            return True
        finally:
            self._run_lock.release()

    def click(self, frame, obj_id, x, y, positive=True):
        """A positive/negative click at (x, y) for obj_id (f-BRS with the official weights, the
        bundled interaction net otherwise). Clicks accumulate on the frame like scribbles.
        Returns the new label map."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        x, y = check_number('click x', x), check_number('click y', y)
        if not (0 <= x < self.store.width and 0 <= y < self.store.height):
            raise UserError(f'click ({x}, {y}) is outside the {self.store.width}x'
                            f'{self.store.height} frame')
        with self._exclusive('click'), self._interaction_threads():
            ctrl = self._click_controller()
            cur = self.store.get_mask(t)
            k = self.store.num_objects
            before = self._state()
            st = self._click_state
            if (st is None or st.key != (t, obj_id, k) or ctrl.num_clicks == 0
                    or st.revision != self.store.revision(t)):
                ctrl.reset()
                self._click_state = None
                st = ClickSeq((t, obj_id, k), cur)
            image, _ = self._image(t)
            obj_prob = ctrl.click(image, float(x), float(y), bool(positive), prev_labels=st.base,
                                  obj_id=obj_id, num_objects=k, frame=t)
            prob = self._click_probs(st, ctrl, obj_prob)
            if not any(c[2] for c in ctrl.clicks):
                # negative clicks only: the object may shrink where they point, not grow (as
                # for strokes; the click disks are the background marks)
                from inference_core.click import click_maps
                marks = np.full(st.base.shape, NO_SCRIBBLE, np.uint8)
                marks[click_maps(*st.base.shape, ctrl.clicks)[1] > 0] = 0
                keep_unscribbled(prob, st.base, marks)
            labels = argmax0(prob)[0].to(torch.uint8).numpy()
            self._click_state = st
            self._apply(t, labels, 'click', soft=prob, keep_click=True, state=before)
            st.revision = self.store.revision(t)
            return labels

    def add_box(self, frame, obj_id, box):
        """A box prompt: the mask of the object inside `box` = (x0, y0, x1, y1) (frame
        coordinates, corners in any order) replaces obj_id's mask on the frame; nothing of the
        object is left outside the box (inference_core/box_prompt.py: the box becomes strokes
        for the interaction network on a zoomed crop). Other objects keep their pixels except in
        the part of the new mask at the box's centre. One undo step; clicks and strokes after
        it refine the mask. Returns the new label map."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        box = check_box(box, self.store.height, self.store.width)
        with self._exclusive('box'), self._interaction_threads():
            from inference_core.click import compose_click_probs
            base = self.store.get_mask(t)
            base[base == obj_id] = 0
            obj_prob, seeds = box_probability(self.scribbler, self.store.frame(t), box)
            prob = compose_click_probs(base, obj_id, obj_prob, self.store.num_objects,
                                       seeds=seeds)
            labels = argmax0(prob)[0].to(torch.uint8).numpy()
            self._apply(t, labels, 'box', soft=prob)
            return labels

    def paint(self, frame, obj_id, mask, erase=False, brush=3):
        """Free brush: paint `mask` (bool array or polylines drawn with `brush`) with obj_id, or
        with erase=True remove obj_id there (obj_id 0 erases every object). Returns labels."""
        t = self._check_frame(frame)
        if not (erase and not obj_id):
            obj_id = self._check_object(obj_id)
        region = as_region(self.store.height, self.store.width, mask, brush)
        with self._exclusive('paint'):
            labels = paint_labels(self.store.get_mask(t), obj_id, region, erase)
            self._apply(t, labels, 'erase' if erase else 'paint')
            return labels

    def set_object_mask(self, frame, obj_id, mask):
        """Replace obj_id's mask on a frame by a bool mask of the frame size."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        region = as_region(self.store.height, self.store.width, finite_mask(mask).astype(bool))
        with self._exclusive('set a mask'):
            labels = set_object_region(self.store.get_mask(t), obj_id, region)
            self._apply(t, labels, 'set mask')
            return labels

    def set_labels(self, frame, labels):
        """Replace a frame's whole label map ((H, W), ids 0..num_objects)."""
        t = self._check_frame(frame)
        labels = np.asarray(labels)
        if labels.shape != (self.store.height, self.store.width):
            raise UserError(f'label map is {labels.shape[-1]}x{labels.shape[0]}, the frame is '
                            f'{self.store.width}x{self.store.height}')
        if labels.size and (labels.min() < 0 or labels.max() > self.store.num_objects):
            raise UserError(f'label map has ids up to {int(labels.max())} but only '
                            f'{self.store.num_objects} objects exist (add objects first)')
        with self._exclusive('set labels'):
            labels = labels.astype(np.uint8)
            self._apply(t, labels, 'set labels')
            return labels

    def load_masks(self, masks, progress=None, should_cancel=None):
        """Load mask PNGs (a folder, one PNG or a list of PNGs; any subset of frames, see
        util.mask_io.load_masks) as ONE undo step. Objects up to the largest id are created
        (undo keeps them); the loaded frames become edited and pending. Returns the sorted
        frames loaded, or None when cancelled (nothing changed)."""
        from inference_core.store_io import load_masks
        with self._exclusive('load masks'):
            store = self.store
            action = Action('load masks', (store.height, store.width))
            action.state = self._state()

            def capture(t):
                action.capture(t, store.get_mask(t), t in store.edited_frames)

            done = load_masks(store, masks, edited=True, progress=progress,
                              should_cancel=should_cancel, before_write=capture)
            if done is None:
                return None
            action.drop_unchanged(store)
            self.history.push(action)
            self.engine.invalidate(done)
            self._pending = self._pending | set(done)
            if done:
                self._last = done[0]
            for t in done:
                self._soft.pop(t, None)
            self._scr = None
            self._reset_click()
            return done

    def restore_work(self, objects, masks, edited=(), record=None):
        """Put saved work back (workspace resume): `objects` [(name, (r, g, b), visible)] for
        ids 1..N, `masks` {frame: (H, W) labels at processing size} (ids above N become
        background), `edited` the person-edited frames (one without a mask was cleared to
        background), `record` the saved propagation_record() (per-frame confidence and source:
        the timeline strip, `N`, and the combination of the next correction with these results
        carry on; entries that do not fit the restored work are ignored). Replaces objects and
        masks; the history starts again from here."""
        with self._exclusive('restore saved work'):
            store = self.store
            store.restore_objects(tuple((i + 1, str(n), tuple(c), bool(v))
                                        for i, (n, c, v) in enumerate(objects)))
            n = store.num_objects
            edited = {int(t) for t in edited if 0 <= int(t) < store.num_frames}
            zero = np.zeros((store.height, store.width), np.uint8)
            for t in range(store.num_frames):
                labels = masks.get(t)
                if labels is not None:
                    labels = np.array(labels, np.uint8)
                    labels[labels > n] = 0
                    store.set_mask(t, labels, edited=t in edited)
                elif t in edited or store.nonempty_frames()[t]:
                    store.set_mask(t, zero, edited=t in edited)
            self.engine.reset()
            if record:
                self._restore_record(record, edited)
            self.history.clear()
            self._pending = frozenset(edited)
            self._last = None
            self._soft.clear()
            self._scr = None
            self._local.reset()
            self._reset_click()

    def propagation_record(self):
        """{'confidence': {frame: float}, 'source': {frame: interacted frame}} of the propagated
        frames: what restore_work needs to carry on after a restart (JSON-friendly values)."""
        eng = self.engine
        return {'confidence': {int(t): float(c) for t, c in eng.confidence.items()},
                'source': {int(t): int(f) for t, f in eng.source.items()}}

    def _restore_record(self, record, edited):
        """The saved per-frame confidence and source, where they fit: frames in range, sources
        among the edited frames, confidences in [0, 1]."""
        T = self.store.num_frames
        conf, src = record.get('confidence') or {}, record.get('source') or {}
        for t, c in conf.items():
            try:
                t, c = int(t), float(c)
            except (TypeError, ValueError):
                continue
            if 0 <= t < T and 0.0 <= c <= 1.0 and t not in edited:
                self.engine.confidence[t] = c
        for t, f in src.items():
            try:
                t, f = int(t), int(f)
            except (TypeError, ValueError):
                continue
            if t in self.engine.confidence and f in edited:
                self.engine.source[t] = f

    def reset_frame(self, frame):
        """Clear a frame: all background, not edited, removed from the memory."""
        t = self._check_frame(frame)
        with self._exclusive('reset a frame'):
            action = Action('reset frame', (self.store.height, self.store.width))
            action.capture(t, self.store.get_mask(t), t in self.store.edited_frames)
            action.state = self._state()
            self.store.set_mask(t, np.zeros((self.store.height, self.store.width), np.uint8),
                                edited=False)
            self.engine.forget(t)
            self._pending = self._pending - {t}
            self._soft.pop(t, None)
            self._scr = None
            self._reset_click()
            self.history.push(action)

    def end_interaction(self, frame=None):
        """Finish the current scribble/click sequence (MiVOS 'commit'): the next strokes or
        clicks start a new interaction from the frame's current mask."""
        if frame is not None:
            frame = self._check_frame(frame)
        if frame is None or (self._scr is not None and self._scr.frame == frame):
            self._scr = None
        if frame is None or (self._click_state is not None
                             and self._click_state.key[0] == frame):
            self._reset_click()

    # ------------------------------------------------------------------ propagation
    def propagate(self, frame=None, direction='both', end=None, progress=None,
                  should_cancel=None):
        """Commit the pending interactions and propagate from `frame` (default: the last frame
        interacted with). `direction`: 'both' | 'forward' | 'backward'; `end`: last frame to
        process on its side. Returns True when done, False when cancelled (frames already
        written keep their new labels; undo restores them)."""
        with self._exclusive('propagate'):
            if self.store.num_objects < 1:
                raise UserError('there are no objects to propagate: add an object first')
            t = self._default_frame() if frame is None else self._check_frame(frame)
            if direction not in DIRECTIONS:
                raise UserError(f'direction must be one of {", ".join(DIRECTIONS)}, '
                                f'got {direction!r}')
            if end is not None:
                end = self._check_frame(end)
            self.engine.pass_ranges(t, direction, end)      # validates end before any change
            action = Action('propagate', (self.store.height, self.store.width))
            action.state = self._state()
            store = self.store

            def capture(ti):
                action.capture(ti, store.get_mask(ti), ti in store.edited_frames)

            self.engine.before_write = capture if self.history.enabled else None
            try:
                for p in sorted(self._pending - {t}):
                    self.engine.commit(p, self._mask_for(p))
                    self._pending = self._pending - {p}
                ok = self.engine.interact(t, self._mask_for(t), direction=direction, end=end,
                                          progress=progress, should_cancel=should_cancel)
                self._pending = self._pending - {t}
                self._soft.clear()
                self._last = t
            finally:
                self.engine.before_write = None
                action.drop_unchanged(self.store)
                self._scr = None
                self._reset_click()
                self.history.push(action)
            return ok

    # ------------------------------------------------------------------ internals
    def _check_open(self):
        if self._closed:
            raise UserError('session is closed')

    @contextlib.contextmanager
    def _exclusive(self, what):
        self._check_open()
        if not self._run_lock.acquire(blocking=False):
            raise UserError(f'cannot {what} while a propagation is running (wait or cancel it)')
        try:
            self._listeners.send(SessionEvent('busy', what=what))
            yield
        finally:
            self._run_lock.release()
            self._listeners.send(SessionEvent('idle', what=what))

    def _interaction_threads(self):
        """The intra-op threads of an interactive call (inference_core/cpu_threads.py)."""
        return interaction_threads(self.interaction_threads, self.device)

    def _check_frame(self, t):
        self._check_open()
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise UserError(f'frame must be an integer, got {t!r}')
        t = int(t)
        if not 0 <= t < self.store.num_frames:
            raise UserError(f'frame {t} is out of range (0..{self.store.num_frames - 1})')
        return t

    def _check_object(self, obj_id):
        if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)):
            raise UserError(f'object id must be an integer, got {obj_id!r}')
        obj_id = int(obj_id)
        n = self.store.num_objects
        if not 1 <= obj_id <= n:
            if n == 0:
                raise UserError('there are no objects yet: add an object first')
            raise UserError(f'no object {obj_id} (objects are 1..{n})')
        return obj_id

    def _default_frame(self):
        if self._last is not None and (self._last in self._pending or self._last in self.engine.interacted):
            return self._last
        if self._pending:
            return min(self._pending)
        if self.engine.interacted:
            return max(self.engine.interacted)
        raise UserError('nothing to propagate: draw or load a mask on a frame first')

    def _apply(self, t, labels, name, soft=None, keep_click=False, state=None):
        """Write an interaction's labels as one undo step; the frame becomes pending. `state`:
        the session state before the interaction (default: now)."""
        action = Action(name, (self.store.height, self.store.width))
        action.capture(t, self.store.get_mask(t), t in self.store.edited_frames)
        action.state = self._state() if state is None else state
        self.store.set_mask(t, labels, edited=True)
        self.history.push(action)
        self._pending = self._pending | {t}
        self._last = t
        if soft is not None:
            self._soft[t] = (soft, self.store.revision(t))
        else:
            self._soft.pop(t, None)
        if name != 'scribble':
            self._scr = None
        if not keep_click:
            self._reset_click()

    def _valid_soft(self, t):
        """The soft result of the last scribble/click on frame t while its labels are still the
        ones it produced (same revision, same object count), else None."""
        soft = self._soft.get(t)
        if soft is not None and soft[1] == self.store.revision(t) \
                and soft[0].shape[0] == self.store.num_objects + 1:
            return soft[0]
        return None

    def _mask_for(self, t):
        """The interaction mask committed for frame t: the soft result of the last scribble/click
        when the labels still match it (MiVOS passes that), else the label map."""
        soft = self._valid_soft(t)
        return soft if soft is not None else self.store.get_mask(t)

    def _local_session(self, frames, num_objects):
        """The one-frame session local refinement runs in (same networks, small history; the
        person chose the region, so no further zoom inside it)."""
        return Session.from_frames(frames, storage='memory', num_objects=num_objects,
                                   networks=self.networks, amp=self.amp, history_bytes=16 << 20,
                                   zoom_corrections=False,
                                   interaction_threads=self.interaction_threads)

    def _image(self, t):
        """Normalised padded frame (1, 3, Hp, Wp) on the device, and the pad tuple."""
        key, val = self._image_cache
        if key != t:
            x, pad = pad_divide_by(normalize_frames(np.array(self.store.frame(t))), 16)
            val = (x.to(self.device), pad)
            self._image_cache = (t, val)
        return val

    def _click_probs(self, seq, ctrl, obj_prob):
        """(K+1, 1, H, W) frame probability for a click result. MiVOS: the object's channel
        becomes the click mask, the other objects keep their hard masks from before the click
        sequence, aggregate_sbg(hard=True); the clicked object takes other objects' pixels only
        in the parts of its mask that contain a positive click (the latest intent wins there;
        a far-away false positive of the network does not eat another object)."""
        from inference_core.click import compose_click_probs, positive_seeds
        t, obj_id, k = seq.key
        seeds = positive_seeds(self.store.height, self.store.width, ctrl.clicks)
        return compose_click_probs(seq.base, obj_id, obj_prob, k, seeds=seeds)

    def _reset_click(self):
        self._click_state = None
        if self._click is not None:
            self._click.reset()

    def _click_controller(self):
        if self._click is None:
            try:
                from inference_core.click import ClickController
            except ImportError:
                raise UserError('click interaction is not available in this installation') from None
            self._click = ClickController(self.networks, self.device, amp_dtype=self._amp_dtype,
                                          features=self.scribbler.features)
        return self._click
