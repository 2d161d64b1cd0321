"""Whether the person may edit now, and the way every edit reaches the Session.

Editing is allowed while a video is open, no job runs (gui/jobs.py) and the Session is not
busy with background work (its busy / idle events, through gui/session_bridge.py). Panels and
actions follow `changed`; it is also sent after every change of the Session, since what can be
undone or adapted changes with it.
"""
from PyQt5.QtCore import QObject, pyqtSignal


class EditGate(QObject):
    changed = pyqtSignal()

    def __init__(self, document, jobs, bridge, messages, parent=None):
        super().__init__(parent)
        self.document, self.jobs, self.bridge, self.messages = document, jobs, bridge, messages
        self.background = ''          # the Session's background work running ('' when none)
        jobs.started.connect(self.update)
        jobs.finished.connect(self._on_job_finished)
        bridge.busyChanged.connect(self._on_session_busy)
        bridge.changed.connect(self.update)

    def busy(self):
        return self.jobs.busy or bool(self.background)

    def editable(self):
        return self.document.session is not None and not self.busy()

    def can_edit(self):
        """True when an edit may start now (a warning in the panel when work is running)."""
        if self.document.session is None:
            return False
        if self.busy():
            self.messages.log('Busy: wait for the running job or cancel it (Esc).', 'warning')
            return False
        return True

    def apply(self, fn, *args, title='Error', **kw):
        """One edit of the person (a controller verb): its Session events refresh the window
        once, when it is over; a UserError becomes a message box (None is returned)."""
        with self.bridge.batch():
            return self.messages.attempt(fn, *args, title=title, **kw)

    def update(self, *_):
        self.changed.emit()

    def _on_session_busy(self, busy, what):
        self.background = what if busy else ''
        self.update()

    def _on_job_finished(self, *_):
        # the job's work is over (its idle event came first): never stay locked after it
        self.background = ''
        self.update()
