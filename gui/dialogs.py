"""Dialogs: keyboard shortcut help, export, the questions of the document, and Messages
(the Messages panel and error boxes)."""
import os

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (QApplication, QCheckBox, QDialog, QDialogButtonBox,
                             QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                             QHeaderView, QLabel, QLineEdit, QMessageBox, QPushButton,
                             QTableWidget, QTableWidgetItem, QVBoxLayout)

from util.errors import UserError

SHORTCUTS = [
    ('Mouse', [
        ('Left button', 'positive scribble / click / paint'),
        ('Right button', 'negative scribble / click / erase'),
        ('Mouse wheel', 'brush size'),
        ('Ctrl + wheel', 'zoom in / out at the cursor'),
        ('Middle drag', 'pan the zoomed view'),
    ]),
    ('Modes', [
        ('S', 'Scribble mode (scribble-to-mask)'),
        ('C', 'Click mode (click-to-mask)'),
        ('F', 'Free mode (brush paints the mask directly)'),
        ('B', 'Box mode: drag a rectangle around the object (then refine with clicks)'),
        ('L', 'Local refinement: drag a box to zoom in, scribbles refine that region'),
        ('[  /  ]', 'smaller / larger brush'),
    ]),
    ('Objects', [
        ('1 \u2026 9', 'select object 1 \u2026 9'),
        ('N', 'next frame to check (the least confident propagated frame)'),
        ('Ctrl+N', 'add an object'),
        ('H', 'hide / show the current object'),
    ]),
    ('Frames', [
        ('Left / Right', 'previous / next frame'),
        ('Page Up / Page Down', '10 frames back / forward'),
        ('Home / End', 'first / last frame'),
        ('Space', 'play / pause'),
    ]),
    ('Editing', [
        ('P', 'propagate from this frame (fuses with other edited frames)'),
        ('Shift+P', 'adapt the bundled network to the annotated frames (under a minute; then P)'),
        ('Enter', 'commit the current interaction'),
        ('Ctrl+Z', 'undo'),
        ('Ctrl+Shift+Z / Ctrl+Y', 'redo'),
        ('R', 'reset (clear) this frame'),
        ('Esc', 'cancel the running job / the stroke'),
    ]),
    ('View', [
        ('+ / -', 'zoom in / out'),
        ('0', 'fit the frame in the window'),
        ('V', 'next overlay mode'),
    ]),
    ('Files', [
        ('Ctrl+O', 'open a video'),
        ('Ctrl+Shift+O', 'open an image folder'),
        ('Ctrl+M', 'load masks'),
        ('Ctrl+E / Ctrl+S', 'export masks'),
        ('F1 or ?', 'this help'),
    ]),
]


class HelpDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle('Keyboard shortcuts')
        self.resize(660, 640)
        lay = QVBoxLayout(self)
        rows = sum(len(items) + 1 for _, items in SHORTCUTS)
        table = QTableWidget(rows, 2, self)
        table.setHorizontalHeaderLabels(['Key', 'Action'])
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(24)
        table.setShowGrid(False)
        table.setAlternatingRowColors(True)
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        table.setSelectionMode(QTableWidget.NoSelection)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        r = 0
        for group, items in SHORTCUTS:
            head = QTableWidgetItem(group)
            f = head.font()
            f.setBold(True)
            head.setFont(f)
            table.setItem(r, 0, head)
            table.setSpan(r, 0, 1, 2)
            r += 1
            for key, action in items:
                table.setItem(r, 0, QTableWidgetItem(key))
                table.setItem(r, 1, QTableWidgetItem(action))
                r += 1
        self.table = table
        lay.addWidget(table)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)


class ExportDialog(QDialog):
    """Pick an output folder and formats. Values: out_dir(), formats(), alpha()."""

    FORMAT_LABELS = [
        ('png', 'Indexed PNG masks (DAVIS palette)',
         'masks/<frame>.png, index = object id: DAVIS / YouTube-VOS tools'),
        ('objects', 'Per-object binary PNGs', 'objects/<object>/<frame>.png, 0 / 255'),
        ('soft', 'Per-object soft masks (probabilities)',
         'soft/<object>/<frame>.png, 0..255: matting, soft-label training'),
        ('coco', 'COCO JSON (one file)',
         'annotations.json: RLE per object and frame with track ids (pycocotools, CVAT, FiftyOne)'),
        ('ytvis', 'YouTube-VIS JSON', 'ytvis.json: one entry per object over all frames'),
        ('mp4', 'Overlay video (H.264 MP4)',
         'overlay.mp4, object colours over the video; plays in web browsers'),
    ]

    def __init__(self, parent=None, default_dir='', selected=('png',), alpha=0.5, size_text=''):
        super().__init__(parent)
        self.setWindowTitle('Export masks')
        self.setMinimumWidth(520)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        row = QHBoxLayout()
        self.dir_edit = QLineEdit(default_dir)
        self.dir_edit.setToolTip('Folder the exported files are written into (created if needed)')
        browse = QPushButton('Browse\u2026')
        browse.clicked.connect(self._browse)
        row.addWidget(self.dir_edit, 1)
        row.addWidget(browse)
        form.addRow('Output folder:', row)
        lay.addLayout(form)
        box = QGroupBox('Formats' + (f' (at the original resolution, {size_text})' if size_text else ''))
        bl = QVBoxLayout(box)
        self.checks = {}
        for key, label, tip in self.FORMAT_LABELS:
            cb = QCheckBox(label)
            cb.setToolTip(tip)
            cb.setChecked(key in selected)
            bl.addWidget(cb)
            self.checks[key] = cb
        arow = QHBoxLayout()
        arow.addWidget(QLabel('Overlay opacity:'))
        self.alpha_spin = QDoubleSpinBox()
        self.alpha_spin.setRange(0.05, 1.0)
        self.alpha_spin.setSingleStep(0.05)
        self.alpha_spin.setValue(alpha)
        arow.addWidget(self.alpha_spin)
        arow.addStretch(1)
        bl.addLayout(arow)
        lay.addWidget(box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText('Export')
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    def _browse(self):
        d = QFileDialog.getExistingDirectory(self, 'Export to folder', self.dir_edit.text())
        if d:
            self.dir_edit.setText(d)

    def _accept(self):
        if not self.out_dir():
            QMessageBox.warning(self, 'Export', 'Choose an output folder.')
            return
        if not self.formats():
            QMessageBox.warning(self, 'Export', 'Choose at least one format.')
            return
        self.accept()

    def out_dir(self):
        return os.path.expanduser(self.dir_edit.text().strip())

    def formats(self):
        return [k for k, cb in self.checks.items() if cb.isChecked()]

    def alpha(self):
        return float(self.alpha_spin.value())


def ask_resume(parent, ws_path, description):
    """'resume' | 'fresh' | 'cancel'."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle('Resume previous work?')
    box.setText('This video has saved work from a previous session.')
    box.setInformativeText(f'{description}\n\nWorkspace: {ws_path}')
    resume = box.addButton('Resume', QMessageBox.AcceptRole)
    fresh = box.addButton('Start over', QMessageBox.DestructiveRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(resume)
    box.exec_()
    clicked = box.clickedButton()
    if clicked is resume:
        return 'resume'
    if clicked is fresh:
        return 'fresh'
    return 'cancel'


def ask_mismatch(parent, ws_path, reason, keep_as):
    """A saved workspace does not match the video: 'fresh' (keep it under `keep_as`) | 'cancel'."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Warning)
    box.setWindowTitle('Saved work does not match this video')
    box.setText('The workspace saved for this video does not match it (the video changed?).')
    box.setInformativeText(f'{reason}\n\nOpening the video fresh keeps the saved work, untouched, '
                           f'in:\n{keep_as}')
    fresh = box.addButton('Open fresh, keep the old work', QMessageBox.AcceptRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(fresh)
    box.exec_()
    return 'fresh' if box.clickedButton() is fresh else 'cancel'


def confirm_replace(parent, out_dir, existing):
    """Ask before an export replaces files; True to replace them."""
    shown = '\n'.join(os.path.relpath(p, out_dir) for p in existing[:5])
    more = f'\n… and {len(existing) - 5} more' if len(existing) > 5 else ''
    ans = QMessageBox.question(
        parent, 'Replace files?',
        f'{len(existing)} file(s) in {out_dir} will be replaced by this export:\n\n{shown}{more}'
        '\n\nOther files in the folder are not touched.',
        QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
    return ans == QMessageBox.Yes


def show_error(parent, title, message):
    """The one place GUI errors are shown (tests monkeypatch QMessageBox.critical)."""
    QMessageBox.critical(parent, title, message)


class Messages:
    """What the window tells the person: lines in the Messages panel (`console`) and error
    boxes over `parent`."""

    def __init__(self, parent, console):
        self.parent = parent
        self.console = console

    def log(self, text, level='info'):
        self.console.log(text, level)

    def error(self, message, title='Error'):
        """A UserError-style message: the panel + a message box."""
        self.log(message, 'error')
        show_error(self.parent, title, message)

    def attempt(self, fn, *args, title='Error', **kw):
        """fn(*args, **kw) under a wait cursor; a UserError becomes a message box (and None
        is returned)."""
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            result = fn(*args, **kw)
        except UserError as e:
            QApplication.restoreOverrideCursor()
            self.error(str(e), title)
            return None
        QApplication.restoreOverrideCursor()
        return result


def ask_locked(parent, ws_path, message, beside):
    """Another window holds the workspace: 'readonly' | 'fresh' (a new workspace at `beside`)
    | 'cancel'."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Warning)
    box.setWindowTitle('This video is open in another window')
    box.setText('Another window is working on this video and saves into its workspace. Two '
                'windows saving into one workspace would overwrite each other\u2019s work.')
    box.setInformativeText(f'{message}\n\nRead-only shows the saved work and saves nothing '
                           f'(File \u25b8 Save workspace as\u2026 can keep it). A fresh workspace '
                           f'is created beside it:\n{beside}')
    ro = box.addButton('Open read-only', QMessageBox.AcceptRole)
    fresh = box.addButton('Open with a fresh workspace', QMessageBox.ActionRole)
    box.addButton('Quit', QMessageBox.RejectRole)
    box.setDefaultButton(ro)
    box.exec_()
    clicked = box.clickedButton()
    return 'readonly' if clicked is ro else 'fresh' if clicked is fresh else 'cancel'


def ask_autosave_failed(parent, message):
    """Autosave stopped working: 'elsewhere' (save the workspace in another folder now) |
    'continue' (keep working; autosave retries and the status bar keeps warning)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Critical)
    box.setWindowTitle('Your work is not being saved')
    box.setText('Autosave cannot write the workspace. What you do from now on is lost if the '
                'window closes, unless it can be saved.')
    box.setInformativeText(f'{message}\n\nFree some space (autosave retries every second) or '
                           'save the workspace in another folder.')
    elsewhere = box.addButton('Save the workspace elsewhere\u2026', QMessageBox.AcceptRole)
    box.addButton('Keep working', QMessageBox.RejectRole)
    box.setDefaultButton(elsewhere)
    box.exec_()
    return 'elsewhere' if box.clickedButton() is elsewhere else 'continue'


def ask_unsaved(parent, message, action):
    """Unsaved work would be lost by `action` ('close the window'): 'elsewhere' | 'discard' |
    'cancel'."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Warning)
    box.setWindowTitle('Unsaved work')
    box.setText(f'Some of your work is not saved. If you {action} now, it is lost.')
    box.setInformativeText(message)
    elsewhere = box.addButton('Save the workspace elsewhere\u2026', QMessageBox.AcceptRole)
    discard = box.addButton('Discard and ' + action, QMessageBox.DestructiveRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(elsewhere)
    box.exec_()
    clicked = box.clickedButton()
    return 'elsewhere' if clicked is elsewhere else 'discard' if clicked is discard else 'cancel'


def choose_folder(parent, title, start=''):
    """A folder picked by the person ('' when cancelled)."""
    return QFileDialog.getExistingDirectory(parent, title, start)
