"""Session events -> Qt signals in the GUI thread: the window's one refresh path.

Session.subscribe calls back in whichever thread made the change (a propagation's worker
thread too); emitting a signal from there queues the slot call into the GUI thread.

`changed(frames, objects)` says what to show again: the labels of `frames` changed, and
whether the objects did. Inside `batch()` (one edit of the person, made in the GUI thread)
the events are merged and sent once when the batch ends, after the controller has taken its
own state (selected object, frame) from the edit: one edit, one refresh. Events of background
work (a propagation) are sent as they come, so the view follows the frames being written.

`busyChanged(busy, what)`: background work on the Session started / ended. Busy and idle of
an edit made in the GUI thread are not forwarded: they begin and end before the window could
show them.
"""
import contextlib
import threading

from PyQt5.QtCore import QObject, pyqtSignal


class SessionBridge(QObject):
    changed = pyqtSignal(list, bool)       # frames whose labels changed, objects changed
    busyChanged = pyqtSignal(bool, str)    # background work started (True) / ended, its name
    _event = pyqtSignal(int, str, tuple, str, bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session = None
        self._listener = None
        self._serial = 0              # which attached session an event comes from
        self._depth = 0
        self._frames = set()
        self._objects = False
        self._gui_thread = threading.get_ident()      # made in the GUI thread
        self._event.connect(self._receive)

    def attach(self, session):
        self.detach()
        self.session = session
        self._serial += 1
        serial = self._serial
        self._listener = lambda event: self._on_event(serial, event)
        session.subscribe(self._listener)

    def detach(self):
        if self.session is not None:
            self.session.unsubscribe(self._listener)
            self.session = self._listener = None
        self._serial += 1             # events of the old session still queued are dropped
        self._frames, self._objects = set(), False

    @contextlib.contextmanager
    def batch(self):
        """Merge the change events of the block into one `changed`, sent when it ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth:
                self._send()

    def _on_event(self, serial, event):
        # the Session's thread: hand over to the GUI thread (direct when it is the GUI thread)
        background = threading.get_ident() != self._gui_thread
        self._event.emit(serial, event.kind, tuple(event.frames), event.what, background)

    def _receive(self, serial, kind, frames, what, background):
        if serial != self._serial:
            return
        if kind == 'frames':
            self._frames.update(frames)
        elif kind == 'objects':
            self._objects = True
        elif kind in ('busy', 'idle') and background:
            self.busyChanged.emit(kind == 'busy', what)
        if not self._depth:
            self._send()

    def _send(self):
        frames, objects = sorted(self._frames), self._objects
        self._frames, self._objects = set(), False
        if frames or objects:
            self.changed.emit(frames, objects)
