"""Long work (loading, propagation, adaptation, export) off the GUI thread.

A Worker runs `fn(progress=..., should_cancel=...)` in a QThread; its signals arrive in the GUI
thread (queued connections). Cancel sets a flag that `fn` checks between frames, so the work stops
with a consistent state (the Session / exporters never leave a frame half-written). A JobRunner
runs one Worker at a time and drives the status bar's progress bar and Cancel button.
"""
import threading
import time
import traceback

from PyQt5.QtCore import QObject, QThread, pyqtSignal

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

    def cancel(self):
        self._cancel.set()

    def _progress(self, done, total):
        # Throttle to ~30 updates/s: a fast exporter must not flood the event queue.
        now = time.monotonic()
        if done >= total or now - self._last_emit > 0.03:
            self._last_emit = now
            self.progressed.emit(int(done), int(total))

    def run(self):
        try:
            result = self.fn(progress=self._progress, should_cancel=self._cancel.is_set)
        except UserError as e:
            self.failed.emit(str(e), '')
        except Exception as e:  # shown to the user, full trace in the console
            self.failed.emit(f'{type(e).__name__}: {e}', traceback.format_exc())
        else:
            self.succeeded.emit(result)


class JobRunner(QObject):
    """One background job at a time, shown by `progress` (QProgressBar) and `cancel_button`.

    started(label) / finished(label, completed) let the window disable and re-enable editing;
    `error(message, title)` shows failures; `log(text, level)` writes the console.
    """
    started = pyqtSignal(str)
    finished = pyqtSignal(str, bool)

    def __init__(self, parent, progress, cancel_button, log, error):
        super().__init__(parent)
        self.progress = progress
        self.cancel_button = cancel_button
        self.log = log
        self.error = error
        self.worker = None
        cancel_button.clicked.connect(self.cancel)

    @property
    def busy(self):
        return self.worker is not None

    def run(self, fn, label, on_done=None, title='Error'):
        """Run fn(progress, should_cancel) in a Worker; on_done(result) in the GUI thread.
        Jobs return False (propagate, export) or None (loading) when they were cancelled."""
        if self.busy:
            self.error('Another job is running: wait for it or cancel it (Esc).', 'Busy')
            return None
        w = Worker(fn, label, self)
        self.worker = w
        self.progress.setRange(0, 0)
        self.progress.setFormat(f'{label} %p%')
        self.progress.show()
        self.cancel_button.show()
        self.started.emit(label)
        t0 = time.monotonic()

        def on_progress(done, total):
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

        def finish(result, err=None, trace=''):
            self.worker = None
            w.wait()
            w.deleteLater()
            self.progress.hide()
            self.cancel_button.hide()
            completed = err is None and result is not None and result is not False
            if err is not None:
                if trace:
                    self.log(trace.rstrip(), 'error')
                self.error(err, title)
            elif on_done is not None:
                try:
                    on_done(result)
                except UserError as e:
                    completed = False
                    self.error(str(e), title)
            self.log(f'{label}: {"done" if completed else "failed" if err else "stopped"} '
                     f'in {time.monotonic() - t0:.1f} s')
            self.finished.emit(label, completed)

        w.progressed.connect(on_progress)
        w.succeeded.connect(lambda r: finish(r))
        w.failed.connect(lambda msg, tb: finish(None, msg, tb))
        w.start()
        return w

    def cancel(self):
        if self.worker is not None:
            self.worker.cancel()
            self.log(f'Cancelling {self.worker.title} after the current frame \u2026')

    def stop(self):
        """Cancel and wait (window closing)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()
            self.worker = None
