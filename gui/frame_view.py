"""The frame view: the current frame with its masks (the canvas), the timeline row under it,
the View box (overlay style, zoom, minimap) and playback.

It shows the Controller's current frame of the Document's Session. What it draws changes when
the person moves (goto, playback, overlay, zoom) and when the Session says so
(`on_session_changed`, from gui/session_bridge.py); it never edits anything.
"""
import cv2
import numpy as np
from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel,
                             QVBoxLayout, QWidget)

from gui import overlay as overlay_mod
from gui.canvas import Canvas
from gui.icons import icon
from gui.widgets import Minimap, Timeline, tool_button
from util.errors import UserError

PREPARE_MS = 250      # a frame shown this long without moving on gets prepared for interaction


class FrameView(QObject):
    shown = pyqtSignal()          # another frame, image or view is shown (the status follows)

    def __init__(self, window, controller, document, messages, gate):
        super().__init__(window)
        self.window, self.controller, self.document = window, controller, document
        self.messages, self.gate = messages, gate
        self.overlay_mode = 'davis'
        self.layer_image = None
        self._confidence_stale = True
        self._has_mask = np.zeros(0, bool)
        self.widget = self._build_frame()
        self.box = self._build_view_box()
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_step)
        # when the person stops on a frame, the interaction net reads it ahead of the first
        # stroke (Session.prepare_interaction): the stroke itself then answers faster
        self.prepare_timer = QTimer(self)
        self.prepare_timer.setSingleShot(True)
        self.prepare_timer.setInterval(PREPARE_MS)
        self.prepare_timer.timeout.connect(self._prepare_frame)
        gate.changed.connect(self._on_gate)

    session = property(lambda self: self.document.session)

    def _build_frame(self):
        """The canvas and the row under it (previous / play / next, timeline, frame number)."""
        central = QWidget(self.window)
        vbox = QVBoxLayout(central)
        vbox.setContentsMargins(4, 4, 4, 4)
        vbox.setSpacing(4)
        self.canvas = Canvas(central)
        self.canvas.viewChanged.connect(self.on_view_changed)
        vbox.addWidget(self.canvas, 1)
        row = QHBoxLayout()
        self.btn_play = tool_button('play', 'Play / pause (Space)', self.toggle_play)
        row.addWidget(tool_button('prev', 'Previous frame (Left)', lambda: self.step(-1)))
        row.addWidget(self.btn_play)
        row.addWidget(tool_button('next', 'Next frame (Right)', lambda: self.step(1)))
        self.timeline = Timeline(central)
        self.timeline.valueChanged.connect(self.goto)
        row.addWidget(self.timeline, 1)
        self.frame_label = QLabel('\u2013 / \u2013')
        self.frame_label.setMinimumWidth(90)
        self.frame_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        row.addWidget(self.frame_label)
        vbox.addLayout(row)
        return central

    def _build_view_box(self):
        box = QGroupBox('View')
        vl = QVBoxLayout(box)
        self.overlay_combo = QComboBox()
        for m in overlay_mod.MODES:
            self.overlay_combo.addItem(overlay_mod.MODE_LABELS[m], m)
        self.overlay_combo.setToolTip('How masks are drawn over the frame (V cycles)')
        self.overlay_combo.currentIndexChanged.connect(
            lambda i: self.set_overlay_mode(self.overlay_combo.itemData(i)))
        vl.addWidget(self.overlay_combo)
        zrow = QHBoxLayout()
        c = self.canvas
        zrow.addWidget(tool_button('zoom_in', 'Zoom in (+, ctrl+wheel)', lambda: c.zoom_by(1.5)))
        zrow.addWidget(tool_button('zoom_out', 'Zoom out (-)', lambda: c.zoom_by(1 / 1.5)))
        zrow.addWidget(tool_button('zoom_fit', 'Fit the frame (0)', c.reset_view))
        self.zoom_label = QLabel('\u2013')
        self.zoom_label.setToolTip('Display scale: screen pixels per frame pixel (100 % = '
                                   'actual size)')
        zrow.addWidget(self.zoom_label)
        zrow.addStretch(1)
        vl.addLayout(zrow)
        self.minimap = Minimap()
        self.minimap.centerRequested.connect(c.set_center)
        vl.addWidget(self.minimap)
        return box

    # ------------------------------------------------------------------ frames
    def show_video(self, session, cursor):
        """A newly opened video: timeline range, no marks, the whole frame in view."""
        self._has_mask = session.frames_with_masks()
        self._confidence_stale = True
        self.canvas.clear_marks()
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, session.num_frames - 1)
        self.timeline.setValue(cursor)
        self.timeline.blockSignals(False)
        self.canvas.reset_view()

    def goto(self, t):
        if self.session is None:
            return
        if self.controller.goto(t):
            self.canvas.clear_marks()
        self.follow_cursor()
        self.redraw()

    def follow_cursor(self):
        """The timeline follows the controller's frame (after goto, or an undo that moved it)."""
        if self.timeline.value() != self.controller.cursor:
            self.timeline.blockSignals(True)
            self.timeline.setValue(self.controller.cursor)
            self.timeline.blockSignals(False)
        if not self.play_timer.isActive():
            self.prepare_timer.start()          # restarted by every move: fires once settled

    def _prepare_frame(self):
        if self.session is None or self.play_timer.isActive():
            return
        try:
            self.session.prepare_interaction(self.controller.cursor)   # False while busy
        except UserError:
            pass        # e.g. the video was closed meanwhile: nothing to prepare

    def step(self, d):
        if self.session is not None:
            self.goto(self.controller.cursor + d)

    def goto_last(self):
        if self.session is not None:
            self.goto(self.session.num_frames - 1)

    def goto_suggested(self):
        """Jump to the frame to check next (Session.suggest_frame)."""
        if self.session is None:
            return
        found = self.controller.suggested_frame()
        if found is None:
            self.messages.log('Nothing to check yet: propagate first (P).')
            return
        t, c = found
        self.messages.log(f'Frame {t}: the least confident propagated frame (confidence '
                          f'{c:.2f}).')
        self.goto(t)

    def redraw(self):
        """Compose the current frame with its masks (reads are Session snapshots: safe while
        a propagation writes)."""
        s = self.session
        if s is None:
            return
        t = self.controller.cursor
        visible = [o.id for o in s.objects if o.visible]
        img = overlay_mod.compose(s.frame(t), s.get_mask(t), self.overlay_mode, s.colors(),
                                  visible, self.layer_image)
        self.canvas.set_image(img)
        if not self.play_timer.isActive():
            self.minimap.set_image(img)
        self.minimap.set_view(self.canvas.visible_rect())
        self.timeline.set_marks(set(s.edited_frames), self._has_mask)
        if self._confidence_stale:
            self.update_confidence()
        self._update_labels()
        self.shown.emit()

    def on_session_changed(self, frames, objects):
        """The Session changed (gui/session_bridge.py): show it."""
        s = self.session
        if s is None:
            return
        if frames:
            self._confidence_stale = True
            self._has_mask = s.frames_with_masks()
        if objects or self.controller.cursor in frames:
            self.redraw()
        else:
            self.timeline.set_marks(set(s.edited_frames), self._has_mask)

    def update_confidence(self):
        # O(frames): done when masks changed, not on every frame shown (playback, scrubbing)
        self._confidence_stale = False
        if self.session is not None:
            self.timeline.set_confidence(self.session.frame_confidence(),
                                         self.session.suggest_frame())

    def _update_labels(self):
        s, t = self.session, self.controller.cursor
        self.frame_label.setText('\u2013 / \u2013' if s is None else f'{t} / {s.num_frames - 1}')
        self.zoom_label.setText(f'{self.canvas.scale() * 100:.0f} %' if s is not None
                                else '\u2013')

    def on_view_changed(self):
        self.minimap.set_view(self.canvas.visible_rect())
        self._update_labels()
        self.shown.emit()

    def _on_gate(self):
        self.canvas.editable = self.gate.editable()
        # the Session works in the background (a propagation): say so over the frame
        busy = bool(self.gate.background)
        if busy != (self.canvas.cursor().shape() == Qt.BusyCursor):
            self.canvas.setCursor(Qt.BusyCursor) if busy else self.canvas.unsetCursor()

    # ------------------------------------------------------------------ overlay
    def set_overlay_mode(self, mode):
        if mode not in overlay_mod.MODES:
            return
        self.overlay_mode = mode
        i = self.overlay_combo.findData(mode)
        if self.overlay_combo.currentIndex() != i:
            self.overlay_combo.blockSignals(True)
            self.overlay_combo.setCurrentIndex(i)
            self.overlay_combo.blockSignals(False)
        self.document.mark_settings_dirty()
        self.redraw()

    def cycle_overlay(self):
        modes = overlay_mod.MODES
        self.set_overlay_mode(modes[(modes.index(self.overlay_mode) + 1) % len(modes)])

    def choose_layer_image(self):
        path, _ = QFileDialog.getOpenFileName(self.window, 'Layer image', '',
                                              'Images (*.png *.jpg *.jpeg *.bmp *.webp)')
        if not path:
            return
        from util.frames_io import read_image
        img = self.messages.attempt(read_image, path, title='Cannot read image')
        if img is None:
            return
        if self.session is not None:
            img = cv2.resize(img, (self.session.width, self.session.height),
                             interpolation=cv2.INTER_AREA)
        self.layer_image = img
        self.set_overlay_mode('layered')

    # ------------------------------------------------------------------ playback
    def toggle_play(self):
        if self.play_timer.isActive():
            self.stop_play()
        elif self.session is not None and not self.gate.busy():
            if self.controller.cursor >= self.session.num_frames - 1:
                self.goto(0)
            fps = self.session.fps or 24.0
            self.play_timer.start(int(1000 / min(max(fps, 1), 60)))
            self.btn_play.setIcon(icon('pause'))

    def stop_play(self, *_):
        if self.play_timer.isActive():
            self.play_timer.stop()
            self.btn_play.setIcon(icon('play'))
            self.redraw()

    def _play_step(self):
        if self.session is None or self.controller.cursor >= self.session.num_frames - 1:
            self.stop_play()
        else:
            self.goto(self.controller.cursor + 1)

    def stop_timers(self):
        self.play_timer.stop()
        self.prepare_timer.stop()
