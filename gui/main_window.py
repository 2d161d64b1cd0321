"""The main window: the view of one Document, driven through the Controller.

Who does what (docs/ARCHITECTURE.md has the picture):
  gui/layout.py, gui/actions.py   the widgets, actions, menus and toolbar
  gui/controller.py               interaction state + verbs -> Session calls (no Qt)
  gui/document.py                 open / resume / autosave / export of the Session (no Qt)
  gui/jobs.py                     background jobs with progress and Cancel
  gui/session_bridge.py           Session change events -> Qt signals in the GUI thread
This file shows the state and turns widget events into controller / document calls; errors
(UserError) become message boxes. Interactions run in the GUI thread (a fraction of a second);
loading, propagation, adaptation and export run as jobs, with editing disabled meanwhile.
"""
import os

import numpy as np
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import QApplication, QFileDialog, QMainWindow

from gui import overlay as overlay_mod
from gui.actions import setup_actions
from gui.controller import MODES, Controller
from gui.dialogs import (ExportDialog, HelpDialog, ask_locked, ask_mismatch, ask_resume,
                         confirm_replace, show_error)
from gui.document import Document, OpenCancelled, Options  # noqa: F401  (Options: public)
from gui.jobs import JobRunner
from gui.layout import setup_ui
from gui.window_display import DisplayMixin
from gui.window_objects import ObjectsMixin
from gui.window_workspace import WorkspaceMixin
from gui.session_bridge import SessionBridge
from util.errors import UserError

VIDEO_FILTER = 'Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg *.mpeg *.wmv);;All files (*)'
AUTOSAVE_MS = 1000
PREPARE_MS = 250      # a frame shown this long without moving on gets prepared for interaction


class MainWindow(DisplayMixin, ObjectsMixin, WorkspaceMixin, QMainWindow):
    jobFinished = pyqtSignal(str, bool)      # job title, completed (tests wait on this)

    def __init__(self, options=None, networks=None):
        super().__init__()
        self.opts = options or Options()
        self.controller = Controller()
        self.document = Document(self.opts, networks, log=self.log,
                                 ask_resume=lambda p, d: ask_resume(self, p, d),
                                 ask_mismatch=lambda p, r, a: ask_mismatch(self, p, r, a),
                                 ask_locked=lambda p, m, b: ask_locked(self, p, m, b))
        self.overlay_mode = 'davis'
        self.layer_image = None
        self._confidence_stale = True
        self._has_mask = np.zeros(0, bool)
        self.bridge = SessionBridge(self)
        self.bridge.framesChanged.connect(self.on_masks_changed)
        self.bridge.objectsChanged.connect(self.on_objects_changed)

        self.setWindowTitle('Interactive VOS')
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        setup_ui(self)
        setup_actions(self)
        self.jobs = JobRunner(self, self.progress, self.cancel_button, self.log, self.error)
        self.jobs.started.connect(self._on_job_started)
        self.jobs.finished.connect(self._on_job_finished)
        self._set_editing_enabled(False)
        self.update_status()

        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_step)
        # when the person stops on a frame, the interaction net reads it ahead of the first
        # stroke (Session.prepare_interaction): the stroke itself then answers faster
        self.prepare_timer = QTimer(self)
        self.prepare_timer.setSingleShot(True)
        self.prepare_timer.setInterval(PREPARE_MS)
        self.prepare_timer.timeout.connect(self._prepare_frame)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.flush_workspace)
        self.autosave_timer.start()
        if networks is not None:
            self.log(f'Networks: {networks.kind} on {networks.device}')

    # ================================================================== state, for reading
    session = property(lambda self: self.document.session)
    workspace = property(lambda self: self.document.workspace)
    networks = property(lambda self: self.document.networks)
    worker = property(lambda self: self.jobs.worker)
    cursor = property(lambda self: self.controller.cursor)
    obj = property(lambda self: self.controller.obj)
    mode = property(lambda self: self.controller.mode)
    local_mode = property(lambda self: self.controller.local_mode)

    def busy(self):
        return self.jobs.busy

    # ================================================================== messages
    def log(self, text, level='info'):
        self.console.log(text, level)

    def error(self, message, title='Error'):
        """A UserError-style message: console + message box."""
        self.log(message, 'error')
        show_error(self, title, message)

    def _try(self, fn, *args, title='Error', **kw):
        """Run a controller/document call under a wait cursor; a UserError becomes a message
        box (and None is returned)."""
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            result = fn(*args, **kw)
        except UserError as e:
            QApplication.restoreOverrideCursor()
            self.error(str(e), title)
            return None
        QApplication.restoreOverrideCursor()
        return result

    def _can_edit(self):
        if self.session is None:
            return False
        if self.busy():
            self.log('Busy: wait for the running job or cancel it (Esc).', 'warning')
            return False
        return True

    def _set_editing_enabled(self, on):
        has = self.session is not None
        edit = on and has and not self.busy()
        for a in (self.act_commit, self.act_propagate, self.act_reset, self.act_load_masks,
                  self.act_load_annotations, self.act_add_obj):
            a.setEnabled(edit)
        can_adapt = edit and self.session.can_adapt
        self.act_adapt.setEnabled(can_adapt)
        self.act_unadapt.setEnabled(can_adapt and bool(self.session.adapted_frames))
        self.act_export.setEnabled(has and not self.busy())
        self.act_save_as.setEnabled(has and not self.busy())
        for a in (self.act_open_video, self.act_open_images):
            a.setEnabled(not self.busy())
        for b in (self.btn_obj_add, self.btn_obj_rename, self.btn_obj_color, self.btn_obj_del):
            b.setEnabled(edit)
        self.canvas.editable = edit
        self._update_undo_actions()

    def _update_undo_actions(self):
        s = self.session
        edit = s is not None and not self.busy()
        self.act_undo.setEnabled(bool(edit and s.can_undo))
        self.act_redo.setEnabled(bool(edit and s.can_redo))

    def _after_edit(self, message=None):
        if message:
            self.log(message)
        self.flush_workspace()
        self._update_undo_actions()
        self.refresh_view()

    # ================================================================== opening and closing
    def open_video_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, 'Open video', '', VIDEO_FILTER)
        if path:
            self.open_path(path)

    def open_images_dialog(self):
        path = QFileDialog.getExistingDirectory(self, 'Open image folder')
        if path:
            self.open_path(path)

    def open_path(self, path, masks=None, resume=None):
        """Load a video file / image folder as a job; on success it replaces the current video
        (after saving it). Errors -> message box, nothing changed."""
        if self.busy():
            self.error('Wait for the running job to finish (or cancel it) first.')
            return
        if not self.confirm_unsaved('open another video'):
            return
        self.log(f'Opening {path} \u2026')

        def done(session):
            if session is None:
                self.log('Opening cancelled.')
                return
            try:
                self.install(session, masks=masks, resume=resume)
            except OpenCancelled:
                session.close()
                self.log('Opening cancelled.')
            except UserError as e:
                session.close()
                self.error(str(e), 'Cannot open')
        self.run_job(self.document.open_job(path, resume),
                     f'Loading {os.path.basename(path.rstrip(os.sep)) or path}', done,
                     title='Cannot open')

    def open_now(self, path, masks=None, resume=None):
        """Open synchronously (command line, tests); raises UserError."""
        session = self.document.open_job(path, resume)(None, None)
        try:
            self.install(session, masks=masks, resume=resume)
        except BaseException:
            session.close()
            raise

    def install(self, session, masks=None, resume=None):
        """Make `session` the open video (Document.install: workspace, masks) and show it."""
        self.bridge.detach()
        first = self.document.install(session, masks=masks, resume=resume)
        self.bridge.attach(session)
        c = self.controller
        c.attach(session, first)
        st = self.document.settings
        if st.get('overlay') in overlay_mod.MODES:
            self.set_overlay_mode(st['overlay'])
        if isinstance(st.get('brushes'), dict):
            c.brushes.update({m: int(r) for m, r in st['brushes'].items() if m in MODES})
        self.set_mode(st['mode'] if st.get('mode') in MODES else c.mode, force=True)
        if isinstance(st.get('object'), int) and 1 <= st['object'] <= session.num_objects:
            c.obj = st['object']
        self._has_mask = session.frames_with_masks()
        self.canvas.clear_marks()
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, session.num_frames - 1)
        self.timeline.setValue(c.cursor)
        self.timeline.blockSignals(False)
        self.canvas.reset_view()
        self.flush_workspace()
        name = os.path.basename(session.source.rstrip(os.sep)) if session.source else 'untitled'
        self.setWindowTitle(f'{name} \u2013 Interactive VOS')
        ws = self.workspace
        self.log(f'Opened {session.source or "video"}: {session.num_frames} frames, processing '
                 f'{session.width}x{session.height} (original {session.orig_width}x'
                 f'{session.orig_height})' + (f', workspace {ws.path}' if ws else ''))
        self._rebuild_object_list()
        self._set_editing_enabled(True)
        self.goto(c.cursor, force=True)

    def close_video(self):
        self.bridge.detach()
        self.document.close(self.workspace_settings())
        self.controller.detach()

    def load_masks_dialog(self):
        if self.session is not None and not self.busy():
            path = QFileDialog.getExistingDirectory(self, 'Load masks (folder of PNGs)')
            if path:
                self.load_masks(path)

    def load_annotations_dialog(self):
        if self.session is not None and not self.busy():
            path, _ = QFileDialog.getOpenFileName(self, 'Load annotations (COCO or YouTube-VIS '
                                                  'JSON)', '', 'Annotation files (*.json)')
            if path:
                self.load_masks(path)

    def load_masks(self, path):
        """Load masks into the current video (one undo step). Errors -> message box."""
        if not self._can_edit():
            return
        self.end_interaction()
        done = self._try(self.document.load_masks, path, title='Cannot load masks')
        if done is None:
            return
        self.log(f'Loaded {len(done)} mask(s) from {path}')
        self._rebuild_object_list()
        if done:
            self.goto(done[0], force=True)
        self._after_edit()

    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        urls = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if urls:
            e.acceptProposedAction()
            self.open_path(urls[0])

    # ================================================================== jobs
    def run_job(self, fn, label, on_done=None, title='Error'):
        self.stop_play()
        return self.jobs.run(fn, label, on_done, title)

    def _on_job_started(self, label):
        self.status_info.setText(label + '\u2026')
        self._set_editing_enabled(False)

    def _on_job_finished(self, label, completed):
        self.status_info.setText('')
        self._set_editing_enabled(True)
        self.flush_workspace()
        self._update_confidence()
        self.refresh_view()
        self.jobFinished.emit(label, completed)

    def cancel_job(self):
        self.jobs.cancel()

    def escape(self):
        if self.busy():
            self.cancel_job()
        else:
            self.canvas.cancel_stroke()
            if self.canvas.region_select:
                self.btn_local.setChecked(False)

    # ================================================================== interaction
    def set_mode(self, mode, force=False):
        if mode not in MODES or (mode == self.mode and not force):
            return
        c = self.controller
        self.canvas.clear_marks()
        c.set_mode(mode)
        self.canvas.set_brush(c.brush)
        self.canvas.mode = mode
        for m, b in self.mode_buttons.items():
            b.setChecked(m == mode)
        self.mode_actions[mode].setChecked(True)
        self.document.mark_settings_dirty()
        self.update_status()
        self.canvas.update()

    def on_brush_changed(self, r):
        self.controller.set_brush(r)
        if self.brush_slider.value() != r:
            self.brush_slider.blockSignals(True)
            self.brush_slider.setValue(r)
            self.brush_slider.blockSignals(False)
        self.brush_label.setText(str(r))
        self.document.mark_settings_dirty()
        self.update_status()

    def stroke(self, points, positive=True):
        """A finished stroke on the canvas (also what the demo runner calls)."""
        c = self.controller
        if not self._can_edit():
            self.canvas.clear_marks()
            return
        if c.local_mode and c.local_region is not None:
            r = self.canvas.visible_rect()       # the region follows zooming and panning
            c.set_local_region(r.x(), r.y(), r.right(), r.bottom())
        msg = self._try(c.stroke, points, positive)
        if msg is None:
            self.canvas.clear_marks()
            return
        self._after_edit(msg)

    def click(self, x, y, positive=True):
        """A click on the canvas (also what the demo runner calls)."""
        if not self._can_edit():
            return
        msg = self._try(self.controller.click, x, y, positive)
        if msg is not None:
            self.canvas.add_click_mark(x, y, positive)
            self._after_edit(msg)

    def box(self, x0, y0, x1, y1):
        """A box dragged on the canvas in Box mode (image coordinates)."""
        if not self._can_edit():
            return
        msg = self._try(self.controller.box, x0, y0, x1, y1)
        if msg is not None:
            self.canvas.add_box_mark(x0, y0, x1, y1)
            self._after_edit(msg)

    def set_local_mode(self, on):
        self.controller.set_local(on)
        if self.act_local.isChecked() != bool(on):
            self.act_local.setCheckable(True)
            self.act_local.setChecked(bool(on))
        self.canvas.clear_marks()
        self.canvas.region_select = bool(on)
        if on:
            self.log('Local refinement: drag a box around the part to refine.')
        else:
            self.canvas.reset_view()
        self.update_status()

    def on_region_selected(self, rect):
        self.canvas.region_select = False
        self.canvas.zoom_to_rect(rect)
        self.controller.set_local_region(rect.x(), rect.y(), rect.right(), rect.bottom())
        self.set_mode(self.controller.mode, force=True)
        self.log(f'Local region x {rect.x():.0f}\u2013{rect.right():.0f}, '
                 f'y {rect.y():.0f}\u2013{rect.bottom():.0f}: scribbles now refine this region.')

    def end_interaction(self):
        self.canvas.clear_marks()
        self.controller.end_interaction()

    def commit(self):
        """MiVOS 'Commit': finish the current interaction; the next strokes start a new one."""
        if self.session is not None and not self.busy():
            self.end_interaction()
            self.log(f'Committed frame {self.cursor}')

    def undo(self):
        self._undo_redo(self.controller.undo)

    def redo(self):
        self._undo_redo(self.controller.redo)

    def _undo_redo(self, fn):
        if self.session is None or self.busy():
            return
        self.canvas.clear_marks()
        msg = self._try(fn)
        if msg is None:
            return
        for x, y, positive in self.controller.active_clicks():
            self.canvas.add_click_mark(x, y, positive)
        self._rebuild_object_list()
        self.goto(self.cursor, force=True)
        self._after_edit(msg)

    def reset_frame(self):
        if self._can_edit():
            self.canvas.clear_marks()
            self._after_edit(self._try(self.controller.reset_frame))

    def propagate(self):
        if not self._can_edit():
            return None
        job = self._try(self.controller.propagate_job, title='Nothing to propagate')
        if job is None:
            return None
        self.canvas.clear_marks()
        self.log(f'Propagating from frame {self.cursor} \u2026')
        return self.run_job(job, 'Propagating', title='Propagation failed')

    def adapt_network(self):
        if not self._can_edit():
            return None
        found = self._try(self.controller.adapt_job, title='Nothing to adapt to')
        if found is None:
            return None
        frames, job = found
        self.log(f'Adapting the propagation network to frame(s) '
                 f'{", ".join(map(str, frames))} \u2026')

        def done(ok):
            if ok:
                self.log('Network adapted: propagate (P) to use it; Edit \u25b8 Use the shipped '
                         'network undoes it.')
        return self.run_job(job, 'Adapting network', done, title='Adaptation failed')

    def reset_adaptation(self):
        if self._can_edit() and self.session.adapted_frames:
            self._try(self.session.reset_adaptation)
            self.log('Propagating with the shipped network again.')
            self._set_editing_enabled(True)

    # ================================================================== export
    def export_dialog(self):
        if self.session is None or self.busy():
            return
        s = self.session
        dlg = ExportDialog(self, self.document.default_export_dir(),
                           size_text=f'{s.orig_width}x{s.orig_height}')
        if dlg.exec_() == ExportDialog.Accepted:
            self.export(dlg.out_dir(), dlg.formats(), dlg.alpha())

    def export(self, out_dir, formats, alpha=0.5, overwrite=None):
        """Export as a job. Existing files are replaced only after the person agrees
        (overwrite=None asks; True/False decide); errors -> message box, and the previous
        export stays as it was."""
        if self.session is None:
            return None
        existing = self._try(self.document.existing_outputs, out_dir, formats,
                             title='Cannot export')
        if existing is None:
            return None
        if existing and overwrite is None:
            overwrite = confirm_replace(self, out_dir, existing)
            if not overwrite:
                self.log('Export cancelled: nothing was replaced.')
                return None
        self.flush_workspace()

        def done(ok):
            if ok:
                self.log(f'Exported {", ".join(formats)} to {out_dir}')
            else:
                self.log('Export cancelled: nothing was written or replaced.', 'warning')
        return self.run_job(self.document.export_job(out_dir, formats, alpha, bool(overwrite)),
                            'Exporting', done, title='Cannot export')

    # ================================================================== misc
    def show_help(self):
        HelpDialog(self).exec_()

    def closeEvent(self, e):
        self.jobs.stop()
        if not self.confirm_unsaved('close the window'):
            e.ignore()
            return
        self.play_timer.stop()
        self.prepare_timer.stop()
        self.autosave_timer.stop()
        self.close_video()
        super().closeEvent(e)
