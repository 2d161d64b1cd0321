"""What the benchmark commands share: options, child processes, memory readings, JSON output."""
import codecs
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get('IVOS_SHARED', REPO.parent / 'shared'))
MIVOS_REF = SHARED / 'reference' / 'mivos'


def network_kinds():
    """The network kinds a benchmark can load ('bundled', 'official')."""
    from inference_core.networks import KINDS
    return tuple(k for k in KINDS if k != 'auto')


# ---------------------------------------------------------------------------- options
def add_device(p, threads=True):
    p.add_argument('--device', default='auto', help='auto (default) | cpu | cuda | cuda:N')
    if threads:
        p.add_argument('--threads', type=int, default=None,
                       help='torch CPU threads (default: torch default)')


def add_busy_neighbour(p):
    p.add_argument('--busy-neighbour', type=int, nargs='?', const=1, default=0, metavar='N',
                   help='measure while N child processes (default 1) each burn one core, as '
                        'another CPU-heavy program would')


@contextlib.contextmanager
def busy_neighbour(n=1):
    """Run the body while `n` child processes each burn one core (a plain Python busy loop);
    they are killed afterwards. Yields their pids."""
    if n < 0:
        from util.errors import UserError
        raise UserError(f'--busy-neighbour must be >= 0, got {n}')
    procs = [subprocess.Popen([sys.executable, '-c', 'while True: pass'],
                              stdin=subprocess.DEVNULL) for _ in range(n)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def add_output(p, quiet=True):
    p.add_argument('--output', help='also write the JSON report to this file')
    if quiet:
        p.add_argument('--quiet', action='store_true', help='no progress bars')


def add_amp(p):
    from util.cli_options import add_amp_option
    add_amp_option(p)


def add_engine(p):
    p.add_argument('--top_k', type=int, default=20, help='memory read top-k (default 20)')
    p.add_argument('--mem_freq', type=int, default=5,
                   help='add a memory frame every N frames (default 5)')


def check_engine(args):
    from inference_core.networks import check_engine_options
    check_engine_options(args)


# ---------------------------------------------------------------------------- measurements
def sync(device):
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_rss_mb():
    """Peak resident memory of this process in MB (None where unknown, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (1 << 20) if sys.platform == 'darwin' else r / 1024, 1)


def det_state_dict(name):
    """The MiVOS reference deterministic weights `name` (../shared/reference/mivos/det_init.py)
    as a torch state dict."""
    import importlib.util

    import numpy as np
    import torch
    spec = importlib.util.spec_from_file_location('det_init', MIVOS_REF / 'det_init.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # np.array keeps 0-d entries (num_batches_tracked) 0-d; ascontiguousarray would not
    return {k: torch.from_numpy(np.array(v))
            for k, v in mod.det_state_dict(MIVOS_REF / 'keys' / f'{name}.txt').items()}


def make_clip(num_frames, height, width, num_objects, seed=0, object_scale=1.0):
    """Frames (T,H,W,3) uint8 of `num_objects` textured ellipses moving over a textured
    background, and their labels (T,H,W). object_scale shrinks the ellipses (1: each ~3% of the
    frame; 0.5: ~0.75%, small enough for the engine's zoomed pass)."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.random((height // 16 + 2, width // 16 + 2, 3)).astype(np.float32),
                    (width, height), interpolation=cv2.INTER_CUBIC)
    bg = np.clip(bg * 150 + 40, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    objs = [(width * (0.2 + 0.25 * k), height * (0.35 + 0.15 * k), width * 0.08 * object_scale,
             height * 0.12 * object_scale,
             width * 0.004 * (1 + k), height * 0.002) for k in range(num_objects)]
    colours = rng.integers(60, 255, (num_objects, 3))
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    labels = np.zeros((num_frames, height, width), np.uint8)
    noise = rng.integers(-25, 25, (height, width, 1))
    for t in range(num_frames):
        img = bg.copy()
        for k, (cx, cy, rx, ry, vx, vy) in enumerate(objs):
            inside = ((xx - cx - vx * t) / rx) ** 2 + ((yy - cy - vy * t) / ry) ** 2 <= 1
            img[inside] = np.clip(colours[k] + noise, 0, 255)[inside]
            labels[t][inside] = k + 1
        frames[t] = img
    return frames, labels


# ---------------------------------------------------------------------------- processes
def child_argv(args, *extra):
    """The command line of a child process of this benchmark: the same command and options
    (`args.argv`) plus `extra`."""
    return [sys.executable, '-m', 'scripts.benchmark', *args.argv, *extra]


def run_child(argv):
    """Run one measurement in a fresh process (its peak memory is its own). Its stderr
    (progress bars, notes) is passed on to ours as it comes. Returns (exit code, the last JSON
    line of its stdout or None, the last line of its stderr)."""
    env = dict(os.environ)
    if sys.stderr.isatty():
        env.setdefault('PROGRESSBAR_IS_TERMINAL', '1')     # the pipe is shown on a terminal
    decoder = codecs.getincrementaldecoder('utf-8')(errors='replace')
    tail = ''
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, cwd=str(REPO), stdout=out, stderr=subprocess.PIPE, env=env)
        try:
            while True:
                chunk = proc.stderr.read1(4096)
                if not chunk:
                    break
                text = decoder.decode(chunk)
                sys.stderr.write(text)
                sys.stderr.flush()
                tail = (tail + text)[-2000:]
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stderr.close()
        out.seek(0)
        lines = [ln for ln in out.read().decode('utf-8', 'replace').splitlines()
                 if ln.startswith('{') or ln.startswith('[')]
    last = [ln.strip() for ln in re.split(r'[\r\n]', tail) if ln.strip()]
    return rc, (json.loads(lines[-1]) if lines else None), (last[-1] if last else 'no output')


def child_result(result):
    """The child's side of run_child: one JSON line on stdout."""
    print(json.dumps(result))
    sys.stdout.flush()


def emit(report, output=None, indent=1):
    """Print the JSON report on stdout and write it to `output` when given."""
    text = json.dumps(report, indent=indent)
    print(text)
    if output:
        from util.atomic import write_text
        write_text(output, text + '\n')
