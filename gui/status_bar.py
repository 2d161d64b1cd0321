"""The status bar: frame, object, tool, device, what is under the mouse or running, the red
'not saved' warning, and the running job's progress bar and Cancel button (gui/jobs.py drives
those two)."""
from PyQt5.QtCore import QObject, Qt
from PyQt5.QtWidgets import QLabel, QProgressBar, QToolButton

from gui.controller import MODE_NAMES
from gui.icons import icon
from util.errors import UserError


class StatusBar(QObject):
    def __init__(self, window, controller, document):
        super().__init__(window)
        self.controller, self.document = controller, document
        sb = window.statusBar()
        self.status_frame = QLabel()
        self.status_object = QLabel()
        self.status_mode = QLabel()
        self.status_device = QLabel()
        self.status_info = QLabel()
        for w in (self.status_frame, self.status_object, self.status_mode, self.status_device):
            w.setContentsMargins(6, 0, 6, 0)
            sb.addWidget(w)
        sb.addWidget(self.status_info, 1)
        # work that is not being saved (autosave fails, read-only workspace): red, until it is
        self.status_saved = QLabel()
        self.status_saved.setStyleSheet('QLabel { color: white; background: #b00020; '
                                        'font-weight: bold; padding: 0 6px; }')
        self.status_saved.hide()
        sb.addPermanentWidget(self.status_saved)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QToolButton()
        self.cancel_button.setIcon(icon('cancel'))
        self.cancel_button.setText('Cancel')
        self.cancel_button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.cancel_button.setToolTip('Stop the running job after the current frame (Esc)')
        self.cancel_button.hide()
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)

    def follow(self, jobs):
        """The running job's name while it runs."""
        jobs.started.connect(lambda label: self.status_info.setText(label + '\u2026'))
        jobs.finished.connect(lambda *_: self.status_info.setText(''))
        jobs.finished.connect(self.update)

    def update(self):
        s, c = self.document.session, self.controller
        if s is None:
            self.status_frame.setText('No video')
        else:
            edited = ' (edited)' if c.cursor in s.edited_frames else ''
            self.status_frame.setText(f'Frame {c.cursor} / {s.num_frames - 1}{edited}')
        if s is not None and 1 <= c.obj <= s.num_objects:
            o = s.get_object(c.obj)
            r, g, b = o.color
            self.status_object.setText(
                f'<span style="color: rgb({r},{g},{b}); font-size: 14pt">\u25a0</span> '
                f'Object {o.id}: {o.name}' + ('' if o.visible else ' (hidden)'))
        else:
            self.status_object.setText('No object')
        mode = MODE_NAMES[c.mode] + (' \u00b7 local' if c.local_mode else '')
        self.status_mode.setText(f'Mode: {mode} \u00b7 brush {c.brush}')
        nets, opts = self.document.networks, self.document.opts
        dev = getattr(nets, 'device', None) or opts.device
        kind = getattr(nets, 'kind', None)
        self.status_device.setText(f'Device: {dev}' + (f' ({kind})' if kind else ''))

    def on_hover(self, x, y):
        """The label under the mouse; a Session snapshot, so also while a propagation writes."""
        s = self.document.session
        if x >= 0 and s is not None:
            try:
                lab = s.label_at(self.controller.cursor, x, y)
            except UserError:
                return          # the video closed meanwhile
            self.status_info.setText(f'x {x}, y {y}, label {lab}')

    def show_saved(self, text):
        """The red warning ('' hides it)."""
        if self.status_saved.text() != text:
            self.status_saved.setText(text)
            self.status_saved.setToolTip(text)
            self.status_saved.setVisible(bool(text))
