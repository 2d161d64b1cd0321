"""Session events -> Qt signals in the GUI thread.

Session.subscribe calls back in whichever thread made the change (a propagation's worker
thread too); emitting a signal from there queues the slot call into the GUI thread.
"""
from PyQt5.QtCore import QObject, pyqtSignal


class SessionBridge(QObject):
    framesChanged = pyqtSignal(list)
    objectsChanged = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session = None

    def attach(self, session):
        self.detach()
        self.session = session
        session.subscribe(self._on_event)

    def detach(self):
        if self.session is not None:
            self.session.unsubscribe(self._on_event)
            self.session = None

    def _on_event(self, event):
        if event.kind == 'frames':
            self.framesChanged.emit(list(event.frames))
        elif event.kind == 'objects':
            self.objectsChanged.emit()
