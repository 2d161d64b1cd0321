"""Session mixin: the one undo history. Each step keeps the changed frames' labels and the
Session state of the other side (pending/interacted frames, objects, the engine's confidences,
the click controller's snapshot); undo/redo swap them."""
from inference_core.session_state import SavedState


class HistoryMixin:
    @property
    def can_undo(self):
        return self.history.can_undo

    @property
    def can_redo(self):
        return self.history.can_redo

    @property
    def undo_steps(self):
        """How many steps undo can go back (the history may have dropped older ones)."""
        return self.history.undo_steps

    def undo(self):
        """Undo the last edit or propagation. Returns the frames that changed ([] if nothing)."""
        return self._swap_step('undo', self.history.pop_undo, self.history.push_redo)

    def redo(self):
        """Redo the last undone step. Returns the frames that changed ([] if nothing)."""
        return self._swap_step('redo', self.history.pop_redo, self.history.push_undo)

    def _swap_step(self, what, pop, push):
        """Swap the stored side of the popped step with the current one, then push it onto the
        other stack."""
        with self._exclusive(what):
            action = pop()
            if action is None:
                return []
            now = self._state()
            self._restore_objects(action.state.objects, action.name == 'remove object')
            changed, state = action.swap(self.store, now)
            self._restore(state, changed)
            push(action)
            return changed

    def _state(self):
        cs, ctrl = self._click_state, self._click
        click = (cs, ctrl.snapshot()) if cs is not None and ctrl is not None else None
        return SavedState(self._pending, self.engine.interacted, self._last,
                          self.store.objects_snapshot(), click, dict(self.engine.confidence),
                          dict(self.engine.source))

    def _restore(self, state, changed):
        frames = set(changed)
        if state.confidence is not None:
            # a pass also re-weighs frames whose labels it kept (the combination with an earlier
            # result): their confidence and source go back too, their soft masks are dropped
            eng = self.engine
            frames |= {t for t in set(state.confidence) | set(eng.confidence)
                       if state.confidence.get(t) != eng.confidence.get(t)
                       or (state.source or {}).get(t) != eng.source.get(t)}
        self.engine.invalidate(frames)
        for saved, now in ((state.confidence, self.engine.confidence),
                           (state.source, self.engine.source)):
            for t in frames if saved is not None else ():
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
