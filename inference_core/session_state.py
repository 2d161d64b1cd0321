"""The Session's bookkeeping types: argument checks, the pending frames, the state saved with
each undo step, the interaction sequences in progress, and the change events it sends to
subscribers."""
from dataclasses import dataclass, field

import numpy as np

from inference_core.scribble_zoom import NEARBY_REACH, nearby_object_size
from util.errors import UserError

EVENT_KINDS = ('frames', 'objects', 'busy', 'idle')


@dataclass(frozen=True)
class SessionEvent:
    """What changed: 'frames' (labels of `frames` changed), 'objects' (added, removed, renamed,
    recoloured, shown/hidden), 'busy' / 'idle' (a propagation or another exclusive operation
    started / ended; `what` says which). Sent from the thread that made the change."""
    kind: str
    frames: tuple = ()
    what: str = ''


def check_int(name, value, minimum):
    """`value` as an int >= minimum: Python / NumPy integers only (no bools, floats, strings)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise UserError(f'{name} must be an integer, got {value!r}')
    if value < minimum:
        raise UserError(f'{name} must be at least {minimum}, got {value}')
    return int(value)


def check_number(name, value):
    """A finite real number (int or float, NumPy too; no bools, strings, NaN or inf)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise UserError(f'{name} must be a number, got {value!r}')
    if not np.isfinite(value):
        raise UserError(f'{name} must be a finite number, got {value}')
    return value


class Pending:
    """The frames interacted with and not yet committed to the engine's memory (`frames`: the
    next propagate commits them) and the last frame interacted with (`last`: where it starts by
    default). Shared by the Session and its undo history."""

    def __init__(self, frames=()):
        self.frames = frozenset(frames)
        self.last = None


@dataclass(frozen=True)
class SavedState:
    """Session bookkeeping saved with each undo step (the side of the step not in the store).
    click: (ClickSeq, ClickController snapshot) of the click sequence in effect, or None."""
    pending: frozenset
    interacted: frozenset
    last: object
    objects: tuple                  # FrameStore.objects_snapshot()
    click: object = None
    confidence: dict = None         # the engine's per-frame confidence (undo/redo restore it)
    source: dict = None             # the engine's per-frame source interaction (likewise)

    @property
    def nbytes(self):
        """Memory this state keeps alive beyond the labels (the click results it holds)."""
        if self.click is None:
            return 0
        return self.click[1].nbytes


@dataclass
class ClickSeq:
    """The click sequence the ClickController holds: frame, object, object count when it
    started, the labels then (other objects keep them), and the frame's store revision after
    its last click (a different revision means the labels were changed by something else)."""
    key: tuple            # (frame, obj_id, num_objects)
    base: np.ndarray
    revision: int = -1


class ScribbleSeq:
    """Strokes accumulated on one frame since its labels were last changed by something else
    (MiVOS keeps one scribble canvas and the starting mask per interaction)."""

    def __init__(self, frame, prev_labels, num_objects):
        self.frame = frame
        self.prev_labels = prev_labels
        self.num_objects = num_objects
        self.scribbles = np.full(prev_labels.shape, 255, np.uint8)
        self.revision = -1
        self._nearby = {}

    def nearby_size(self, store, obj_id):
        """obj_id's size on a frame near this one (scribble_zoom.nearby_object_size), read once
        per object for the strokes of a sequence: up to 20 masks, ~30 ms at 480p, too much for
        every stroke. Kept while no frame within reach is rewritten."""
        lo = max(0, self.frame - NEARBY_REACH)
        hi = min(store.num_frames, self.frame + NEARBY_REACH + 1)
        key = (obj_id, tuple(store.revision(u) for u in range(lo, hi)))
        if key not in self._nearby:
            self._nearby = {key: nearby_object_size(store, self.frame, obj_id)}
        return self._nearby[key]


@dataclass
class Listeners:
    """Subscribers of SessionEvents, called in the order they subscribed."""
    fns: list = field(default_factory=list)

    def add(self, fn):
        if fn not in self.fns:
            self.fns.append(fn)

    def remove(self, fn):
        if fn in self.fns:
            self.fns.remove(fn)

    def send(self, event):
        for fn in list(self.fns):
            fn(event)
