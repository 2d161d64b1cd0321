"""WorkspaceGuard: what the window does to keep the work safe (the Document does the saving):

- autosave: flushes the document; while autosave fails (full disk, a file system that turned
  read-only) or the workspace is read-only (another window holds it), the status bar says in
  red that the work is not being saved; the first failure also asks once whether to save the
  workspace in another folder;
- File > Save workspace as: the whole work into another (empty) folder, autosave goes on there;
- closing the window (or opening another video) while work is unsaved asks first.
"""
import os

from PyQt5.QtCore import QObject, QTimer

from gui.dialogs import ask_autosave_failed, ask_unsaved, choose_folder, show_error
from util.errors import UserError

AUTOSAVE_MS = 1000


class WorkspaceGuard(QObject):
    def __init__(self, window, controller, document, view, status, gate):
        super().__init__(window)
        self.window, self.controller, self.document = window, controller, document
        self.view, self.status, self.gate = view, status, gate
        self._autosave_warned = None
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.flush)
        self.autosave_timer.start()

    def settings(self):
        """Everything the workspace saves about this window (restored on resume)."""
        c, doc = self.controller, self.document
        nets, opts, opened = doc.networks, doc.opts, doc.open_settings
        return {'current_frame': c.cursor,
                'resolution': opened.get('resolution', opts.resolution),
                'mem_freq': opened.get('mem_freq', opts.mem_freq),
                'model': getattr(nets, 'kind', opts.model), 'overlay': self.view.overlay_mode,
                'mode': c.mode, 'brushes': dict(c.brushes), 'object': c.obj}

    def on_session_changed(self, *_):
        # an edit is saved at once (a kill -9 then loses nothing); background work (a
        # propagation) is saved by the timer and when its job ends
        if not self.gate.busy():
            self.flush()

    def flush(self, *_):
        doc = self.document
        doc.flush(self.settings())
        self.update_save_status()
        err = doc.autosave_error
        if err and self._autosave_warned != err and doc.session is not None:
            self._autosave_warned = err           # once, not at every retry
            if ask_autosave_failed(self.window, err) == 'elsewhere':
                self.save_workspace_as()
        elif not err:
            self._autosave_warned = None

    def save_status_text(self):
        """The status bar's warning ('' when everything is saved)."""
        doc = self.document
        if doc.session is None or doc.workspace is None:
            return ''
        if doc.readonly:
            return 'Read-only: another window holds this workspace, changes are NOT saved'
        if doc.autosave_error:
            return 'NOT SAVED: autosave fails (' + doc.autosave_error + ')'
        return ''

    def update_save_status(self):
        self.status.show_saved(self.save_status_text())

    def save_workspace_as(self, folder=None):
        """Save the work into another folder (asks for it when not given); autosave goes on
        there. Returns True when saved."""
        doc = self.document
        if doc.session is None:
            return False
        if folder is None:
            picked = choose_folder(self.window, 'Save the workspace in (an empty or a new '
                                   'folder)', os.path.expanduser('~'))
            if not picked:
                return False
            folder = picked
            if os.path.isdir(folder) and os.listdir(folder):
                name = os.path.basename(doc.workspace.path) if doc.workspace else 'work.ivos'
                folder = os.path.join(folder, name)
        try:
            doc.save_elsewhere(folder, self.settings())
        except UserError as e:
            doc.log(str(e), 'error')
            show_error(self.window, 'Cannot save the workspace there', str(e))
            return False
        self._autosave_warned = None
        self.update_save_status()
        return True

    def confirm_unsaved(self, action='close the window'):
        """True when `action` may go on: nothing unsaved, or the person saved elsewhere or
        chose to discard it."""
        doc = self.document
        if doc.session is None:
            return True
        doc.flush(self.settings())     # a last try
        if not doc.unsaved_work():
            return True
        why = ('This window opened the workspace read-only (another window holds it).'
               if doc.readonly else f'Autosave fails: {doc.autosave_error}')
        while True:
            choice = ask_unsaved(self.window, why, action)
            if choice == 'discard':
                doc.log(f'Unsaved work discarded ({action}).', 'warning')
                return True
            if choice != 'elsewhere':
                return False
            if self.save_workspace_as():
                return True
