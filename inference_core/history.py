"""Undo/redo of label edits.

An Action holds, for each frame it changed, the zlib-compressed label map of the OTHER side
(before, while it sits on the undo stack; after, on the redo stack), the frame's edited mark and
an opaque session state. Undo and redo swap the stored snapshot with the current one, so each
action keeps one snapshot per frame. Both stacks share a byte budget; the oldest actions are
dropped first.
"""
import threading
import zlib
from dataclasses import dataclass, field

import numpy as np


def pack_labels(labels):
    return zlib.compress(np.ascontiguousarray(labels, dtype=np.uint8).tobytes(), 1)


def unpack_labels(data, shape):
    return np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape).copy()


@dataclass
class Action:
    name: str
    shape: tuple                                   # (H, W) of the label maps
    frames: dict = field(default_factory=dict)     # t -> compressed labels of the other side
    edited: dict = field(default_factory=dict)     # t -> edited mark of the other side
    state: object = None                           # session state of the other side

    def capture(self, t, labels, edited):
        """Record frame t's labels (call before changing it; the first capture wins)."""
        if t not in self.frames:
            self.frames[t] = pack_labels(labels)
            self.edited[t] = bool(edited)

    def drop_unchanged(self, store):
        """Forget captured frames whose labels and edited mark did not change."""
        for t in list(self.frames):
            if self.edited[t] == (t in store.edited_frames) and \
                    np.array_equal(unpack_labels(self.frames[t], self.shape), store.get_mask(t)):
                del self.frames[t], self.edited[t]

    @property
    def nbytes(self):
        return sum(len(v) for v in self.frames.values()) + 64 * len(self.frames) + 256 + \
            getattr(self.state, 'nbytes', 0)

    def swap(self, store, state_now):
        """Put the stored side into `store` and keep the current side instead. Returns the
        changed frames and the stored session state."""
        changed = []
        for t, data in sorted(self.frames.items()):
            with store.lock:
                cur = store.get_mask(t)
                cur_edited = t in store.edited_frames
            store.set_mask(t, unpack_labels(data, self.shape), edited=self.edited[t])
            self.frames[t] = pack_labels(cur)
            self.edited[t] = cur_edited
            changed.append(t)
        old_state, self.state = self.state, state_now
        return sorted(changed), old_state


class History:
    """Undo and redo stacks of Actions under a shared byte budget (0 disables history)."""

    def __init__(self, max_bytes=256 << 20):
        self.max_bytes = int(max_bytes)
        self._undo = []
        self._redo = []
        self._lock = threading.Lock()

    @property
    def enabled(self):
        return self.max_bytes > 0

    @property
    def can_undo(self):
        return bool(self._undo)

    @property
    def undo_steps(self):
        return len(self._undo)

    @property
    def can_redo(self):
        return bool(self._redo)

    @property
    def nbytes(self):
        return sum(a.nbytes for a in self._undo) + sum(a.nbytes for a in self._redo)

    def push(self, action):
        """Record a new action (drops the redo stack)."""
        if not self.enabled or (not action.frames and action.state is None):
            return
        with self._lock:
            self._undo.append(action)
            self._redo.clear()
            self._trim()

    def pop_undo(self):
        with self._lock:
            return self._undo.pop() if self._undo else None

    def push_redo(self, action):
        with self._lock:
            self._redo.append(action)
            self._trim()

    def pop_redo(self):
        with self._lock:
            return self._redo.pop() if self._redo else None

    def push_undo(self, action):
        """Put an action back on the undo stack after a redo (keeps the redo stack)."""
        with self._lock:
            self._undo.append(action)
            self._trim()

    def clear(self):
        with self._lock:
            self._undo.clear()
            self._redo.clear()

    def _trim(self):
        # Drop the oldest undo steps, then the farthest redo steps, but keep the newest action.
        while self.nbytes > self.max_bytes and len(self._undo) + len(self._redo) > 1:
            if len(self._undo) > 1 or (self._undo and not self._redo):
                self._undo.pop(0)
            else:
                self._redo.pop(0)
