"""The read side of a Session: its video, masks, objects, confidence and exports, as snapshots
safe to take while a propagation writes. Session (inference_core/session.py) adds the verbs.
"""
import contextlib
import threading

import numpy as np

from inference_core import store_io
from inference_core.padding import unpad
from inference_core.session_state import Listeners, SessionEvent
from inference_core.store import ObjectInfo
from util.errors import UserError


class SessionView:
    """Reads of a Session's state (its store, engine, pending frames (session_state.Pending)
    and prompts (session_prompts.Prompts)), its change events, and the lock its edits hold."""

    def __init__(self, store, engine, pending, prompts):
        self._store = store
        self._engine = engine
        self._pending = pending
        self._prompts = prompts
        self._closed = False
        self._run_lock = threading.Lock()       # held by every edit and propagation
        self._listeners = Listeners()
        store.add_listener(self._on_frames)
        store.add_object_listener(self._on_objects)

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

    # ------------------------------------------------------------------ the video (reads)
    num_frames = property(lambda self: self._store.num_frames)
    height = property(lambda self: self._store.height, doc='Processing height (frames, labels).')
    width = property(lambda self: self._store.width)
    orig_height = property(lambda self: self._store.orig_height,
                           doc='Height of the original video (exports are written at it).')
    orig_width = property(lambda self: self._store.orig_width)
    source = property(lambda self: self._store.source,
                      doc="The video file or image folder opened ('' when built from frames).")
    fps = property(lambda self: self._store.fps)

    @property
    def timestamps(self):
        """Presentation time of each frame in seconds from the start of the video stream (a list
        of floats, a copy), as decoded from a video file; None for image folders, frames built
        in memory, and videos whose frames do not all carry a timestamp. The review video and
        the COCO / YouTube-VIS exports use these times."""
        ts = self._store.timestamps
        return None if ts is None else [float(t) for t in ts]

    frame_names = property(lambda self: list(self._store.frame_names),
                           doc='Per-frame names used for exported files.')
    load_warnings = property(lambda self: list(self._store.load_warnings),
                             doc='One-line notes from loading the video (e.g. a truncated file).')
    storage = property(lambda self: self._store.storage,
                       doc="'memory' or 'disk': where the frames and masks are kept.")
    peak_memory_frames = property(
        lambda self: self._engine.peak_memory_frames,
        doc='Most frames the propagation memory held at once (working + interacted frames).')

    def frame(self, t):
        """Frame t, (H, W, 3) uint8 RGB at processing size, read-only."""
        return self._store.frame(self._check_frame(t))

    # ------------------------------------------------------------------ masks (reads)
    def get_mask(self, frame, original=False):
        """Label map (H, W) uint8 of a frame (a copy; safe during propagation); original=True:
        at the original video size (nearest neighbour)."""
        t = self._check_frame(frame)
        return self._store.mask_at_original(t) if original else self._store.get_mask(t)

    def label_at(self, frame, x, y):
        """Object id at pixel (x, y) of a frame (0 outside the frame)."""
        t = self._check_frame(frame)
        if not (0 <= x < self._store.width and 0 <= y < self._store.height):
            return 0
        return self._store.label_at(t, int(x), int(y))

    def probabilities(self, frame):
        """float32 (K+1, H, W) probabilities the propagation holds for a frame (background
        first; the one-hot of the labels where it holds no soft result; zero channels for
        objects added since). For CLIs that average or post-process passes."""
        t = self._check_frame(frame)
        p = unpad(self._engine.prob(t), self._engine.pad)[:, 0].float().numpy()
        k = self._store.num_objects
        if p.shape[0] < k + 1:
            p = np.concatenate([p, np.zeros((k + 1 - p.shape[0],) + p.shape[1:], np.float32)])
        return p

    @property
    def edited_frames(self):
        """Frames a person edited (sorted; a snapshot taken under the store's lock)."""
        return self._store.edited_snapshot()

    @property
    def interacted_frames(self):
        """Frames the person interacted with (committed to memory or pending), sorted."""
        return sorted(self._engine.interacted | self._pending.frames)

    def frames_with_masks(self):
        """(T,) bool: which frames hold any object pixel (kept up to date on every write)."""
        return self._store.nonempty_frames()

    def frame_confidence(self):
        """(T,) float: how sure the propagation is of each frame, in [0, 1] (1 for frames a
        person interacted with; NaN where nothing was propagated or the labels were edited
        since). See inference_core/confidence.py."""
        c = np.full(self._store.num_frames, np.nan)
        for t, v in list(self._engine.confidence.items()):
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
    def busy(self):
        """True while a propagation (or another edit) is running."""
        return self._run_lock.locked()

    @property
    def active_clicks(self):
        """(frame, obj_id, [(x, y, positive), ...]): the clicks in effect that the next click on
        that frame and object continues (after undo/redo too), or None."""
        return self._prompts.active_clicks()

    # ------------------------------------------------------------------ objects
    @property
    def num_objects(self):
        return self._store.num_objects

    @property
    def objects(self):
        """The objects, as a list of copies (ObjectInfo: id, name, color, visible)."""
        return [ObjectInfo(i, n, c, v) for i, n, c, v in self._store.objects_snapshot()]

    def get_object(self, obj_id):
        """ObjectInfo (a copy) of one object."""
        return self.objects[self._check_object(obj_id) - 1]

    def colors(self):
        """(256, 3) uint8 colour table indexed by object id (0 black)."""
        return self._store.colors()

    # ------------------------------------------------------------------ exports
    def export(self, out_dir, formats=('png',), frames=None, fps=None, alpha=0.5, progress=None,
               should_cancel=None, overwrite=False, inputs=(), coco_images='write', labels=None,
               soft=None):
        """Export masks at the original resolution (formats and guarantees: util.export): soft
        masks use the last prompt's or the propagation's probabilities. coco_images: 'write'
        the frames that the COCO / YouTube-VIS files name next to them, or 'source' (an image
        folder: point at its files). labels(t) -> (orig_height, orig_width) uint8 and
        soft(t) -> (K+1, h, w) probabilities export other label maps and probabilities of this
        video instead of the session's (a CLI that computed them at full resolution or averaged
        several runs). Returns True when complete, False when cancelled."""
        self._check_open()            # a closed session: UserError, and no folder is created
        return store_io.export_store(self._store, out_dir, formats, labels=labels,
                                     soft=soft or self._soft_probabilities, frames=frames,
                                     fps=fps, alpha=alpha, progress=progress,
                                     should_cancel=should_cancel, overwrite=overwrite,
                                     inputs=inputs, coco_images=coco_images)

    def export_paths(self, formats=('png',), coco_images='write', out_dir='.'):
        """The files an `export` of `formats` writes, relative to its folder (out_dir matters
        only for coco_images='source', where nothing is written for the images)."""
        return store_io.export_paths(self._store, formats, coco_images, out_dir)

    def existing_outputs(self, out_dir, formats=('png',), inputs=()):
        """The files an `export` to out_dir would replace (ask the person before replacing).
        Raises UserError first, creating nothing, when the export would write into or over
        the video's frames or one of `inputs` (as `export` would)."""
        self._check_open()
        return store_io.existing_outputs(self._store, out_dir, formats, inputs)

    def _soft_probabilities(self, frame):
        """float32 (K+1, H, W) of a frame from its last prompt (while its labels still match)
        or the propagation that wrote it; None where only labels exist (exports' soft masks)."""
        t = self._check_frame(frame)
        k = self._store.num_objects
        p = self._prompts.valid_soft(t)
        if p is None and t not in self._pending.frames:
            # (pending frames without a prompt's result: labels set since the engine wrote them)
            p = self._engine.cached_prob(t)
            if p is not None and p.shape[0] != k + 1:
                p = None
        return None if p is None else p[:, 0].float().cpu().numpy()

    # ------------------------------------------------------------------ saved work
    def propagation_record(self):
        """{'confidence': {frame: float}, 'source': {frame: interacted frame}} of the propagated
        frames: what restore_work needs to carry on after a restart (JSON-friendly values)."""
        eng = self._engine
        return {'confidence': {int(t): float(c) for t, c in eng.confidence.items()},
                'source': {int(t): int(f) for t, f in eng.source.items()}}

    # ------------------------------------------------------------------ checks
    def _check_open(self):
        if self._closed:
            raise UserError('session is closed')

    def _check_frame(self, t):
        self._check_open()
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise UserError(f'frame must be an integer, got {t!r}')
        t = int(t)
        if not 0 <= t < self._store.num_frames:
            raise UserError(f'frame {t} is out of range (0..{self._store.num_frames - 1})')
        return t

    def _check_object(self, obj_id):
        if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)):
            raise UserError(f'object id must be an integer, got {obj_id!r}')
        obj_id = int(obj_id)
        n = self._store.num_objects
        if not 1 <= obj_id <= n:
            if n == 0:
                raise UserError('there are no objects yet: add an object first')
            raise UserError(f'no object {obj_id} (objects are 1..{n})')
        return obj_id
