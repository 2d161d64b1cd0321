"""The main window: it only assembles the parts and connects them.

Who does what (docs/ARCHITECTURE.md has the picture):
  gui/controller.py        interaction state + verbs -> Session calls (no Qt)
  gui/document.py          open / resume / autosave / export of the Session (no Qt)
  gui/session_bridge.py    Session change events -> Qt signals: the one refresh path
  gui/edit_gate.py         whether the person may edit now; every edit goes through it
  gui/jobs.py              background jobs with progress and Cancel
  gui/frame_view.py        FrameView: canvas, timeline, View box, playback
  gui/objects_panel.py     ObjectsPanel        gui/tools_panel.py    ToolsPanel (Interaction)
  gui/status_bar.py        StatusBar           gui/actions.py        Actions, menus, toolbar
  gui/edit_flow.py         EditFlow: strokes, clicks, boxes, undo / redo, propagate, adapt
  gui/open_flow.py         OpenFlow: open, install, load masks, close
  gui/export_flow.py       ExportFlow          gui/window_workspace.py  WorkspaceGuard
                                                                    (autosave, save as, unsaved)
Errors (UserError) become message boxes (gui/dialogs.py Messages).
"""
from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QMainWindow

from gui.actions import Actions
from gui.controller import Controller
from gui.dialogs import HelpDialog, Messages, ask_locked, ask_mismatch, ask_resume
from gui.document import Document, OpenCancelled, Options  # noqa: F401  (public names)
from gui.edit_flow import EditFlow
from gui.edit_gate import EditGate
from gui.export_flow import ExportFlow
from gui.frame_view import FrameView
from gui.jobs import JobRunner
from gui.layout import place
from gui.objects_panel import ObjectsPanel
from gui.open_flow import OpenFlow
from gui.session_bridge import SessionBridge
from gui.status_bar import StatusBar
from gui.tools_panel import ToolsPanel
from gui.widgets import Console
from gui.window_workspace import WorkspaceGuard


class MainWindow(QMainWindow):
    jobFinished = pyqtSignal(str, bool)      # job title, completed (tests wait on this)

    def __init__(self, options=None, networks=None):
        super().__init__()
        self.opts = options or Options()
        self.setWindowTitle('Interactive VOS')
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.controller = c = Controller()
        self.console = Console()
        self.messages = Messages(self, self.console)
        # the questions are looked up here when asked (tests replace them in this module)
        self.document = doc = Document(
            self.opts, networks, log=self.messages.log,
            ask_resume=lambda p, d: ask_resume(self, p, d),
            ask_mismatch=lambda p, r, a: ask_mismatch(self, p, r, a),
            ask_locked=lambda p, m, b: ask_locked(self, p, m, b))
        self.bridge = SessionBridge(self)
        self.status = StatusBar(self, c, doc)
        self.jobs = JobRunner(self, self.status.progress, self.status.cancel_button,
                              self.messages.log, self.messages.error)
        self.gate = gate = EditGate(doc, self.jobs, self.bridge, self.messages, self)
        self.view = FrameView(self, c, doc, self.messages, gate)
        self.saver = WorkspaceGuard(self, c, doc, self.view, self.status, gate)
        self.objects = ObjectsPanel(self, c, doc, gate, self.view.canvas)
        self.tools = ToolsPanel(self, c, doc, self.view.canvas, self.messages, self.jobs)
        self.edit = EditFlow(c, doc, gate, self.view, self.jobs)
        self.opener = OpenFlow(self, c, doc, self.bridge, self.jobs, gate, view=self.view,
                               tools=self.tools, objects=self.objects, saver=self.saver)
        self.exporter = ExportFlow(self, doc, self.jobs, gate, self.saver)
        self.messages_dock = place(self, self.view.widget,
                                   [self.objects.box, self.tools.box, self.view.box],
                                   self.console)
        self.acts = Actions(self)
        self._connect()
        gate.update()
        self.status.update()
        if networks is not None:
            self.messages.log(f'Networks: {networks.kind} on {networks.device}')

    def _connect(self):
        # The one refresh path: the Session's change events, merged per edit, to every part
        # that shows them (the gate, connected first, re-enables what can be undone).
        for part in (self.objects, self.view, self.saver):
            self.bridge.changed.connect(part.on_session_changed)
        for shown in (self.view.shown, self.objects.selectionChanged, self.tools.toolChanged):
            shown.connect(self.status.update)
        self.view.canvas.hovered.connect(self.status.on_hover)
        self.status.follow(self.jobs)
        self.jobs.started.connect(self.view.stop_play)
        self.jobs.finished.connect(self.saver.flush)
        self.jobs.finished.connect(lambda *_: self.view.update_confidence())
        self.jobs.finished.connect(self.jobFinished)       # last: everything else is done

    session = property(lambda self: self.document.session)

    def show_help(self):
        HelpDialog(self).exec_()

    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        self.opener.drop(e)

    def closeEvent(self, e):
        self.jobs.stop()
        if not self.saver.confirm_unsaved('close the window'):
            e.ignore()
            return
        self.view.stop_timers()
        self.saver.autosave_timer.stop()
        self.opener.close_video()
        super().closeEvent(e)
