"""Session: the headless interactive-segmentation API of the GUI, the CLIs, notebooks and tests.

    from inference_core.session import Session

    s = Session.open('video.mp4', resolution=480)          # or Session.from_frames(array)
    obj = s.add_object('dog')                               # object ids are 1..N
    s.scribble(0, obj, positive=[[(120, 80), (160, 95)]])   # polylines (x, y) at processing size
    s.scribble(0, obj, negative=[[(20, 20), (40, 30)]])     # refine; negative = background
    s.click(0, obj, x=150, y=90)                            # or clicks, or s.add_box(0, obj, box)
    for t, labels in s.propagate_in_video():                # frames as they finish (break: stop)
        print(t, labels.max())
    s.paint(30, obj, bool_mask, erase=True)                 # fix frame 30 by hand ...
    s.propagate(30)                                         # ... fused with frame 0's result
    labels = s.get_mask(42)                                 # (H, W) uint8, 0 = background
    s.undo(); s.redo()                                      # one step (a click: its sequence too)
    s.export('out/', ('png', 'coco'))                       # at the original resolution

Prompts change a frame's labels at once, mark the frame as person-edited and make it "pending";
propagating commits every pending frame to the engine's memory and propagates from one of them
(default: the last one interacted with) in the requested direction, up to the nearest other
interacted frame (fusing the results in between, as MiVOS does).

The public surface is small on purpose (docs/ARCHITECTURE.md, "Public Session API"; pinned by
tests/test_architecture.py); its parts are private collaborators: session_view.py (reads),
session_edits.py (writes), session_prompts.py, session_history.py, session_adaptation.py.
Propagation may run in a worker thread while the GUI reads masks; edits attempted meanwhile
raise UserError (cancel with `should_cancel` or by closing the propagate_in_video generator).
"""
import numpy as np
import torch

from inference_core import store_io
from inference_core.adaptation import DEFAULT_ITERS as DEFAULT_ADAPT_STEPS
from inference_core.box_prompt import check_box
from inference_core.engine import (DEFAULT_FEATURE_CACHE_BYTES, DEFAULT_PROB_CACHE_BYTES,
                                   DIRECTIONS, PropagationEngine, drain)
from inference_core.interaction import as_region, finite_mask, paint_labels, set_object_region
from inference_core.local_refine import region_box
from inference_core.memory_bank import DEFAULT_LONG_TERM_FRAMES, DEFAULT_WORKING_FRAMES
from inference_core.session_adaptation import Adaptation
from inference_core.session_edits import Edits
from inference_core.session_history import Undo
from inference_core.session_prompts import Prompts
from inference_core.session_view import SessionView
from inference_core.session_state import Pending, SessionEvent, check_int, check_number
from inference_core.store import FrameStore
from util.cpu_threads import check_policy, interaction_threads
from util.device import amp_dtype
from util.errors import UserError

__all__ = ['Session', 'SessionEvent', 'DEFAULT_ADAPT_STEPS', 'DEFAULT_LONG_TERM_FRAMES',
           'DEFAULT_WORKING_FRAMES']


class Session(SessionView):
    """One video with its masks, objects, networks, propagation memory and undo history.

    store: inference_core.store.FrameStore (Session.open / from_frames make one). networks:
    inference_core.networks.Networks or None (load with `model` / `saves_dir` / `device`).
    amp: None = fp16 autocast on CUDA, off on CPU. `history_bytes` bounds undo/redo memory.
    Memory of a pass: `working_frames` recent frames + a long-term memory of `long_term_frames`
    frames' worth of prototypes (the bounded default; working_frames=None is MiVOS's unbounded
    memory, max_memory_frames the expert cap; see inference_core/memory_bank.py).
    keep_confident: a correction's pass does not simply overwrite frames that already hold a
    result it is less sure of (PropagationEngine; False = MiVOS: the newest pass always wins).
    zoom_corrections: corrective strokes on small objects are segmented on an enlarged crop
    (inference_core/scribble_zoom.py). zoom_small_objects: small objects also get an
    object-centred zoomed pass (inference_core/small_object_zoom.py; bundled networks only).
    gate_regions: each object's propagated result is kept near its previous-frame mask
    (inference_core/region_gate.py; bundled networks only).
    interaction_threads: intra-op threads of clicks, strokes and boxes on a CPU: 'auto' (no
    more than the cores the rest of the machine leaves free), an int, or None (torch's setting);
    see util/cpu_threads.py. Propagation keeps torch's setting.
    """

    def __init__(self, store, networks=None, device='auto', mem_freq=5, top_k=20,
                 max_memory_frames=None, amp=None, *, model='auto', saves_dir='saves',
                 prob_dtype='uint8', prob_cache_bytes=DEFAULT_PROB_CACHE_BYTES,
                 feature_cache_bytes=DEFAULT_FEATURE_CACHE_BYTES, history_bytes=256 << 20,
                 working_frames=DEFAULT_WORKING_FRAMES, long_term_frames=DEFAULT_LONG_TERM_FRAMES,
                 keep_confident=True, zoom_corrections=True, zoom_small_objects=True,
                 gate_regions=True, interaction_threads='auto'):
        try:
            self._threads = check_policy(interaction_threads)
        except ValueError as e:
            raise UserError(str(e)) from None
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
        self._networks = networks
        self._device = torch.device(networks.device)
        self._amp = ('fp16' if self._device.type == 'cuda' else False) if amp is None else amp
        engine = PropagationEngine(networks, store, mem_freq=mem_freq, top_k=top_k,
                                   max_memory_frames=max_memory_frames, amp=self._amp,
                                   device=self._device, prob_dtype=prob_dtype,
                                   prob_cache_bytes=prob_cache_bytes,
                                   feature_cache_bytes=feature_cache_bytes,
                                   working_frames=working_frames, long_term_frames=long_term_frames,
                                   keep_confident=keep_confident,
                                   zoom_small_objects=zoom_small_objects,
                                   gate_regions=gate_regions)
        prompts = Prompts(store, networks, self._device, amp_dtype(self._amp, self._device),
                          zoom_corrections, self._local_session)
        super().__init__(store, engine, Pending(store.edited_frames), prompts)
        self._undo = Undo(history_bytes, store, engine, prompts, self._pending)
        self._edits = Edits(store, engine, prompts, self._undo, self._pending)
        self._adaptation = Adaptation(engine, networks.propagation)

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def open(cls, path, resolution=480, masks=None, networks=None, *, storage='auto',
             num_objects=0, progress=None, should_cancel=None, **kwargs):
        """Load a video file or image folder (shorter side -> `resolution`, -1 = original), with
        optional masks (folder / PNG / list of PNGs / COCO or YouTube-VIS JSON, see `load_masks`)
        and at least `num_objects` objects. Returns None when cancelled while loading."""
        store = store_io.open_frames(path, resolution=resolution, storage=storage,
                                     progress=progress, should_cancel=should_cancel)
        if store is None:
            return None
        try:
            store.ensure_objects(num_objects)
            if masks is not None:
                store_io.load_masks(store, masks)
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
        self._store.remove_listener(self._on_frames)
        self._store.remove_object_listener(self._on_objects)
        self._prompts.local.reset()
        self._engine.reset()
        self._engine.clear_feature_cache()
        self._undo.clear()
        self._prompts.soft.clear()
        self._store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ objects
    # Every object edit is one undo step; the object list is part of the state each step saves.
    def add_object(self, name=None, color=None):
        """Add an object; returns its id. The engine picks the new channel up at the next
        propagation."""
        with self._exclusive('add an object'):
            return self._edits.object_step('add object',
                                           lambda: self._store.add_object(name, color))

    def ensure_objects(self, n):
        """Add objects until there are at least `n` (one undo step each)."""
        n = check_int('number of objects', n, 0)
        while self.num_objects < n:
            self.add_object()

    def set_object(self, obj_id, *, name=None, color=None, visible=None):
        """Rename an object, recolour it ((r, g, b) in 0..255) and/or show or hide it in the
        views and overlays (a hidden object's masks are kept and exported). Each change is one
        undo step; showing a shown object changes nothing."""
        store = self._store
        if name is not None:
            with self._exclusive('rename an object'):
                obj_id = self._check_object(obj_id)
                self._edits.object_step('rename object',
                                        lambda: store.rename_object(obj_id, name))
        if color is not None:
            with self._exclusive('recolour an object'):
                obj_id = self._check_object(obj_id)
                try:
                    self._edits.object_step('recolour object',
                                            lambda: store.set_color(obj_id, color))
                except ValueError as e:
                    raise UserError(str(e)) from None
        if visible is not None:
            with self._exclusive('show or hide an object'):
                obj_id = self._check_object(obj_id)
                if store.get_object(obj_id).visible != bool(visible):
                    self._edits.object_step('show object' if visible else 'hide object',
                                            lambda: store.set_visible(obj_id, visible))

    def remove_object(self, obj_id):
        """Remove an object from every frame (ids above it shift down). One undo step: undo
        brings back the object and its masks."""
        with self._exclusive('remove an object'):
            self._edits.remove_object(self._check_object(obj_id))

    # ------------------------------------------------------------------ prompts
    def scribble(self, frame, obj_id, positive=None, negative=None, brush=3, *, region=None,
                 zoom=None):
        """Scribble-to-mask on a frame. positive/negative: polylines [(x, y), ...] (or a list of
        them) drawn with a `brush`-pixel brush, or bool masks of the frame size. Positive strokes
        belong to obj_id, negative ones to the background. Strokes accumulate on the frame until
        its labels are changed by something else. `region` = (x0, y0, x1, y1): local refinement,
        the strokes (polylines) segment that region only, enlarged to the processing size first
        (inference_core/local_refine.py). `zoom`: segment corrections of small objects on an
        enlarged crop (None: the session's zoom_corrections). Returns the new label map."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        h, w = self._store.height, self._store.width
        if region is not None:
            box = region_box(region, h, w)
            if not positive and not negative:
                raise UserError('empty scribble: draw at least one stroke inside the region')
            with self._exclusive('scribble'), self._interaction_threads():
                labels = self._prompts.region(t, obj_id, box, positive, negative, brush)
                self._edits.apply(t, labels, 'local scribble')
                self._prompts.written_region(t)
                return labels
        pos = as_region(h, w, positive, brush)
        neg = as_region(h, w, negative, brush)
        if not pos.any() and not neg.any():
            raise UserError('empty scribble: draw at least one stroke inside the frame')
        with self._exclusive('scribble'), self._interaction_threads():
            labels, prob, seq = self._prompts.scribble(t, obj_id, pos, neg, zoom)
            self._edits.apply(t, labels, 'scribble', soft=prob)
            self._prompts.scribbled(seq)
            return labels

    def click(self, frame, obj_id, x, y, positive=True):
        """A positive/negative click at (x, y) for obj_id (f-BRS with the official weights, the
        bundled interaction net otherwise). Clicks accumulate on the frame like scribbles.
        Returns the new label map."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        x, y = check_number('click x', x), check_number('click y', y)
        if not (0 <= x < self._store.width and 0 <= y < self._store.height):
            raise UserError(f'click ({x}, {y}) is outside the {self._store.width}x'
                            f'{self._store.height} frame')
        with self._exclusive('click'), self._interaction_threads():
            self._prompts.controller()
            before = self._undo.state()
            labels, prob, seq = self._prompts.click(t, obj_id, float(x), float(y), bool(positive))
            self._edits.apply(t, labels, 'click', soft=prob, keep_clicks=True, state=before)
            self._prompts.clicked(seq)
            return labels

    def add_box(self, frame, obj_id, box):
        """A box prompt: the mask of the object inside `box` = (x0, y0, x1, y1) (frame
        coordinates, corners in any order) replaces obj_id's mask on the frame; nothing of the
        object is left outside the box (inference_core/box_prompt.py). Other objects keep their
        pixels except in the part of the new mask at the box's centre. One undo step; clicks and
        strokes after it refine the mask. Returns the new label map."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        box = check_box(box, self._store.height, self._store.width)
        with self._exclusive('box'), self._interaction_threads():
            labels, prob = self._prompts.box(t, obj_id, box)
            self._edits.apply(t, labels, 'box', soft=prob)
            return labels

    def paint(self, frame, obj_id, mask, erase=False, brush=3):
        """Free brush: paint `mask` (bool array or polylines drawn with `brush`) with obj_id, or
        with erase=True remove obj_id there (obj_id 0 erases every object). Returns labels."""
        t = self._check_frame(frame)
        if not (erase and not obj_id):
            obj_id = self._check_object(obj_id)
        region = as_region(self._store.height, self._store.width, mask, brush)
        with self._exclusive('paint'):
            labels = paint_labels(self._store.get_mask(t), obj_id, region, erase)
            self._edits.apply(t, labels, 'erase' if erase else 'paint')
            return labels

    def set_object_mask(self, frame, obj_id, mask):
        """Replace obj_id's mask on a frame by a bool mask of the frame size."""
        t = self._check_frame(frame)
        obj_id = self._check_object(obj_id)
        region = as_region(self._store.height, self._store.width,
                           finite_mask(mask).astype(bool))
        with self._exclusive('set a mask'):
            labels = set_object_region(self._store.get_mask(t), obj_id, region)
            self._edits.apply(t, labels, 'set mask')
            return labels

    def set_labels(self, frame, labels):
        """Replace a frame's whole label map ((H, W), ids 0..num_objects)."""
        t = self._check_frame(frame)
        labels = np.asarray(labels)
        store = self._store
        if labels.shape != (store.height, store.width):
            raise UserError(f'label map is {labels.shape[-1]}x{labels.shape[0]}, the frame is '
                            f'{store.width}x{store.height}')
        if labels.size and (labels.min() < 0 or labels.max() > store.num_objects):
            raise UserError(f'label map has ids up to {int(labels.max())} but only '
                            f'{store.num_objects} objects exist (add objects first)')
        with self._exclusive('set labels'):
            labels = labels.astype(np.uint8)
            self._edits.apply(t, labels, 'set labels')
            return labels

    def load_masks(self, masks, progress=None, should_cancel=None):
        """Load mask PNGs (a folder, one PNG or a list of PNGs; any subset of frames) or a COCO /
        YouTube-VIS JSON as ONE undo step (inference_core/store_io.load_masks). Objects up to
        the largest id are created (undo keeps them); the loaded frames become edited and
        pending. Returns the sorted frames loaded, or None when cancelled (nothing changed)."""
        with self._exclusive('load masks'):
            return self._edits.load_masks(masks, progress, should_cancel)

    def reset_frame(self, frame):
        """Clear a frame: all background, not edited, removed from the memory."""
        t = self._check_frame(frame)
        with self._exclusive('reset a frame'):
            self._edits.reset_frame(t)

    def end_interaction(self, frame=None):
        """Finish the current scribble/click sequence (MiVOS 'commit'): the next strokes or
        clicks start a new interaction from the frame's current mask."""
        if frame is not None:
            frame = self._check_frame(frame)
        self._prompts.end(frame)

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
                self._prompts.prepare(t)
            return True
        finally:
            self._run_lock.release()

    # ------------------------------------------------------------------ propagation
    def propagate_in_video(self, frame=None, direction='both', end=None, progress=None,
                           should_cancel=None):
        """Propagate, as a generator of (frame index, labels (H, W) uint8) in the order the
        frames are written. Commits the pending prompts and propagates from `frame` (default:
        the last frame interacted with); `direction`: 'both' | 'forward' | 'backward'; `end`:
        last frame to process on its side. progress(done, total) is called after each frame.
        Its value when exhausted (what `propagate` returns) is True, or False when
        should_cancel() stopped it. Stopping early (close() it, or break out of a for loop over
        it) stops the work between frames, as a cancel does: the frames written keep their new
        labels (one undo step restores them) and the session is free again. The session is
        busy while the generator is suspended."""
        with self._exclusive('propagate'):
            if self._store.num_objects < 1:
                raise UserError('there are no objects to propagate: add an object first')
            t = self._edits.default_frame() if frame is None else self._check_frame(frame)
            if t is None:
                raise UserError('nothing to propagate: draw or load a mask on a frame first')
            if direction not in DIRECTIONS:
                raise UserError(f'direction must be one of {", ".join(DIRECTIONS)}, '
                                f'got {direction!r}')
            if end is not None:
                end = self._check_frame(end)
            self._engine.pass_ranges(t, direction, end)    # validates end before any change
            return (yield from self._edits.propagate(t, direction, end, progress, should_cancel))

    def propagate(self, frame=None, direction='both', end=None, progress=None,
                  should_cancel=None):
        """`propagate_in_video` run to its end (the GUI's and the CLIs' path). Returns True when
        done, False when cancelled (frames already written keep their new labels; undo restores
        them)."""
        return drain(self.propagate_in_video(frame, direction, end, progress, should_cancel))

    def release_memory(self):
        """Free the propagation memory and caches (masks, objects and history stay). Frames
        committed to the memory are committed again from their labels by the next propagate."""
        with self._exclusive('release memory'):
            self._edits.release_memory()

    # ------------------------------------------------------------------ undo / redo
    can_undo = property(lambda self: self._undo.can_undo)
    can_redo = property(lambda self: self._undo.can_redo)
    undo_steps = property(lambda self: self._undo.steps,
                          doc='How many steps undo can go back (older ones may be dropped).')

    def undo(self):
        """Undo the last edit or propagation. Returns the frames that changed ([] if nothing)."""
        with self._exclusive('undo'):
            return self._undo.swap('undo')

    def redo(self):
        """Redo the last undone step. Returns the frames that changed ([] if nothing)."""
        with self._exclusive('redo'):
            return self._undo.swap('redo')

    # ------------------------------------------------------------------ online adaptation
    can_adapt = property(lambda self: self._adaptation.supported,
                         doc='Whether the propagation network can be adapted (the bundled can).')
    adapted_frames = property(lambda self: self._adaptation.frames,
                              doc='The frames the propagation network is adapted to (empty: the '
                                  'shipped network).')

    def adapt(self, frames=None, iters=DEFAULT_ADAPT_STEPS, progress=None, should_cancel=None,
              seed=0, *, labels=None, share_with=()):
        """Fine-tune a copy of the bundled propagation network on the masks of `frames`
        (default: the interacted frames) and propagate with it from now on
        (inference_core/adaptation.py). Tens of seconds on a CPU; it helps most where the object
        has see-through parts or look-alikes in the background. Adapting again starts from the
        shipped network. `labels`: {frame: (H, W) labels} to adapt to instead of the frames'
        current masks (default frames: its keys). `share_with`: other sessions (e.g. on the
        mirrored video of a --flip run) that propagate with the same adapted copy.
        Returns True, or False when cancelled (nothing changed)."""
        with self._exclusive('adapt the network'):
            self._adaptation.check()
            if frames is None:
                frames = self.interacted_frames if labels is None else list(labels)
            frames = sorted({self._check_frame(t) for t in frames})
            if not frames:
                raise UserError('nothing to adapt to: draw or load a mask on a frame first')
            examples = self._adaptation.examples(self._store, frames, labels)
            net = self._adaptation.train(examples, iters, seed, progress, should_cancel)
            if net is None:
                return False
            self._adaptation.use(net, frames)
        for other in share_with:
            with other._exclusive('adapt the network'):
                other._adaptation.check()
                other._adaptation.use(net, [other._check_frame(t) for t in frames])
        return True

    def reset_adaptation(self):
        """Propagate with the shipped network again."""
        with self._exclusive('reset the adaptation'):
            self._adaptation.reset()

    # ------------------------------------------------------------------ saved work
    def restore_work(self, objects, masks, edited=(), record=None):
        """Put saved work back (workspace resume): `objects` [(name, (r, g, b), visible)] for
        ids 1..N, `masks` {frame: (H, W) labels at processing size} (ids above N become
        background), `edited` the person-edited frames (one without a mask was cleared to
        background), `record` the saved propagation_record() (per-frame confidence and source:
        the timeline strip, `N`, and the combination of the next correction with these results
        carry on; entries that do not fit the restored work are ignored). Replaces objects and
        masks; the history starts again from here."""
        with self._exclusive('restore saved work'):
            self._edits.restore_work(objects, masks, edited, record)

    # ------------------------------------------------------------------ internals
    def _interaction_threads(self):
        """The intra-op threads of an interactive call (util/cpu_threads.py)."""
        return interaction_threads(self._threads, self._device)

    def _local_session(self, frames, num_objects):
        """The one-frame session local refinement runs in (same networks, small history; the
        person chose the region, so no further zoom inside it)."""
        return Session.from_frames(frames, storage='memory', num_objects=num_objects,
                                   networks=self._networks, amp=self._amp,
                                   history_bytes=16 << 20, zoom_corrections=False,
                                   interaction_threads=self._threads)
