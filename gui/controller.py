"""The interaction controller: what the person is doing (frame, object, tool, brush, local
region) and the verbs that turn their intents into Session calls. No Qt here: the window calls
these methods and shows what they return; tests drive them without a window.

Coordinates come from the canvas, where pixel i spans [i, i + 1); the Session puts pixel i at i.
Errors are UserErrors with a one-line message (the window shows them in a message box).
"""
import time

from util.errors import UserError

MODES = ('scribble', 'click', 'free', 'box')
MODE_NAMES = {'scribble': 'Scribble', 'click': 'Click', 'free': 'Free', 'box': 'Box'}
DEFAULT_BRUSH = {'scribble': 1, 'click': 1, 'free': 8, 'box': 1}


def session_points(points):
    """Canvas coordinates (pixel i spans [i, i+1)) -> Session coordinates (pixel i at i)."""
    return [(max(x - 0.5, 0.0), max(y - 0.5, 0.0)) for x, y in points]


class Controller:
    """Interaction state of one window over one Session (or none)."""

    def __init__(self):
        self.session = None
        self.cursor = 0
        self.obj = 0
        self.mode = 'scribble'
        self.brushes = dict(DEFAULT_BRUSH)     # each tool keeps its own brush radius
        self.local_mode = False
        self.local_region = None               # (x0, y0, x1, y1) of the region being refined

    # ------------------------------------------------------------------ session
    def attach(self, session, cursor=0):
        self.session = session
        self.cursor = min(max(int(cursor), 0), session.num_frames - 1)
        self.obj = 1 if session.num_objects else 0
        self.local_region = None

    def detach(self):
        self.session = None
        self.cursor, self.obj, self.local_region = 0, 0, None

    @property
    def brush(self):
        return self.brushes[self.mode]

    def set_brush(self, radius):
        self.brushes[self.mode] = max(1, int(radius))

    def _need_session(self):
        if self.session is None:
            raise UserError('open a video first (File \u25b8 Open)')
        return self.session

    def _need_object(self):
        s = self._need_session()
        if not 1 <= self.obj <= s.num_objects:
            raise UserError('there is no object: add one first (Ctrl+N)')
        return s

    # ------------------------------------------------------------------ navigation
    def goto(self, t):
        """Move to frame t (clamped); a new frame ends the interaction in progress. Returns
        True when the frame changed."""
        s = self._need_session()
        t = int(min(max(t, 0), s.num_frames - 1))
        changed = t != self.cursor
        self.cursor = t
        if changed:
            self.end_interaction()
        return changed

    def suggested_frame(self):
        """(frame, confidence) the tool suggests checking next, or None (nothing propagated)."""
        s = self._need_session()
        t = s.suggest_frame()
        return None if t is None else (t, float(s.frame_confidence()[t]))

    # ------------------------------------------------------------------ tools
    def set_mode(self, mode):
        if mode not in MODES:
            raise UserError(f'unknown tool {mode!r} (use {", ".join(MODES)})')
        if mode != self.mode:
            self.end_interaction()
        self.mode = mode

    def set_local(self, on):
        self.end_interaction()
        self.local_mode = bool(on)
        self.local_region = None

    def set_local_region(self, x0, y0, x1, y1):
        """The region local scribbles refine (the zoomed view), in canvas coordinates."""
        self.local_region = (x0, y0, x1, y1)
        if self.mode in ('click', 'box'):
            self.mode = 'scribble'

    def end_interaction(self):
        """MiVOS 'commit': the next strokes or clicks start a new interaction from the mask."""
        s = self.session
        if s is not None and not s.busy:
            s.end_interaction()

    # ------------------------------------------------------------------ edits
    def stroke(self, points, positive):
        """A finished brush stroke (canvas coordinates) with the current tool. Returns what was
        done, for the log."""
        s = self._need_object()
        t0 = time.perf_counter()
        pts = session_points(points)
        brush = 2 * self.brush + 1
        strokes = {'positive': [pts]} if positive else {'negative': [pts]}
        if self.mode == 'free':
            s.paint(self.cursor, self.obj, [pts], erase=not positive, brush=brush)
            what = 'Painted' if positive else 'Erased'
        elif self.local_mode and self.local_region is not None:
            s.scribble(self.cursor, self.obj, brush=brush, region=self.local_region, **strokes)
            what = 'Local scribble'
        else:
            s.scribble(self.cursor, self.obj, brush=brush, **strokes)
            what = 'Scribble' if positive else 'Negative scribble'
        return self._done(what, t0)

    def click(self, x, y, positive):
        s = self._need_object()
        t0 = time.perf_counter()
        (px, py), = session_points([(x, y)])
        s.click(self.cursor, self.obj, px, py, positive=positive)
        return self._done('Click' if positive else 'Negative click', t0)

    def box(self, x0, y0, x1, y1):
        """A box dragged around the current object (canvas coordinates: the pixels it covers):
        the object's mask on this frame becomes what the box holds (Session.add_box)."""
        s = self._need_object()
        t0 = time.perf_counter()
        s.add_box(self.cursor, self.obj, (x0, y0, x1, y1))
        return self._done('Box', t0)

    def _done(self, what, t0):
        ms = (time.perf_counter() - t0) * 1000
        return f'{what} on frame {self.cursor}, object {self.obj} ({ms:.0f} ms)'

    def active_clicks(self):
        """[(x, y, positive)] in canvas coordinates of the clicks in effect on this frame."""
        s = self.session
        active = s.active_clicks if s is not None else None
        if active is None or active[0] != self.cursor:
            return []
        return [(x + 0.5, y + 0.5, p) for x, y, p in active[2]]

    def reset_frame(self):
        self._need_session().reset_frame(self.cursor)
        return f'Reset frame {self.cursor}'

    def undo(self):
        return self._undo_redo('undo')

    def redo(self):
        return self._undo_redo('redo')

    def _undo_redo(self, which):
        """Returns a log line. Shows the edit: stays on this frame if the step touched it,
        else jumps to the one frame it changed."""
        s = self._need_session()
        if not getattr(s, f'can_{which}'):
            return f'Nothing to {which}.'
        changed = getattr(s, which)()
        self.clamp_object()
        if not changed:
            return f'{which.capitalize()}: objects'
        if self.cursor not in changed and len(changed) == 1:
            self.cursor = changed[0]
        what = f'frame {changed[0]}' if len(changed) == 1 else f'{len(changed)} frames'
        return f'{which.capitalize()}: {what}'

    # ------------------------------------------------------------------ objects
    def clamp_object(self):
        """Keep the selected object valid after objects came or went (0 when there is none)."""
        if self.session is not None:
            self.obj = min(max(self.obj, 1), self.session.num_objects)
        return self.obj

    def select_object(self, obj_id):
        s = self._need_session()
        if not 1 <= obj_id <= s.num_objects:
            raise UserError(f'there is no object {obj_id} (Ctrl+N adds one)')
        if obj_id != self.obj:
            self.end_interaction()
        self.obj = int(obj_id)

    def add_object(self):
        oid = self._need_session().add_object()
        self.select_object(oid)
        return oid

    def rename_object(self, name):
        self._need_object().set_object(self.obj, name=name)

    def recolor_object(self, color):
        self._need_object().set_object(self.obj, color=color)

    def toggle_visible(self, obj_id=None):
        s = self._need_object()
        oid = self.obj if obj_id is None else obj_id
        s.set_object(oid, visible=not s.get_object(oid).visible)

    def set_visible(self, obj_id, visible):
        self._need_session().set_object(obj_id, visible=visible)

    def delete_object(self):
        s = self._need_object()
        o = s.get_object(self.obj)
        s.remove_object(o.id)
        self.clamp_object()
        return o

    # ------------------------------------------------------------------ long work
    def propagate_job(self):
        """A job fn(progress, should_cancel) propagating from the current frame."""
        s = self._need_object()
        t = self.cursor
        if not s.frames_with_masks()[t] and t not in s.edited_frames:
            raise UserError(f'frame {t} has no mask to propagate: scribble, click or paint first')
        self.end_interaction()
        return lambda progress, should_cancel: s.propagate(t, progress=progress,
                                                           should_cancel=should_cancel)

    def adapt_job(self):
        s = self._need_session()
        self.end_interaction()
        frames = s.interacted_frames
        if not frames:
            raise UserError('annotate a frame first (scribble, click, paint or load masks): the '
                            'network is adapted to the annotated frames')
        return frames, lambda progress, should_cancel: s.adapt(
            frames, progress=progress, should_cancel=should_cancel)
