"""What the window does to keep the work safe (the Document does the saving):

- autosave: flushes the document; while autosave fails (full disk, a file system that turned
  read-only) or the workspace is read-only (another window holds it), the status bar says in
  red that the work is not being saved; the first failure also asks once whether to save the
  workspace in another folder;
- File > Save workspace as: the whole work into another (empty) folder, autosave goes on there;
- closing the window (or opening another video) while work is unsaved asks first.
"""
import os

from gui.dialogs import ask_autosave_failed, ask_unsaved, choose_folder, show_error
from util.errors import UserError


class WorkspaceMixin:
    _autosave_warned = None

    def workspace_settings(self):
        """Everything the workspace saves about this window (restored on resume)."""
        c = self.controller
        brushes = dict(c.brushes, **{c.mode: self.canvas.brush})
        nets = self.networks
        opened = self.document.open_settings
        return {'current_frame': c.cursor,
                'resolution': opened.get('resolution', self.opts.resolution),
                'mem_freq': opened.get('mem_freq', self.opts.mem_freq),
                'model': getattr(nets, 'kind', self.opts.model), 'overlay': self.overlay_mode,
                'mode': c.mode, 'brushes': brushes, 'object': c.obj}

    def flush_workspace(self):
        doc = self.document
        doc.flush(self.workspace_settings())
        self.update_save_status()
        err = doc.autosave_error
        if err and self._autosave_warned != err and doc.session is not None:
            self._autosave_warned = err           # once, not at every retry
            if ask_autosave_failed(self, err) == 'elsewhere':
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
        text = self.save_status_text()
        if self.status_saved.text() != text:
            self.status_saved.setText(text)
            self.status_saved.setToolTip(text)
            self.status_saved.setVisible(bool(text))

    def save_workspace_as(self, folder=None):
        """Save the work into another folder (asks for it when not given); autosave goes on
        there. Returns True when saved."""
        doc = self.document
        if doc.session is None:
            return False
        if folder is None:
            picked = choose_folder(self, 'Save the workspace in (an empty or a new folder)',
                                   os.path.expanduser('~'))
            if not picked:
                return False
            folder = picked
            if os.path.isdir(folder) and os.listdir(folder):
                name = os.path.basename(doc.workspace.path) if doc.workspace else 'work.ivos'
                folder = os.path.join(folder, name)
        try:
            doc.save_elsewhere(folder, self.workspace_settings())
        except UserError as e:
            self.log(str(e), 'error')
            show_error(self, 'Cannot save the workspace there', str(e))
            return False
        self._autosave_warned = None
        self.update_save_status()
        self.update_status()
        return True

    def confirm_unsaved(self, action='close the window'):
        """True when `action` may go on: nothing unsaved, or the person saved elsewhere or
        chose to discard it."""
        doc = self.document
        if doc.session is None:
            return True
        doc.flush(self.workspace_settings())     # a last try
        if not doc.unsaved_work():
            return True
        why = ('This window opened the workspace read-only (another window holds it).'
               if doc.readonly else f'Autosave fails: {doc.autosave_error}')
        while True:
            choice = ask_unsaved(self, why, action)
            if choice == 'discard':
                self.log(f'Unsaved work discarded ({action}).', 'warning')
                return True
            if choice != 'elsewhere':
                return False
            if self.save_workspace_as():
                return True
