"""FrameStore: the one store of frames, label masks and objects of a video.

Frames are RGB uint8 at processing resolution; label masks are uint8 (0 = background, 1..N).
Object ids are always contiguous 1..num_objects: removing an object clears its pixels and shifts
the higher ids down by one, so the engine can use K = num_objects channels directly.

Storage:
  'memory'  numpy arrays in RAM.
  'disk'    frames and masks live in np.memmap files in a private temp dir, removed on close()
            or garbage collection. Frames are written with plain file writes (so loading does not
            map every page into this process) and then mapped read-only.
  'auto'    'disk' when the raw frames exceed `memory_budget` bytes (1 GiB by default).

Thread-safety: the GUI reads masks while a worker thread propagates. Mask reads/writes that go
through get_mask/set_mask (and the object edits) hold `self.lock` (an RLock); listeners are
called after the lock is released. `masks` is exposed for bulk readers; hold `store.lock` while
reading it if another thread may be writing.
"""
import os
import tempfile
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from inference_core.store_files import cleanup_dir, collect_frames, read_into
from util.labels import resize_labels

DEFAULT_MEMORY_BUDGET = 1 << 30      # 1 GiB of raw frames before 'auto' goes to disk
MAX_OBJECTS = 255


@dataclass
class ObjectInfo:
    id: int
    name: str
    color: tuple
    visible: bool = True


def _default_color(obj_id):
    from util.palette import davis_palette
    return tuple(int(c) for c in davis_palette()[obj_id])


class FrameStore:
    """Frames + label masks + objects. See module docstring and docs/ARCHITECTURE.md."""

    def __init__(self, frames=None, *, orig_size=None, storage='auto', num_frames=None,
                 height=None, width=None, source='', frame_names=None,
                 memory_budget=DEFAULT_MEMORY_BUDGET, _frames_file=None):
        """`frames`: (T,H,W,3) uint8 array, or None to start with black frames of
        (num_frames, height, width). `orig_size`: (h, w) of the original video (defaults to the
        processing size). `frame_names`: per-frame stems used to name exports (default 00000..)."""
        if storage not in ('auto', 'memory', 'disk'):
            raise ValueError(f"storage must be 'auto', 'memory' or 'disk', got {storage!r}")
        if frames is not None:
            frames = np.asarray(frames)
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
                raise ValueError(f'frames must be (T,H,W,3) uint8, got {frames.shape} {frames.dtype}')
            num_frames, height, width = frames.shape[:3]
        elif _frames_file is None and None in (num_frames, height, width):
            raise ValueError('give either frames or num_frames, height and width')
        if num_frames < 1 or height < 1 or width < 1:
            raise ValueError(f'empty store: {num_frames} frames of {height}x{width}')
        self.num_frames, self.height, self.width = int(num_frames), int(height), int(width)
        if orig_size is None:
            orig_size = (self.height, self.width)
        self.orig_height, self.orig_width = int(orig_size[0]), int(orig_size[1])
        self.source = str(source)
        self.fps = None                 # frames per second when loaded from a video
        self.timestamps = None          # per-frame presentation times (s) of a video, else None
        self.load_warnings = []         # one-line notes from loading (e.g. a truncated video)
        if frame_names is None:
            frame_names = [f'{i:05d}' for i in range(self.num_frames)]
        if len(frame_names) != self.num_frames:
            raise ValueError(f'{len(frame_names)} frame names for {self.num_frames} frames')
        self.frame_names = list(frame_names)

        raw = self.num_frames * self.height * self.width * 3
        if storage == 'auto':
            storage = 'disk' if (raw > memory_budget or _frames_file is not None) else 'memory'
        self.storage = storage
        self.lock = threading.RLock()
        self._listeners = []
        self._object_listeners = []
        self._tmpdir = None
        self._finalizer = None
        self.edited_frames = set()
        self.objects = []
        self._init_bookkeeping()

        shape = (self.num_frames, self.height, self.width)
        self._ffile = self._mfile = None
        self._io_lock = threading.Lock()
        if storage == 'disk':
            self._tmpdir = _frames_file and os.path.dirname(_frames_file) or \
                tempfile.mkdtemp(prefix='ivos_store_')
            self._files = []
            self._finalizer = weakref.finalize(self, cleanup_dir, self._tmpdir, self._files)
            fpath = _frames_file or os.path.join(self._tmpdir, 'frames.u8')
            if _frames_file is None:
                with open(fpath, 'wb') as f:
                    if frames is not None:
                        for t in range(self.num_frames):
                            f.write(np.ascontiguousarray(frames[t]).tobytes())
                    else:
                        f.truncate(raw)
            mpath = os.path.join(self._tmpdir, 'masks.u8')
            with open(mpath, 'wb') as f:
                f.truncate(self.num_frames * self.height * self.width)   # sparse zeros
            # frame()/get_mask()/set_mask() go through unbuffered file I/O (the page cache is
            # shared with the maps, so both views agree) and keep this process's RSS small;
            # the memmaps are for bulk readers.
            self._ffile = open(fpath, 'rb', buffering=0)
            self._mfile = open(mpath, 'r+b', buffering=0)
            self._files += [self._ffile, self._mfile]
            self._frames = np.memmap(fpath, dtype=np.uint8, mode='r', shape=shape + (3,))
            self.masks = np.memmap(mpath, dtype=np.uint8, mode='r+', shape=shape)
        else:
            if frames is not None:
                self._frames = np.array(frames, dtype=np.uint8, copy=True)
            else:
                self._frames = np.zeros(shape + (3,), np.uint8)
            self._frames.flags.writeable = False
            self.masks = np.zeros(shape, np.uint8)   # calloc: untouched pages are not resident

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame_iter(cls, frames, *, num_frames=None, orig_size=None, storage='auto',
                        source='', frame_names=None, memory_budget=DEFAULT_MEMORY_BUDGET,
                        progress=None, should_cancel=None):
        """Build a store from an iterable of (H,W,3) uint8 frames, filled frame by frame.

        `num_frames` is the expected count (a video's header may be off: the real count wins);
        it decides 'auto' storage and the progress total. `frame_names` may be a list or
        None (00000...). Returns None when `should_cancel()` turns True (checked between frames).
        """
        got = collect_frames(frames, num_frames, storage, memory_budget, progress, should_cancel)
        if got is None:
            return None
        n, h, w, buf, fpath = got
        names = _names(frame_names, n)
        if buf is None:
            return cls(None, orig_size=orig_size, storage='disk', num_frames=n, height=h,
                       width=w, source=source, frame_names=names, _frames_file=fpath)
        store = cls.__new__(cls)
        store._init_memory_from(buf, orig_size, source, names)   # no second full copy
        return store

    def _init_memory_from(self, frames, orig_size, source, frame_names):
        self.num_frames, self.height, self.width = frames.shape[:3]
        orig_size = orig_size or (self.height, self.width)
        self.orig_height, self.orig_width = int(orig_size[0]), int(orig_size[1])
        self.source = str(source)
        self.fps = None
        self.timestamps = None
        self.load_warnings = []
        self.frame_names = list(frame_names)
        self.storage = 'memory'
        self.lock = threading.RLock()
        self._listeners = []
        self._object_listeners = []
        self._tmpdir = None
        self._finalizer = None
        self._ffile = self._mfile = None
        self._io_lock = threading.Lock()
        self.edited_frames = set()
        self.objects = []
        self._init_bookkeeping()
        frames.flags.writeable = False
        self._frames = frames
        self.masks = np.zeros(frames.shape[:3], np.uint8)

    def _init_bookkeeping(self):
        # Per-frame write counter (callers detect "changed since" without comparing label
        # maps) and whether the frame holds any object pixel (timeline marks, object removal).
        self._revision = np.zeros(self.num_frames, np.int64)
        self._nonempty = np.zeros(self.num_frames, bool)

    def close(self):
        """Release the arrays and remove the temp dir (disk mode). Safe to call twice."""
        with self.lock:
            self._frames = None
            self.masks = None
            self._ffile = self._mfile = None
            if self._finalizer is not None:
                self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return self.num_frames

    def __repr__(self):
        return (f'FrameStore({self.num_frames} frames {self.width}x{self.height} '
                f'(orig {self.orig_width}x{self.orig_height}), {self.num_objects} objects, '
                f'{self.storage})')

    # ------------------------------------------------------------------ frames
    @property
    def frames(self):
        """(T,H,W,3) uint8 read-only array of all frames."""
        return self._frames

    @property
    def size(self):
        return self.height, self.width

    @property
    def orig_size(self):
        return self.orig_height, self.orig_width

    def frame(self, t):
        """Frame t as a read-only (H,W,3) uint8 array (a view in memory mode, a fresh copy read
        from the frame file in disk mode)."""
        t = self._index(t)
        if self._ffile is None:
            return self._frames[t]
        out = np.empty((self.height, self.width, 3), np.uint8)
        with self._io_lock:
            self._ffile.seek(t * out.nbytes)
            read_into(self._ffile, out)
        out.flags.writeable = False
        return out

    def _read_mask(self, t):
        if self._mfile is None:
            return np.array(self.masks[t])
        out = np.empty((self.height, self.width), np.uint8)
        self._mfile.seek(t * out.nbytes)
        read_into(self._mfile, out)
        return out

    def _write_mask(self, t, labels):
        self._revision[t] += 1
        self._nonempty[t] = bool(np.any(labels))
        if self._mfile is None:
            self.masks[t] = labels
            return
        data = np.ascontiguousarray(labels, dtype=np.uint8)
        self._mfile.seek(t * data.nbytes)
        view = memoryview(data).cast('B')
        while view:
            n = self._mfile.write(view)
            view = view[n:]

    def _index(self, t):
        t = int(t)
        if not 0 <= t < self.num_frames:
            raise IndexError(f'frame {t} out of range 0..{self.num_frames - 1}')
        return t

    # ------------------------------------------------------------------ masks
    def get_mask(self, t):
        """Label mask of frame t, (H,W) uint8 copy."""
        t = self._index(t)
        with self.lock:
            return self._read_mask(t)

    def label_at(self, t, x, y):
        """Label of pixel (x, y) (in the frame) of frame t: one pixel read, not the whole mask
        (the GUI asks on every mouse move)."""
        t = self._index(t)
        with self.lock:
            if self._mfile is None:
                return int(self.masks[t][y, x])
            self._mfile.seek((t * self.height + y) * self.width + x)
            return self._mfile.read(1)[0]

    def set_mask(self, t, labels, edited=None, notify=True):
        """Write the label mask of frame t. edited=True marks t as person-edited, False unmarks
        it, None leaves the mark as is. Ids above num_objects are rejected."""
        t = self._index(t)
        labels = np.asarray(labels)
        if labels.shape != (self.height, self.width):
            raise ValueError(f'mask shape {labels.shape} != store size {(self.height, self.width)}')
        if labels.dtype != np.uint8:
            if labels.dtype == bool:
                labels = labels.astype(np.uint8)
            elif labels.size and (labels.min() < 0 or labels.max() > 255):
                raise ValueError('label values must be in 0..255')
            else:
                labels = labels.astype(np.uint8)
        top = int(labels.max()) if labels.size else 0
        with self.lock:
            if top > self.num_objects:
                raise ValueError(f'mask has object id {top} but only {self.num_objects} objects exist')
            self._write_mask(t, labels)
            if edited is True:
                self.edited_frames.add(t)
            elif edited is False:
                self.edited_frames.discard(t)
        if notify:
            self._notify([t])

    def clear_masks(self, notify=True):
        """Set every mask to background and forget the edited marks (objects are kept)."""
        with self.lock:
            zero = np.zeros((self.height, self.width), np.uint8)
            for t in range(self.num_frames):
                self._write_mask(t, zero)
            self.edited_frames.clear()
        if notify:
            self._notify(list(range(self.num_frames)))

    def revision(self, t):
        """How many times frame t's labels were written (any change bumps it)."""
        return int(self._revision[self._index(t)])

    def nonempty_frames(self):
        """(T,) bool copy: which frames hold at least one object pixel."""
        with self.lock:
            return self._nonempty.copy()

    def edited_snapshot(self):
        """Sorted list of the person-edited frames, read under the lock."""
        with self.lock:
            return sorted(self.edited_frames)

    def mask_at_original(self, t):
        """Label mask of frame t at the original resolution, nearest-neighbour.

        INTER_NEAREST_EXACT samples pixel centres, so resizing the result back to processing
        size with the same rule returns exactly the processing-size mask (lossless round trip
        when the original is at least as large as the processing size).
        """
        m = self.get_mask(t)
        if m.shape == (self.orig_height, self.orig_width):
            return m
        return resize_labels(m, self.orig_height, self.orig_width)

    def object_area(self, obj_id):
        """Pixel count per frame of one object, (T,) int64."""
        with self.lock:
            return np.array([int((self._read_mask(t) == obj_id).sum())
                             for t in range(self.num_frames)], np.int64)

    # ------------------------------------------------------------------ objects
    @property
    def num_objects(self):
        return len(self.objects)

    @num_objects.setter
    def num_objects(self, n):
        self.ensure_objects(n, shrink=True)

    def ensure_objects(self, n, shrink=False):
        """Make sure objects 1..n exist (default names/colours). With shrink=True, objects above
        n are removed."""
        n = int(n)
        if n > MAX_OBJECTS:
            from util.errors import UserError
            raise UserError(f'at most {MAX_OBJECTS} objects are supported, got {n}')
        if n < 0:
            raise ValueError('number of objects must be >= 0')
        while self.num_objects < n:
            self.add_object()
        while shrink and self.num_objects > n:
            self.remove_object(self.num_objects)

    def add_object(self, name=None, color=None):
        """Add an object and return its id (num_objects after the call)."""
        with self.lock:
            new_id = self.num_objects + 1
            if new_id > MAX_OBJECTS:
                from util.errors import UserError
                raise UserError(f'at most {MAX_OBJECTS} objects are supported')
            color = _default_color(new_id) if color is None else _rgb(color)
            self.objects.append(ObjectInfo(new_id, name or f'object {new_id}', color, True))
        self._notify_objects()
        return new_id

    def get_object(self, obj_id):
        obj_id = int(obj_id)
        if not 1 <= obj_id <= self.num_objects:
            raise KeyError(f'no object with id {obj_id} (objects: 1..{self.num_objects})')
        return self.objects[obj_id - 1]

    def remove_object(self, obj_id):
        """Remove an object: its pixels become background in every frame and the higher ids
        move down by one (names/colours go with them)."""
        obj_id = self.get_object(obj_id).id
        lut = np.arange(256, dtype=np.uint8)
        lut[obj_id] = 0
        lut[obj_id + 1:] = np.arange(obj_id, 256 - 1, dtype=np.uint8)[:256 - obj_id - 1]
        changed = []
        with self.lock:
            for t in np.flatnonzero(self._nonempty).tolist():
                m = self._read_mask(t)
                if (m >= obj_id).any():
                    self._write_mask(t, lut[m])
                    changed.append(t)
            del self.objects[obj_id - 1]
            for i, o in enumerate(self.objects):
                o.id = i + 1
        self._notify_objects()
        if changed:
            self._notify(changed)

    def objects_snapshot(self):
        """The object list as a tuple of (id, name, colour, visible) tuples."""
        with self.lock:
            return tuple((o.id, o.name, tuple(o.color), o.visible) for o in self.objects)

    def restore_objects(self, snapshot):
        """Replace the object list by an `objects_snapshot()` (undo/redo). The caller restores
        the label maps that go with it; labels above the new count must not remain."""
        with self.lock:
            self.objects = [ObjectInfo(int(i), str(n), _rgb(c), bool(v)) for i, n, c, v in snapshot]
        self._notify_objects()

    def rename_object(self, obj_id, name):
        name = str(name).strip()
        if not name:
            from util.errors import UserError
            raise UserError('object name must not be empty')
        self.get_object(obj_id).name = name
        self._notify_objects()

    def set_color(self, obj_id, color):
        self.get_object(obj_id).color = _rgb(color)
        self._notify_objects()

    def set_visible(self, obj_id, visible):
        self.get_object(obj_id).visible = bool(visible)
        self._notify_objects()

    def colors(self):
        """(256,3) uint8 colour table: index = object id (0 black)."""
        table = np.zeros((256, 3), np.uint8)
        for o in self.objects:
            table[o.id] = o.color
        return table

    # ------------------------------------------------------------------ listeners
    def add_listener(self, fn):
        """fn(frames: list[int]) is called after masks of those frames changed."""
        self._listeners.append(fn)

    def remove_listener(self, fn):
        if fn in self._listeners:
            self._listeners.remove(fn)

    def add_object_listener(self, fn):
        """fn() is called after objects are added/removed/renamed/recoloured/hidden."""
        self._object_listeners.append(fn)

    def remove_object_listener(self, fn):
        if fn in self._object_listeners:
            self._object_listeners.remove(fn)

    def _notify(self, frames):
        for fn in list(self._listeners):
            fn(frames)

    def _notify_objects(self):
        for fn in list(self._object_listeners):
            fn()


def _names(frame_names, n):
    if frame_names is None:
        return [f'{i:05d}' for i in range(n)]
    names = list(frame_names)[:n]
    if len(names) < n:
        names += [f'{i:05d}' for i in range(len(names), n)]
    return names


def _rgb(color):
    c = tuple(int(v) for v in color)
    if len(c) != 3 or not all(0 <= v <= 255 for v in c):
        raise ValueError(f'colour must be (r, g, b) in 0..255, got {color!r}')
    return c
