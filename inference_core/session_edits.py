"""How a Session changes its video's labels: every change is one undo step and keeps the store,
the engine's memory, the pending frames and the prompts in step.

Edits is the Session's collaborator for writing: a prompt's labels, loaded masks, a reset frame,
object edits, saved work put back, and propagation (commit the pending frames, run the engine's
passes). The Session checks the arguments and holds its lock around each call.
"""
import numpy as np

from inference_core import store_io
from inference_core.history import Action


class Edits:
    def __init__(self, store, engine, prompts, undo, pending):
        self.store = store
        self.engine = engine
        self.prompts = prompts
        self.undo = undo
        self.pending = pending          # session_state.Pending, shared with the undo history

    # ------------------------------------------------------------------ labels
    def apply(self, t, labels, name, soft=None, keep_clicks=False, state=None):
        """Write a prompt's labels as one undo step; the frame becomes pending. `state`: the
        session state before the prompt (default: now)."""
        store = self.store
        action = Action(name, (store.height, store.width))
        action.capture(t, store.get_mask(t), t in store.edited_frames)
        action.state = self.undo.state() if state is None else state
        store.set_mask(t, labels, edited=True)
        self.undo.push(action)
        self.pending.frames = self.pending.frames | {t}
        self.pending.last = t
        self.prompts.applied(t, soft, keep_scribbles=name == 'scribble', keep_clicks=keep_clicks)

    def load_masks(self, masks, progress=None, should_cancel=None):
        """store_io.load_masks as one undo step; the frames loaded become pending."""
        store = self.store
        action = self.undo.begin('load masks')

        def capture(t):
            action.capture(t, store.get_mask(t), t in store.edited_frames)

        done = store_io.load_masks(store, masks, edited=True, progress=progress,
                                   should_cancel=should_cancel, before_write=capture)
        if done is None:
            return None
        action.drop_unchanged(store)
        self.undo.push(action)
        self.engine.invalidate(done)
        self.pending.frames = self.pending.frames | set(done)
        if done:
            self.pending.last = done[0]
        for t in done:
            self.prompts.soft.pop(t, None)
        self.prompts.scribbles = None
        self.prompts.reset_clicks()
        return done

    def reset_frame(self, t):
        store = self.store
        action = Action('reset frame', (store.height, store.width))
        action.capture(t, store.get_mask(t), t in store.edited_frames)
        action.state = self.undo.state()
        store.set_mask(t, np.zeros((store.height, store.width), np.uint8), edited=False)
        self.engine.forget(t)
        self.pending.frames = self.pending.frames - {t}
        self.prompts.soft.pop(t, None)
        self.prompts.scribbles = None
        self.prompts.reset_clicks()
        self.undo.push(action)

    # ------------------------------------------------------------------ objects
    def object_step(self, name, change):
        """change() (an edit of the object list) as one undo step; returns what it returns."""
        action = self.undo.begin(name)
        out = change()
        self.undo.push(action)
        self.prompts.local.reset()
        return out

    def remove_object(self, obj_id):
        store = self.store
        action = self.undo.begin('remove object')
        with store.lock:
            for t in np.flatnonzero(store.nonempty_frames()).tolist():
                labels = store.get_mask(t)
                if (labels >= obj_id).any():
                    action.capture(t, labels, t in store.edited_frames)
        self.engine.remove_object(obj_id)
        store.remove_object(obj_id)
        self.engine.invalidate(list(action.frames))
        self.undo.push(action)
        self.prompts.soft.clear()
        self.prompts.scribbles = None
        self.prompts.local.reset()
        self.prompts.reset_clicks()

    # ------------------------------------------------------------------ propagation
    def default_frame(self):
        """Where a propagation starts by default: the last frame interacted with."""
        last, pending, interacted = self.pending.last, self.pending.frames, self.engine.interacted
        if last is not None and (last in pending or last in interacted):
            return last
        if pending:
            return min(pending)
        if interacted:
            return max(interacted)
        return None

    def propagate(self, t, direction, end, progress, should_cancel):
        """Generator of (frame, labels) as the passes from frame t write them (arguments checked
        by the caller): commits the pending frames, then the engine's passes; one undo step.
        Its value is True, or False when cancelled. Closed early, it stops like a cancel."""
        store, eng = self.store, self.engine
        action = self.undo.begin('propagate')

        def capture(ti):
            action.capture(ti, store.get_mask(ti), ti in store.edited_frames)

        def passed():
            self.pending.frames = self.pending.frames - {t}
            self.prompts.soft.clear()
            self.pending.last = t

        eng.before_write = capture if self.undo.enabled else None
        try:
            for p in sorted(self.pending.frames - {t}):
                eng.commit(p, self.prompts.mask_for(p))
                self.pending.frames = self.pending.frames - {p}
            passes = eng.passes(t, self.prompts.mask_for(t), direction=direction, end=end,
                                progress=progress, should_cancel=should_cancel)
            try:
                while True:
                    try:
                        ti = next(passes)
                    except StopIteration as stop:
                        ok = stop.value
                        break
                    yield ti, store.get_mask(ti)
            except GeneratorExit:
                passes.close()           # the client stopped: the pass stops here
                passed()
                raise
            passed()
        finally:
            eng.before_write = None
            action.drop_unchanged(store)
            self.prompts.scribbles = None
            self.prompts.reset_clicks()
            self.undo.push(action)
        return ok

    def release_memory(self):
        self.pending.frames = self.pending.frames | self.engine.interacted
        self.engine.reset()
        self.engine.clear_feature_cache()
        self.prompts.release()
        self.prompts.soft.clear()

    # ------------------------------------------------------------------ saved work
    def restore_work(self, objects, masks, edited, record):
        """Session.restore_work: objects, masks and the propagation record put back."""
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
        self.undo.clear()
        self.pending.frames = frozenset(edited)
        self.pending.last = None
        self.prompts.soft.clear()
        self.prompts.scribbles = None
        self.prompts.local.reset()
        self.prompts.reset_clicks()

    def _restore_record(self, record, edited):
        """The saved per-frame confidence and source, where they fit: frames in range, sources
        among the edited frames, confidences in [0, 1]."""
        T, eng = self.store.num_frames, self.engine
        conf, src = record.get('confidence') or {}, record.get('source') or {}
        for t, c in conf.items():
            try:
                t, c = int(t), float(c)
            except (TypeError, ValueError):
                continue
            if 0 <= t < T and 0.0 <= c <= 1.0 and t not in edited:
                eng.confidence[t] = c
        for t, f in src.items():
            try:
                t, f = int(t), int(f)
            except (TypeError, ValueError):
                continue
            if t in eng.confidence and f in edited:
                eng.source[t] = f
