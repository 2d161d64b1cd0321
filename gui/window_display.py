"""What the window shows: the frame with its masks, the timeline and status bar, the overlay
style, playback. A mixin of MainWindow (gui/main_window.py), which owns the widgets
(gui/layout.py), the Controller and the Document."""
import cv2
from PyQt5.QtWidgets import QFileDialog

from gui import overlay as overlay_mod
from gui.controller import MODE_NAMES
from gui.icons import icon
from util.errors import UserError


class DisplayMixin:
    def goto(self, t, force=False):
        if self.session is None:
            return
        if self.controller.goto(t):
            self.canvas.clear_marks()
        if self.timeline.value() != self.cursor:
            self.timeline.blockSignals(True)
            self.timeline.setValue(self.cursor)
            self.timeline.blockSignals(False)
        self.refresh_view()
        if not self.play_timer.isActive():
            self.prepare_timer.start()          # restarted by every move: fires once settled

    def _prepare_frame(self):
        if self.session is None or self.play_timer.isActive():
            return
        try:
            self.session.prepare_interaction(self.cursor)   # False while a job runs: skipped
        except UserError:
            pass        # e.g. the video was closed meanwhile: nothing to prepare

    def step(self, d):
        if self.session is not None:
            self.goto(self.cursor + d)

    def goto_last(self):
        if self.session is not None:
            self.goto(self.session.num_frames - 1)

    def refresh_view(self):
        s = self.session
        if s is None:
            return
        t = self.cursor
        visible = [o.id for o in s.objects if o.visible]
        img = overlay_mod.compose(s.frame(t), s.get_mask(t), self.overlay_mode, s.colors(),
                                  visible, self.layer_image)
        self.canvas.set_image(img)
        if not self.play_timer.isActive():
            self.minimap.set_image(img)
        self.minimap.set_view(self.canvas.visible_rect())
        self.timeline.set_marks(set(s.edited_frames), self._has_mask)
        if self._confidence_stale:
            self._update_confidence()
        self.update_status()

    def _update_confidence(self):
        # O(frames): done when masks changed, not on every frame shown (playback, scrubbing)
        self._confidence_stale = False
        if self.session is not None:
            self.timeline.set_confidence(self.session.frame_confidence(),
                                         self.session.suggest_frame())

    def goto_suggested(self):
        """Jump to the frame to check next (Session.suggest_frame)."""
        if self.session is None:
            return
        found = self.controller.suggested_frame()
        if found is None:
            self.log('Nothing to check yet: propagate first (P).')
            return
        t, c = found
        self.log(f'Frame {t}: the least confident propagated frame (confidence {c:.2f}).')
        self.goto(t)

    def on_masks_changed(self, frames):
        s = self.session
        if s is None:
            return
        self._confidence_stale = True
        self._has_mask = s.frames_with_masks()
        if self.cursor in frames:
            self.refresh_view()
        else:
            self.timeline.set_marks(set(s.edited_frames), self._has_mask)

    def update_status(self):
        s, c = self.session, self.controller
        if s is None:
            self.status_frame.setText('No video')
            self.frame_label.setText('\u2013 / \u2013')
        else:
            edited = ' (edited)' if self.cursor in s.edited_frames else ''
            self.status_frame.setText(f'Frame {self.cursor} / {s.num_frames - 1}{edited}')
            self.frame_label.setText(f'{self.cursor} / {s.num_frames - 1}')
        if s is not None and 1 <= c.obj <= s.num_objects:
            o = s.get_object(c.obj)
            r, g, b = o.color
            self.status_object.setText(
                f'<span style="color: rgb({r},{g},{b}); font-size: 14pt">\u25a0</span> '
                f'Object {o.id}: {o.name}' + ('' if o.visible else ' (hidden)'))
        else:
            self.status_object.setText('No object')
        mode = MODE_NAMES[c.mode] + (' \u00b7 local' if c.local_mode else '')
        self.status_mode.setText(f'Mode: {mode} \u00b7 brush {self.canvas.brush}')
        nets = self.networks
        dev = getattr(nets, 'device', None) or self.opts.device
        kind = getattr(nets, 'kind', None)
        self.status_device.setText(f'Device: {dev}' + (f' ({kind})' if kind else ''))
        self.zoom_label.setText(f'{self.canvas.scale() * 100:.0f} %' if s is not None else '\u2013')

    def on_view_changed(self):
        self.minimap.set_view(self.canvas.visible_rect())
        self.update_status()

    def on_hover(self, x, y):
        if x >= 0 and self.session is not None and not self.busy():
            lab = self.session.label_at(self.cursor, x, y)
            self.status_info.setText(f'x {x}, y {y}, label {lab}')

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
        self.refresh_view()

    def cycle_overlay(self):
        modes = overlay_mod.MODES
        self.set_overlay_mode(modes[(modes.index(self.overlay_mode) + 1) % len(modes)])

    def choose_layer_image(self):
        path, _ = QFileDialog.getOpenFileName(self, 'Layer image', '',
                                              'Images (*.png *.jpg *.jpeg *.bmp *.webp)')
        if not path:
            return
        from util.frames_io import read_image
        img = self._try(read_image, path, title='Cannot read image')
        if img is None:
            return
        if self.session is not None:
            img = cv2.resize(img, (self.session.width, self.session.height),
                             interpolation=cv2.INTER_AREA)
        self.layer_image = img
        self.set_overlay_mode('layered')

    # ---- playback
    def toggle_play(self):
        if self.play_timer.isActive():
            self.stop_play()
        elif self.session is not None and not self.busy():
            if self.cursor >= self.session.num_frames - 1:
                self.goto(0)
            fps = self.session.fps or 24.0
            self.play_timer.start(int(1000 / min(max(fps, 1), 60)))
            self.btn_play.setIcon(icon('pause'))

    def stop_play(self):
        if self.play_timer.isActive():
            self.play_timer.stop()
            self.btn_play.setIcon(icon('play'))
            self.refresh_view()

    def _play_step(self):
        if self.session is None or self.cursor >= self.session.num_frames - 1:
            self.stop_play()
        else:
            self.goto(self.cursor + 1)
