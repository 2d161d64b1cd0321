"""The one undo history of a Session. Each step keeps the changed frames' labels and the Session
state of the other side (pending/interacted frames, objects, the engine's confidences, the click
sequence); undo/redo swap them."""
from inference_core.history import Action, History
from inference_core.session_state import SavedState


class Undo:
    """History steps over the Session's store, engine, prompts (inference_core/session_prompts.py)
    and pending frames (session_state.Pending); `max_bytes` bounds the memory it keeps."""

    def __init__(self, max_bytes, store, engine, prompts, pending):
        self.history = History(max_bytes)
        self.store = store
        self.engine = engine
        self.prompts = prompts
        self.pending = pending

    @property
    def can_undo(self):
        return self.history.can_undo

    @property
    def can_redo(self):
        return self.history.can_redo

    @property
    def steps(self):
        return self.history.undo_steps

    @property
    def enabled(self):
        return self.history.enabled

    def begin(self, name):
        """A new step named `name` holding the state now (capture frames into it, then push)."""
        action = Action(name, (self.store.height, self.store.width))
        action.state = self.state()
        return action

    def push(self, action):
        self.history.push(action)

    def clear(self):
        self.history.clear()

    def state(self):
        eng = self.engine
        return SavedState(self.pending.frames, eng.interacted, self.pending.last,
                          self.store.objects_snapshot(), self.prompts.click_state(),
                          dict(eng.confidence), dict(eng.source))

    def swap(self, which):
        """Undo ('undo') or redo ('redo') one step: swap its stored side with the current one,
        then push it onto the other stack. Returns the frames that changed."""
        h = self.history
        pop, push = (h.pop_undo, h.push_redo) if which == 'undo' else (h.pop_redo, h.push_undo)
        action = pop()
        if action is None:
            return []
        now = self.state()
        self._restore_objects(action.state.objects, action.name == 'remove object')
        changed, state = action.swap(self.store, now)
        self._restore(state, changed)
        push(action)
        return changed

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
            self.pending.frames = self.pending.frames | self.engine.interacted
            self.engine.reset()
            self.prompts.soft.clear()
        else:
            # an added object comes or goes at the end; one that goes has no pixels left
            # anywhere (linear history), so dropping its channel keeps the memory valid
            for k in range(self.engine.num_objects, n, -1):
                self.engine.remove_object(k)
        self.prompts.local.reset()

    def _restore(self, state, changed):
        eng = self.engine
        frames = set(changed)
        if state.confidence is not None:
            # a pass also re-weighs frames whose labels it kept (the combination with an earlier
            # result): their confidence and source go back too, their soft masks are dropped
            frames |= {t for t in set(state.confidence) | set(eng.confidence)
                       if state.confidence.get(t) != eng.confidence.get(t)
                       or (state.source or {}).get(t) != eng.source.get(t)}
        eng.invalidate(frames)
        for saved, now in ((state.confidence, eng.confidence), (state.source, eng.source)):
            for t in frames if saved is not None else ():
                if t in saved:
                    now[t] = saved[t]
        for f in eng.interacted - state.interacted:
            eng.forget(f)
        # frames committed in that state but no longer in memory are re-committed on propagate
        self.pending.frames = state.pending | (state.interacted - eng.interacted)
        self.pending.last = state.last
        for t in changed:
            self.prompts.soft.pop(t, None)
        self.prompts.scribbles = None
        self.prompts.restore_clicks(state.click)
