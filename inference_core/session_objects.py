"""Session mixin: objects. Every edit is one undo step; the object list is part of the state
each step saves, so undo brings back a removed object with its masks."""
import numpy as np

from inference_core.history import Action
from inference_core.session_state import check_int
from util.errors import UserError


class ObjectsMixin:
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
