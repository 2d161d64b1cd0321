"""Scripted interactions (--demo-script) through the same window methods as the mouse.

A script is a JSON list of steps, run in order; jobs (propagate, export) are awaited:
  {"action": "object", "id": 2}                      select (adds objects up to id if needed)
  {"action": "mode", "mode": "scribble"|"click"|"free"}
  {"action": "goto", "frame": 12}
  {"action": "brush", "radius": 5}
  {"action": "scribble", "points": [[x, y], ...], "positive": true}
  {"action": "paint", "points": [[x, y], ...], "erase": false}
  {"action": "click", "x": 100, "y": 80, "positive": true}
  {"action": "propagate"} | {"action": "commit"} | {"action": "undo"} | {"action": "redo"}
  {"action": "reset"}
  {"action": "overlay", "mode": "davis"|"fade"|"light"|"popup"|"layered"|"mask"}
  {"action": "zoom", "rect": [x, y, w, h]} | {"action": "zoom", "fit": true}
  {"action": "export", "out": "DIR", "formats": ["png", "mp4"]}
  {"action": "wait", "ms": 200}
  {"action": "screenshot", "path": "OUT.png"}
Coordinates are processing-resolution pixels, or fractions of the frame when "norm": true.
"""
from PyQt5.QtCore import QRectF, QTimer
from PyQt5.QtWidgets import QApplication


class DemoRunner:
    def __init__(self, window, steps, screenshot=None, quit_after=False):
        self.win = window
        self.steps = list(steps)
        self.screenshot = screenshot
        self.quit_after = quit_after
        self.error = None
        self._i = 0
        self._waiting = False
        window.jobFinished.connect(self._on_job)

    def start(self):
        QTimer.singleShot(300, self._next)      # let the window lay out and paint first

    def _scale(self, step):
        s = self.win.session
        if step.get('norm'):
            return s.width, s.height
        return 1.0, 1.0

    def _points(self, step):
        sx, sy = self._scale(step)
        return [(float(x) * sx, float(y) * sy) for x, y in step['points']]

    def _on_job(self, _title, _ok):
        if self._waiting:
            self._waiting = False
            QTimer.singleShot(50, self._next)

    def _fail(self, msg):
        self.error = msg
        self.win.messages.log(msg, 'error')
        self._finish()

    def _finish(self):
        if self.screenshot:
            self.save_screenshot(self.screenshot)
        if self.quit_after:
            QTimer.singleShot(0, self.win.close)
            QTimer.singleShot(0, QApplication.instance().quit)

    def save_screenshot(self, path):
        QApplication.processEvents()
        self.win.repaint()
        if not self.win.grab().save(path):
            self.error = f'cannot save screenshot to {path}'

    def _next(self):
        if self.error:
            return
        if self._i >= len(self.steps):
            self._finish()
            return
        step = self.steps[self._i]
        self._i += 1
        try:
            wait = self.run_step(step)
        except Exception as e:   # a broken script must not leave a hanging window
            self._fail(f'demo step {self._i} ({step.get("action")}): {e}')
            return
        if wait:
            self._waiting = True
        else:
            QTimer.singleShot(int(step.get('ms', 30)) if step['action'] == 'wait' else 30, self._next)

    def run_step(self, step):
        """Run one step; returns True when it started a job to wait for."""
        w = self.win
        a = step['action']
        if a == 'object':
            oid = int(step['id'])
            while w.session.num_objects < oid:
                w.objects.add()
            w.objects.select(oid)
        elif a == 'mode':
            w.tools.set_mode(step['mode'])
        elif a == 'goto':
            w.view.goto(int(step['frame']))
        elif a == 'brush':
            w.view.canvas.set_brush(int(step['radius']))
        elif a == 'scribble':
            if w.controller.mode != 'scribble':
                w.tools.set_mode('scribble')
            pts = self._points(step)
            positive = bool(step.get('positive', True))
            w.view.canvas.marks.append(('stroke', pts, positive))
            w.edit.stroke(pts, positive)
        elif a == 'paint':
            if w.controller.mode != 'free':
                w.tools.set_mode('free')
            w.edit.stroke(self._points(step), not step.get('erase', False))
        elif a == 'click':
            if w.controller.mode != 'click':
                w.tools.set_mode('click')
            sx, sy = self._scale(step)
            w.edit.click(float(step['x']) * sx, float(step['y']) * sy,
                         bool(step.get('positive', True)))
        elif a == 'propagate':
            return w.edit.propagate() is not None
        elif a == 'commit':
            w.edit.commit()
        elif a == 'undo':
            w.edit.undo()
        elif a == 'redo':
            w.edit.redo()
        elif a == 'reset':
            w.edit.reset_frame()
        elif a == 'overlay':
            w.view.set_overlay_mode(step['mode'])
        elif a == 'zoom':
            if step.get('fit'):
                w.view.canvas.reset_view()
            else:
                sx, sy = self._scale(step)
                x, y, rw, rh = step['rect']
                w.view.canvas.zoom_to_rect(QRectF(x * sx, y * sy, rw * sx, rh * sy))
        elif a == 'export':
            return w.exporter.export(step['out'], step.get('formats', ['png'])) is not None
        elif a == 'wait':
            pass
        elif a == 'screenshot':
            self.save_screenshot(step['path'])
        else:
            raise ValueError(f'unknown action {a!r}')
        return False
