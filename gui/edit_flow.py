"""The person's edits of the current frame (strokes, clicks, boxes, commit, reset, undo / redo)
and the long work on the whole video (propagate, adapt the network) as jobs.

Interactions run in the GUI thread (a fraction of a second), through EditGate.apply: the
window shows their result when the Session's change events arrive, once per edit. Propagation
and adaptation run as jobs (gui/jobs.py) with editing disabled meanwhile.
"""


class EditFlow:
    def __init__(self, controller, document, gate, view, jobs):
        self.controller, self.document, self.gate = controller, document, gate
        self.view, self.canvas, self.jobs = view, view.canvas, jobs
        self.messages = gate.messages
        self.canvas.strokeFinished.connect(self.stroke)
        self.canvas.clicked.connect(self.click)
        self.canvas.boxDrawn.connect(self.box)

    session = property(lambda self: self.document.session)

    def stroke(self, points, positive=True):
        """A finished stroke on the canvas (also what the demo runner calls)."""
        c = self.controller
        if not self.gate.can_edit():
            self.canvas.clear_marks()
            return
        if c.local_mode and c.local_region is not None:
            r = self.canvas.visible_rect()       # the region follows zooming and panning
            c.set_local_region(r.x(), r.y(), r.right(), r.bottom())
        msg = self.gate.apply(c.stroke, points, positive)
        if msg is None:
            self.canvas.clear_marks()
            return
        self.messages.log(msg)

    def click(self, x, y, positive=True):
        """A click on the canvas (also what the demo runner calls)."""
        if not self.gate.can_edit():
            return
        msg = self.gate.apply(self.controller.click, x, y, positive)
        if msg is not None:
            self.canvas.add_click_mark(x, y, positive)
            self.messages.log(msg)

    def box(self, x0, y0, x1, y1):
        """A box dragged on the canvas in Box mode (image coordinates)."""
        if not self.gate.can_edit():
            return
        msg = self.gate.apply(self.controller.box, x0, y0, x1, y1)
        if msg is not None:
            self.canvas.add_box_mark(x0, y0, x1, y1)
            self.messages.log(msg)

    def end_interaction(self):
        self.canvas.clear_marks()
        self.controller.end_interaction()

    def commit(self):
        """MiVOS 'Commit': finish the current interaction; the next strokes start a new one."""
        if self.session is not None and not self.gate.busy():
            self.end_interaction()
            self.messages.log(f'Committed frame {self.controller.cursor}')

    def undo(self):
        self._undo_redo(self.controller.undo)

    def redo(self):
        self._undo_redo(self.controller.redo)

    def _undo_redo(self, fn):
        if self.session is None or self.gate.busy():
            return
        self.canvas.clear_marks()
        msg = self.gate.apply(fn)
        if msg is None:
            return
        for x, y, positive in self.controller.active_clicks():
            self.canvas.add_click_mark(x, y, positive)
        self.view.follow_cursor()        # the step may have moved to the frame it changed
        self.messages.log(msg)

    def reset_frame(self):
        if self.gate.can_edit():
            self.canvas.clear_marks()
            msg = self.gate.apply(self.controller.reset_frame)
            if msg:
                self.messages.log(msg)

    def propagate(self):
        if not self.gate.can_edit():
            return None
        job = self.messages.attempt(self.controller.propagate_job, title='Nothing to propagate')
        if job is None:
            return None
        self.canvas.clear_marks()
        self.messages.log(f'Propagating from frame {self.controller.cursor} \u2026')
        return self.jobs.run(job, 'Propagating', title='Propagation failed')

    def adapt_network(self):
        if not self.gate.can_edit():
            return None
        found = self.messages.attempt(self.controller.adapt_job, title='Nothing to adapt to')
        if found is None:
            return None
        frames, job = found
        self.messages.log(f'Adapting the propagation network to frame(s) '
                          f'{", ".join(map(str, frames))} \u2026')

        def done(ok):
            if ok:
                self.messages.log('Network adapted: propagate (P) to use it; Edit \u25b8 Use the '
                                  'shipped network undoes it.')
        return self.jobs.run(job, 'Adapting network', done, title='Adaptation failed')

    def reset_adaptation(self):
        if self.gate.can_edit() and self.session.adapted_frames:
            self.messages.attempt(self.session.reset_adaptation)
            self.messages.log('Propagating with the shipped network again.')
            self.gate.update()
