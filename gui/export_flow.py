"""Exporting the masks: the dialog, the question before replacing files, the export job."""
from gui.dialogs import ExportDialog, confirm_replace


class ExportFlow:
    def __init__(self, window, document, jobs, gate, saver):
        self.window, self.document, self.jobs, self.gate = window, document, jobs, gate
        self.messages, self.saver = gate.messages, saver

    def export_dialog(self):
        s = self.document.session
        if s is None or self.gate.busy():
            return
        dlg = ExportDialog(self.window, self.document.default_export_dir(),
                           size_text=f'{s.orig_width}x{s.orig_height}')
        if dlg.exec_() == ExportDialog.Accepted:
            self.export(dlg.out_dir(), dlg.formats(), dlg.alpha())

    def export(self, out_dir, formats, alpha=0.5, overwrite=None):
        """Export as a job. Existing files are replaced only after the person agrees
        (overwrite=None asks; True/False decide); errors -> message box, and the previous
        export stays as it was."""
        if self.document.session is None:
            return None
        existing = self.messages.attempt(self.document.existing_outputs, out_dir, formats,
                                         title='Cannot export')
        if existing is None:
            return None
        if existing and overwrite is None:
            overwrite = confirm_replace(self.window, out_dir, existing)
            if not overwrite:
                self.messages.log('Export cancelled: nothing was replaced.')
                return None
        self.saver.flush()

        def done(ok):
            if ok:
                self.messages.log(f'Exported {", ".join(formats)} to {out_dir}')
            else:
                self.messages.log('Export cancelled: nothing was written or replaced.',
                                  'warning')
        job = self.document.export_job(out_dir, formats, alpha, bool(overwrite))
        return self.jobs.run(job, 'Exporting', done, title='Cannot export')
