"""Long work (loading, propagation, export) off the GUI thread.

A Worker runs `fn(progress=..., should_cancel=...)` in a QThread; its signals arrive in the GUI
thread (queued connections). Cancel sets a flag that `fn` checks between frames, so the work stops
with a consistent state (the Session / exporters never leave a frame half-written).
"""
import threading
import time
import traceback

from PyQt5.QtCore import QThread, pyqtSignal

from util.errors import UserError


class Worker(QThread):
    progressed = pyqtSignal(int, int)
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str, str)      # message, traceback text ('' for a UserError)

    def __init__(self, fn, title, parent=None):
        super().__init__(parent)
        self.fn = fn
        self.title = title
        self._cancel = threading.Event()
        self._last_emit = 0.0
        self.started_at = None

    def cancel(self):
        self._cancel.set()

    def cancelled(self):
        return self._cancel.is_set()

    def _progress(self, done, total):
        # Throttle to ~30 updates/s: a fast exporter must not flood the event queue.
        now = time.monotonic()
        if done >= total or now - self._last_emit > 0.03:
            self._last_emit = now
            self.progressed.emit(int(done), int(total))

    def run(self):
        self.started_at = time.monotonic()
        try:
            result = self.fn(progress=self._progress, should_cancel=self._cancel.is_set)
        except UserError as e:
            self.failed.emit(str(e), '')
        except Exception as e:  # shown to the user, full trace in the console
            self.failed.emit(f'{type(e).__name__}: {e}', traceback.format_exc())
        else:
            self.succeeded.emit(result)
