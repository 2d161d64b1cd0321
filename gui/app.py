"""Command line -> QApplication + MainWindow.

    python interactive_gui.py --images example/clip [--num_objects 2] [--resolution 480] ...

Bad command-line input raises UserError before any window opens (run_cli prints one line and
exits 2). `--demo-script FILE` replays scripted interactions through the same handlers the mouse
uses, `--screenshot OUT.png` saves the window once the script is done and quits (both used by
scripts/screenshot_gui.sh and handy for bug reports).
"""
import argparse
import json
import os
import sys

from util.errors import UserError


def build_parser():
    p = argparse.ArgumentParser(
        prog='interactive_gui.py',
        description='Interactive video object segmentation (MiVOS-STCN): scribble, click or '
                    'paint masks on a few frames and propagate them through the video.')
    src = p.add_mutually_exclusive_group()
    src.add_argument('--video', help='video file to open')
    src.add_argument('--images', help='folder of frames (jpg/png, natural order)')
    p.add_argument('--num_objects', type=int, default=1,
                   help='number of objects to start with (more can be added in the GUI; default 1)')
    p.add_argument('--masks', help='start from existing masks: a folder of PNGs (palette, label '
                                   'or 0/255) or one PNG')
    p.add_argument('--resolution', type=int, default=480,
                   help='processing size: shorter side in pixels (default 480, -1 = original)')
    p.add_argument('--mem_freq', type=int, default=5,
                   help='add a memory frame every N frames during propagation (default 5)')
    p.add_argument('--top_k', type=int, default=20, help='memory read top-k (default 20)')
    p.add_argument('--max_memory_frames', type=int, default=None,
                   help='experts: hard cap on all memory frames (default: the bounded working + '
                        'long-term memory, see README "Long videos")')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N (default auto)')
    p.add_argument('--model', default='auto', choices=['auto', 'official', 'bundled'],
                   help='official MiVOS weights in saves/, the bundled networks, or auto '
                        '(official when present; default)')
    p.add_argument('--saves', default='saves', help='folder of the official weights (default saves)')
    p.add_argument('--workspace', help='autosave folder (default: <video>.ivos next to the video)')
    r = p.add_mutually_exclusive_group()
    r.add_argument('--resume', dest='resume', action='store_true', default=None,
                   help='resume the saved workspace without asking')
    r.add_argument('--no-resume', dest='resume', action='store_false',
                   help='start over without asking (the old workspace is kept beside it under a dated name)')
    p.add_argument('--demo-script', help='JSON list of scripted actions to run after loading')
    p.add_argument('--screenshot', help='save a PNG of the window after loading (and the demo '
                                        'script), then quit')
    return p


def check_args(a):
    """Cheap validation of the command line (before any heavy loading)."""
    if a.num_objects < 1 or a.num_objects > 255:
        raise UserError(f'--num_objects must be in 1..255, got {a.num_objects}')
    from inference_core.networks import check_engine_options
    check_engine_options(a)
    if a.video and not os.path.isfile(a.video):
        raise UserError(f'video not found: {a.video}' if not os.path.exists(a.video)
                        else f'--video expects a file (use --images for a folder): {a.video}')
    if a.images and not os.path.isdir(a.images):
        raise UserError(f'image folder not found: {a.images}' if not os.path.exists(a.images)
                        else f'--images expects a folder (use --video for a file): {a.images}')
    if a.masks and not (a.video or a.images):
        raise UserError('--masks needs --video or --images')
    if a.masks and not os.path.exists(a.masks):
        raise UserError(f'mask path not found: {a.masks}')
    if a.screenshot and not (a.video or a.images):
        raise UserError('--screenshot needs --video or --images')
    if a.demo_script:
        load_demo_script(a.demo_script)
    if a.workspace and os.path.isfile(a.workspace):
        raise UserError(f'--workspace must be a folder, not a file: {a.workspace}')


def check_display():
    """Qt aborts the process (core dump) when it finds no display: say so in one line instead."""
    if not sys.platform.startswith('linux') or os.environ.get('QT_QPA_PLATFORM'):
        return
    if not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
        raise UserError('no display found (DISPLAY is not set): run it on a desktop, over ssh -X, '
                        'or headless with xvfb-run / QT_QPA_PLATFORM=offscreen')


def load_demo_script(path):
    try:
        with open(path, encoding='utf-8') as f:
            steps = json.load(f)
    except FileNotFoundError:
        raise UserError(f'demo script not found: {path}') from None
    except (OSError, ValueError) as e:
        raise UserError(f'cannot read demo script {path}: {e}') from None
    if not isinstance(steps, list) or not all(isinstance(s, dict) and 'action' in s for s in steps):
        raise UserError(f'demo script {path} must be a JSON list of {{"action": ...}} objects')
    return steps


def options_from_args(a):
    from gui.document import Options
    return Options(resolution=a.resolution, num_objects=a.num_objects, mem_freq=a.mem_freq,
                   device=a.device, model=a.model, workspace=a.workspace, resume=a.resume,
                   top_k=a.top_k, max_memory_frames=a.max_memory_frames, saves_dir=a.saves)


def create_window(a, networks=None):
    """Build the MainWindow for parsed args `a` and load the video synchronously (errors raise
    UserError). Used by main() and the tests."""
    from gui.main_window import MainWindow
    win = MainWindow(options_from_args(a), networks=networks)
    path = a.video or a.images
    if path:
        try:
            win.opener.open_now(path, masks=a.masks, resume=a.resume)
        except BaseException:
            win.close()
            raise
    return win


def _close_on_signals(app, win):
    """Ctrl+C / SIGTERM in the terminal close the window normally (the workspace is flushed;
    with unsaved work the person is asked first, as when closing the window).
    Python only sees signals when it runs, so a timer wakes it up a few times a second."""
    import signal
    from PyQt5.QtCore import QTimer

    def handler(_sig, _frame):
        if win.close():          # False when the person chose to keep unsaved work open
            app.quit()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError):     # not the main thread / unsupported platform
            pass
    timer = QTimer(win)
    timer.timeout.connect(lambda: None)
    timer.start(250)


def main(argv=None):
    a = build_parser().parse_args(argv)
    check_args(a)
    check_display()
    # Qt before torch: no import-order surprises with the Qt platform plugin.
    from PyQt5.QtCore import Qt
    from PyQt5.QtWidgets import QApplication
    QApplication.setAttribute(Qt.AA_EnableHighDpiScaling, True)
    QApplication.setAttribute(Qt.AA_UseHighDpiPixmaps, True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName('Interactive VOS')
    from gui.theme import apply_dark_theme
    apply_dark_theme(app)

    from inference_core.networks import load_networks
    networks = load_networks(a.model, saves_dir=a.saves, device=a.device, top_k=a.top_k)
    win = create_window(a, networks)
    win.show()
    _close_on_signals(app, win)
    if a.demo_script or a.screenshot:
        from gui.demo import DemoRunner
        steps = load_demo_script(a.demo_script) if a.demo_script else []
        runner = DemoRunner(win, steps, screenshot=a.screenshot, quit_after=bool(a.screenshot))
        runner.start()
        app.exec_()
        if runner.error:
            raise UserError(runner.error)
        return 0
    return app.exec_()
