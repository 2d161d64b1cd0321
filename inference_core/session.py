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

from inference_core.engine import (DEFAULT_FEATURE_CACHE_BYTES, DEFAULT_PROB_CACHE_BYTES,
                                   DIRECTIONS, PropagationEngine, amp_dtype,
                                   argmax0)
from inference_core.adaptation import DEFAULT_ITERS, adapt_propagation, supports_adaptation
from inference_core.history import Action, History
from inference_core.memory_bank import DEFAULT_LONG_TERM_FRAMES, DEFAULT_WORKING_FRAMES
from inference_core.interaction import (ScribbleController, as_region, paint_labels,
                                        set_object_region)
from inference_core.local_refine import LocalRefiner, region_box
from inference_core.padding import pad_divide_by, unpad
from inference_core.session_state import (ClickSeq, Listeners, SavedState, ScribbleSeq,
                                          SessionEvent, check_int, check_number)
from inference_core.store import FrameStore
from util.errors import UserError
from util.tensor_util import normalize_frames


class Session:
    """Owns a FrameStore, the networks, the propagation engine, the interactions and history.

    store: inference_core.store.FrameStore. networks: inference_core.networks.Networks or None
    (load with `model` / `saves_dir` / `device`). amp: None = fp16 autocast on CUDA, off on CPU.
    Other arguments go to PropagationEngine. `history_bytes` bounds undo/redo memory.
    Memory of a pass: `working_frames` recent frames + a long-term memory of `long_term_frames`
    frames' worth of prototypes (the bounded default; working_frames=None is MiVOS's unbounded
    memory, max_memory_frames the expert cap; see inference_core/memory_bank.py).
    keep_confident: a correction's pass does not simply overwrite frames that already hold a
    result it is less sure of (PropagationEngine; False = MiVOS: the newest pass always wins).
    """

    def __init__(self, store, networks=None, device='auto', mem_freq=5, top_k=20,
                 max_memory_frames=None, amp=None, *, model='auto', saves_dir='saves',
                 prob_dtype='uint8', prob_cache_bytes=DEFAULT_PROB_CACHE_BYTES,
                 feature_cache_bytes=DEFAULT_FEATURE_CACHE_BYTES, history_bytes=256 << 20,
                 working_frames=DEFAULT_WORKING_FRAMES, long_term_frames=DEFAULT_LONG_TERM_FRAMES,
                 keep_confident=True):
        self._closed = False
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
                                        keep_confident=keep_confident)
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
        from util.frames_io import open_frames
        store = open_frames(path, resolution=resolution, storage=storage, progress=progress,
                            should_cancel=should_cancel)
        if store is None:
            return None
        try:
            store.ensure_objects(num_objects)
            if masks is not None:
                from util.mask_io import load_masks
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

    # ------------------------------------------------------------------ info
    @property
    def num_frames(self):
        return self.store.num_frames

    @property
    def num_objects(self):
        return self.store.num_objects

    @property
    def objects(self):
        """The objects, as a list of copies (ObjectInfo: id, name, color, visible)."""
        from inference_core.store import ObjectInfo
        return [ObjectInfo(i, n, c, v) for i, n, c, v in self.store.objects_snapshot()]

    def get_object(self, obj_id):
        """ObjectInfo (a copy) of one object."""
        return self.objects[self._check_object(obj_id) - 1]

    def colors(self):
        """(256, 3) uint8 colour table indexed by object id (0 black)."""
        return self.store.colors()

    @property
    def height(self):
        """Processing height (frames and label maps)."""
        return self.store.height

    @property
    def width(self):
        return self.store.width

    @property
    def orig_height(self):
        """Height of the original video (exports are written at the original size)."""
        return self.store.orig_height

    @property
    def orig_width(self):
        return self.store.orig_width

    @property
    def source(self):
        """The video file or image folder opened ('' when built from frames)."""
        return self.store.source

    @property
    def frame_names(self):
        """Per-frame names used for exported files."""
        return list(self.store.frame_names)

    @property
    def fps(self):
        return self.store.fps

    @property
    def storage(self):
        """'memory' or 'disk': where the frames and masks are kept."""
        return self.store.storage

    @property
    def edited_frames(self):
        """Frames a person edited (sorted; a snapshot taken under the store's lock)."""
        return self.store.edited_snapshot()

    def frames_with_masks(self):
        """(T,) bool: which frames hold any object pixel (kept up to date on every write)."""
        return self.store.nonempty_frames()

    def revision(self, frame):
        """A counter bumped at every change of the frame's labels (compare instead of
        comparing label maps)."""
        return self.store.revision(self._check_frame(frame))

    def label_at(self, frame, x, y):
        """Object id at pixel (x, y) of a frame (0 outside the frame)."""
        t = self._check_frame(frame)
        if not (0 <= x < self.store.width and 0 <= y < self.store.height):
            return 0
        return int(self.store.get_mask(t)[int(y), int(x)])

    def mask_at_original(self, frame):
        """Label map of a frame at the original video size (nearest neighbour)."""
        return self.store.mask_at_original(self._check_frame(frame))

    @property
    def interacted_frames(self):
        """Frames the person interacted with (committed to memory or pending), sorted."""
        return sorted(self.engine.interacted | self._pending)

    @property
    def pending_frames(self):
        """Interacted frames not yet committed to the engine (they are, on the next propagate)."""
        return sorted(self._pending)

    @property
    def busy(self):
        """True while a propagation (or another edit) is running."""
        return self._run_lock.locked()

    @property
    def active_clicks(self):
        """(frame, obj_id, [(x, y, positive), ...]): the clicks in effect that the next click on
        that frame and object continues (after undo/redo too), or None."""
        cs, ctrl = self._click_state, self._click
        if cs is None or ctrl is None or not ctrl.num_clicks:
            return None
        return cs.key[0], cs.key[1], list(ctrl.clicks)

    def frame(self, t):
        """Frame t, (H, W, 3) uint8 RGB at processing size, read-only."""
        return self.store.frame(self._check_frame(t))

    def get_mask(self, frame):
        """Label map (H, W) uint8 of a frame (a copy; safe during propagation)."""
        return self.store.get_mask(self._check_frame(frame))

    def frame_confidence(self):
        """(T,) float: how sure the propagation is of each frame, in [0, 1] (1 for frames a
        person interacted with; NaN where nothing was propagated or the labels were edited
        since). See inference_core/confidence.py."""
        c = np.full(self.store.num_frames, np.nan)
        for t, v in list(self.engine.confidence.items()):
            if 0 <= t < len(c):
                c[t] = v
        for t in self.interacted_frames:
            c[t] = 1.0
        return c

    def suggest_frame(self):
        """The frame to check next: the least confident propagated frame that no one has
        interacted with yet, or None (nothing propagated)."""
        from inference_core.confidence import suggest_frame
        return suggest_frame(self.frame_confidence(), exclude=self.interacted_frames)

    @property
    def peak_memory_frames(self):
        """Most frames the propagation memory held at once (working + interacted frames)."""
        return self.engine.peak_memory_frames

    @property
    def load_warnings(self):
        """One-line notes from loading the video (e.g. a truncated file)."""
        return list(self.store.load_warnings)

    def soft_probabilities(self, frame):
        """Soft probabilities of a frame, float32 (K+1, H, W) with background first, or None
        where only labels exist. They come from the last scribble/click on the frame (while its
        labels still match) or from the propagation that wrote the frame."""
        t = self._check_frame(frame)
        k = self.store.num_objects
        soft = self._valid_soft(t)
        if soft is not None:
            p = soft
        elif t in self._pending:
            p = None         # labels set since the engine last wrote the frame (paint, load ...)
        else:
            p = self.engine.cached_prob(t)
            if p is not None and p.shape[0] != k + 1:
                p = None
        return None if p is None else p[:, 0].float().cpu().numpy()

    def probabilities(self, frame):
        """float32 (K+1, H, W) probabilities the propagation holds for a frame (background
        first; the one-hot of the labels where it holds no soft result; zero channels for
        objects added since). For CLIs that average or post-process passes."""
        t = self._check_frame(frame)
        p = unpad(self.engine.prob(t), self.engine.pad)[:, 0].float().numpy()
        k = self.store.num_objects
        if p.shape[0] < k + 1:
            p = np.concatenate([p, np.zeros((k + 1 - p.shape[0],) + p.shape[1:], np.float32)])
        return p

    def export(self, out_dir, formats=('png',), frames=None, fps=None, alpha=0.5, progress=None,
               should_cancel=None, overwrite=False, inputs=()):
        """Export masks at the original resolution (formats and guarantees: util.export): soft
        masks use soft_probabilities. Returns True when complete, False when cancelled."""
        from util.export import export
        return export(self.store, out_dir, formats=formats, frames=frames, fps=fps, alpha=alpha,
                      progress=progress, should_cancel=should_cancel, overwrite=overwrite,
                      inputs=inputs, soft=self.soft_probabilities)

    def existing_outputs(self, out_dir, formats=('png',)):
        """The files an `export` to out_dir would replace (ask the person before replacing)."""
        from util.export import existing_outputs
        return existing_outputs(self.store, out_dir, formats)

    # ------------------------------------------------------------------ objects
    # Every object edit is one undo step; the object list is part of the state each step saves.
    def add_object(self, name=None, color=None):
        """Add an object; returns its id. The engine picks the new channel up at the next
        propagation."""
        with self._exclusive('add an object'):
            return self._object_step('add object', lambda: self.store.add_object(name, color))

    def ensure_objects(self, n):
        """Add objects until there are at least `n` (one undo step each)."""
        n = check_int('number of objects', n, 0)
        while self.num_objects < n:
            self.add_object()

    def rename_object(self, obj_id, name):
        with self._exclusive('rename an object'):
            obj_id = self._check_object(obj_id)
            self._object_step('rename object', lambda: self.store.rename_object(obj_id, name))

    def set_object_color(self, obj_id, color):
        """color: (r, g, b) in 0..255."""
        with self._exclusive('recolour an object'):
            obj_id = self._check_object(obj_id)
            try:
                self._object_step('recolour object', lambda: self.store.set_color(obj_id, color))
            except ValueError as e:
                raise UserError(str(e)) from None

    def set_object_visible(self, obj_id, visible):
        """Show or hide an object in the views and overlays (its masks are kept and exported)."""
        with self._exclusive('show or hide an object'):
            obj_id = self._check_object(obj_id)
            if self.store.get_object(obj_id).visible != bool(visible):
                self._object_step('show object' if visible else 'hide object',
                                  lambda: self.store.set_visible(obj_id, visible))

    def remove_object(self, obj_id):
        """Remove an object from every frame (ids above it shift down). One undo step: undo
        brings back the object and its masks."""
        with self._exclusive('remove an object'):
            obj_id = self._check_object(obj_id)
            store = self.store
            action = Action('remove object', (store.height, store.width))
            action.state = self._state()
            with store.lock:
                for t in np.flatnonzero(store.nonempty_frames()).tolist():
                    labels = store.get_mask(t)
                    if (labels >= obj_id).any():
                        action.capture(t, labels, t in store.edited_frames)
            self.engine.remove_object(obj_id)
            store.remove_object(obj_id)
            self.engine.invalidate(list(action.frames))
            self.history.push(action)
            self._soft.clear()
            self._scr = None
            self._local.reset()
            self._reset_click()

    def _object_step(self, name, change):
        action = Action(name, (self.store.height, self.store.width))
        action.state = self._state()
        out = change()
        self.history.push(action)
        self._local.reset()
        return out

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
        with self._exclusive('scribble'):
            cur = self.store.get_mask(t)
            k = self.store.num_objects
            st = self._scr
            if (st is None or st.frame != t or st.num_objects != k
                    or st.revision != self.store.revision(t)):
                st = ScribbleSeq(t, cur, k)
            st.scribbles[neg] = 0
            st.scribbles[pos] = obj_id
            image, pad = self._image(t)
            prev = pad_divide_by(torch.from_numpy(st.prev_labels)[None, None], 16)[0][0, 0]
            # the scribbled object takes other objects' pixels where its strokes point (latest
            # intent wins)
            prob = self.scribbler.predict(image, prev.numpy(), st.scribbles, k, claim_for=obj_id)
            prob = unpad(prob, pad).float().cpu()
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
        with self._exclusive('scribble'):
            labels = self._local.scribble(self.store.frame(t), self.store.get_mask(t),
                                          self.store.revision(t), box, obj_id,
                                          self.store.num_objects, positive or [], negative or [],
                                          brush)
            self._apply(t, labels, 'local scribble')
            self._local.written(self.store.revision(t))
            return labels

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
        with self._exclusive('click'):
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
            labels = argmax0(prob)[0].to(torch.uint8).numpy()
            self._click_state = st
            self._apply(t, labels, 'click', soft=prob, keep_click=True, state=before)
            st.revision = self.store.revision(t)
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
        region = as_region(self.store.height, self.store.width, np.asarray(mask).astype(bool))
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
        from util.mask_io import load_masks
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

    def restore_work(self, objects, masks, edited=()):
        """Put saved work back (workspace resume): `objects` [(name, (r, g, b), visible)] for
        ids 1..N, `masks` {frame: (H, W) labels at processing size} (ids above N become
        background), `edited` the person-edited frames (one without a mask was cleared to
        background). Replaces objects and masks; the history starts again from here."""
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
            self.history.clear()
            self._pending = frozenset(edited)
            self._last = None
            self._soft.clear()
            self._scr = None
            self._local.reset()
            self._reset_click()

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

    # ------------------------------------------------------------------ online adaptation
    @property
    def can_adapt(self):
        """Whether the propagation network can be adapted (the bundled one can)."""
        return supports_adaptation(self.networks.propagation)

    @property
    def adapted_frames(self):
        """The frames the propagation network is adapted to (empty: the shipped network)."""
        return self._adapted

    def adapt(self, frames=None, iters=DEFAULT_ITERS, progress=None, should_cancel=None, seed=0):
        """Fine-tune a copy of the bundled propagation network on the current masks of `frames`
        (default: the interacted frames) and propagate with it from now on
        (inference_core/adaptation.py). Tens of seconds on a CPU; it helps most where the object
        has see-through parts or look-alikes in the background. Adapting again starts from the
        shipped network. Returns True, or False when cancelled (nothing changed)."""
        with self._exclusive('adapt the network'):
            if not self.can_adapt:
                raise UserError('online adaptation needs the bundled networks '
                                '(the official MiVOS propagation network cannot be adapted)')
            if frames is None:
                frames = self.interacted_frames
            frames = sorted({self._check_frame(t) for t in frames})
            if not frames:
                raise UserError('nothing to adapt to: draw or load a mask on a frame first')
            examples = [(np.array(self.store.frame(t)), self.store.get_mask(t)) for t in frames]
            examples = [(img, lab) for img, lab in examples if lab.any()]
            if not examples:
                raise UserError('the annotated frames have no object pixels: nothing to adapt to')
            net = adapt_propagation(self.networks.propagation, examples, iters=iters, seed=seed,
                                    progress=progress, should_cancel=should_cancel)
            if net is None:
                return False
            self.engine.set_propagation_net(net)
            self._adapted = tuple(frames)
            return True

    def reset_adaptation(self):
        """Propagate with the shipped network again."""
        with self._exclusive('reset the adaptation'):
            if self._adapted:
                self.engine.set_propagation_net(self.networks.propagation)
                self._adapted = ()

    # ------------------------------------------------------------------ history
    @property
    def can_undo(self):
        return self.history.can_undo

    @property
    def can_redo(self):
        return self.history.can_redo

    def undo(self):
        """Undo the last edit or propagation. Returns the frames that changed ([] if nothing)."""
        with self._exclusive('undo'):
            action = self.history.pop_undo()
            if action is None:
                return []
            now = self._state()
            self._restore_objects(action.state.objects, action.name == 'remove object')
            changed, state = action.swap(self.store, now)
            self._restore(state, changed)
            self.history.push_redo(action)
            return changed

    def redo(self):
        """Redo the last undone step. Returns the frames that changed ([] if nothing)."""
        with self._exclusive('redo'):
            action = self.history.pop_redo()
            if action is None:
                return []
            now = self._state()
            self._restore_objects(action.state.objects, action.name == 'remove object')
            changed, state = action.swap(self.store, now)
            self._restore(state, changed)
            self.history.push_undo(action)
            return changed

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

    def _state(self):
        cs, ctrl = self._click_state, self._click
        click = (cs, ctrl.snapshot()) if cs is not None and ctrl is not None else None
        return SavedState(self._pending, self.engine.interacted, self._last,
                          self.store.objects_snapshot(), click, dict(self.engine.confidence),
                          dict(self.engine.source))

    def _restore_objects(self, objects, removal=False):
        """Put back the object list of a saved state (before its labels: they may use ids that
        come back). `removal`: the step undone/redone removed an object, so the memory's
        channels no longer match the ids; the memory restarts and its frames are committed
        again from their labels by the next propagate."""
        if objects == self.store.objects_snapshot():
            return
        n = len(objects)
        self.store.restore_objects(objects)
        if removal:
            self._pending = self._pending | self.engine.interacted
            self.engine.reset()
            self._soft.clear()
        else:
            # an added object comes or goes at the end; one that goes has no pixels left
            # anywhere (linear history), so dropping its channel keeps the memory valid
            for k in range(self.engine.num_objects, n, -1):
                self.engine.remove_object(k)
        self._local.reset()

    def _restore(self, state, changed):
        self.engine.invalidate(changed)
        for saved, now in ((state.confidence, self.engine.confidence),
                           (state.source, self.engine.source)):
            for t in changed if saved is not None else ():
                if t in saved:
                    now[t] = saved[t]
        for f in self.engine.interacted - state.interacted:
            self.engine.forget(f)
        # frames committed in that state but no longer in memory are re-committed on propagate
        self._pending = state.pending | (state.interacted - self.engine.interacted)
        self._last = state.last
        for t in changed:
            self._soft.pop(t, None)
        self._scr = None
        self._restore_clicks(state.click)

    def _restore_clicks(self, saved):
        """After undo/redo: the click controller returns to the sequence in effect in that state
        (its own snapshot, from the one history), so the next click continues it."""
        if saved is None or saved[0].key[2] != self.store.num_objects:
            self._reset_click()
            return
        seq, snap = saved
        ctrl = self._click_controller()
        ctrl.restore(snap)
        self._click_state = seq
        t = seq.key[0]
        seq.revision = self.store.revision(t)
        if ctrl.num_clicks and ctrl.result is not None:
            # the soft mask propagation uses: the labels now are the ones this click made
            self._soft[t] = (self._click_probs(seq, ctrl, ctrl.result), seq.revision)

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
        """The one-frame session local refinement runs in (same networks, small history)."""
        sub = Session.from_frames(frames, storage='memory', num_objects=num_objects,
                                  networks=self.networks, amp=self.amp, history_bytes=16 << 20)
        return sub

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
            self._click = ClickController(self.networks, self.device, amp_dtype=self._amp_dtype)
        return self._click

    # ------------------------------------------------------------------ adapted elsewhere
    def use_adapted_network(self, net, frames):
        """Propagate with `net`, a copy of the propagation network adapted to the masks of
        `frames` outside this session (inference_core.adaptation.adapt_propagation; e.g. one
        copy that the two sessions of a `scripts.propagate --flip --adapt` run share). What
        `adapt` does after its training: the memory's keys are recomputed, `adapted_frames`
        becomes `frames` and `reset_adaptation` goes back to the shipped network."""
        frames = sorted({self._check_frame(t) for t in frames})
        if not frames:
            raise UserError('use_adapted_network needs the frames the network was adapted to')
        with self._exclusive('adapt the network'):
            if not self.can_adapt:
                raise UserError('online adaptation needs the bundled networks '
                                '(the official MiVOS propagation network cannot be adapted)')
            self.engine.set_propagation_net(net)
            self._adapted = tuple(frames)
