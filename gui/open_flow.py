"""Opening a video (a job, or at once for the command line and tests), making it the window's
(install: workspace, restored settings, every part shown), loading masks into it, and closing
it. The Document does the opening and saving; this is the window's side of it."""
import os

from PyQt5.QtWidgets import QFileDialog

from gui import overlay as overlay_mod
from gui.controller import MODES
from gui.document import OpenCancelled
from util.errors import UserError

VIDEO_FILTER = 'Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg *.mpeg *.wmv);;All files (*)'


class OpenFlow:
    def __init__(self, window, controller, document, bridge, jobs, gate, *, view, tools,
                 objects, saver):
        self.window, self.controller, self.document = window, controller, document
        self.bridge, self.jobs, self.gate, self.messages = bridge, jobs, gate, gate.messages
        self.view, self.tools, self.objects, self.saver = view, tools, objects, saver

    session = property(lambda self: self.document.session)

    def open_video_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self.window, 'Open video', '', VIDEO_FILTER)
        if path:
            self.open_path(path)

    def open_images_dialog(self):
        path = QFileDialog.getExistingDirectory(self.window, 'Open image folder')
        if path:
            self.open_path(path)

    def open_path(self, path, masks=None, resume=None):
        """Load a video file / image folder as a job; on success it replaces the current video
        (after saving it). Errors -> message box, nothing changed."""
        if self.jobs.busy:
            self.messages.error('Wait for the running job to finish (or cancel it) first.')
            return
        if not self.saver.confirm_unsaved('open another video'):
            return
        self.messages.log(f'Opening {path} \u2026')

        def done(session):
            if session is None:
                self.messages.log('Opening cancelled.')
                return
            try:
                self.install(session, masks=masks, resume=resume)
            except OpenCancelled:
                session.close()
                self.messages.log('Opening cancelled.')
            except UserError as e:
                session.close()
                self.messages.error(str(e), 'Cannot open')
        self.jobs.run(self.document.open_job(path, resume),
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
        old = self.document.session
        self.bridge.detach()
        try:
            first = self.document.install(session, masks=masks, resume=resume)
        except BaseException:
            if old is not None:
                self.bridge.attach(old)          # the current video stays, and stays shown
            raise
        self.bridge.attach(session)
        c = self.controller
        c.attach(session, first)
        st = self.document.settings
        if st.get('overlay') in overlay_mod.MODES:
            self.view.set_overlay_mode(st['overlay'])
        if isinstance(st.get('brushes'), dict):
            c.brushes.update({m: int(r) for m, r in st['brushes'].items() if m in MODES})
        self.tools.set_mode(st['mode'] if st.get('mode') in MODES else c.mode, force=True)
        if isinstance(st.get('object'), int) and 1 <= st['object'] <= session.num_objects:
            c.obj = st['object']
        self.view.show_video(session, c.cursor)
        self.saver.flush()
        name = os.path.basename(session.source.rstrip(os.sep)) if session.source else 'untitled'
        self.window.setWindowTitle(f'{name} \u2013 Interactive VOS')
        ws = self.document.workspace
        self.messages.log(
            f'Opened {session.source or "video"}: {session.num_frames} frames, processing '
            f'{session.width}x{session.height} (original {session.orig_width}x'
            f'{session.orig_height})' + (f', workspace {ws.path}' if ws else ''))
        self.objects.rebuild()
        self.gate.update()
        self.view.goto(c.cursor)

    def close_video(self):
        self.bridge.detach()
        self.document.close(self.saver.settings())
        self.controller.detach()

    def drop(self, event):
        """A file or folder dropped on the window opens."""
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.open_path(urls[0])

    # ------------------------------------------------------------------ masks
    def load_masks_dialog(self):
        if self.session is not None and not self.gate.busy():
            path = QFileDialog.getExistingDirectory(self.window, 'Load masks (folder of PNGs)')
            if path:
                self.load_masks(path)

    def load_annotations_dialog(self):
        if self.session is not None and not self.gate.busy():
            path, _ = QFileDialog.getOpenFileName(
                self.window, 'Load annotations (COCO or YouTube-VIS JSON)', '',
                'Annotation files (*.json)')
            if path:
                self.load_masks(path)

    def load_masks(self, path):
        """Load masks into the current video (one undo step). Errors -> message box."""
        if not self.gate.can_edit():
            return
        self.view.canvas.clear_marks()
        self.controller.end_interaction()
        done = self.gate.apply(self.document.load_masks, path, title='Cannot load masks')
        if done is None:
            return
        self.messages.log(f'Loaded {len(done)} mask(s) from {path}')
        if done:
            self.view.goto(done[0])
