"""Speed and memory benchmark of the bundled and the official networks, as one JSON document.

    python -m scripts.benchmark [--kinds bundled official] [--device auto] [--frames 30]
                                [--amp] [--output bench.json]

Measured per network kind, each in its own subprocess (so peak memory is per kind):
  load_s               load_networks() from weight files (timed after the files exist)
  propagation          frames/s of Session.propagate over a 480p (854x480) synthetic clip, with
                       1 and with 3 objects (a fresh session each: no cached features), after a
                       3-frame warm-up (scripts/bench_propagation.py measures the engine alone,
                       with more options; this measures the Session API the tools use)
  scribble_ms          Session.scribble -> mask latency on a 480p frame (median of --repeats)
  click_ms             Session.click latency (f-BRS with official weights when fbrs.pth exists,
                       the interaction net otherwise): first click and median of later clicks
  adapt                Session.adapt (online adaptation, default steps) on one annotated 480p frame
                       with 3 objects (bundled networks only)
  peak_rss_mb          peak resident memory of the process (Linux/macOS)
  peak_gpu_mb          torch.cuda.max_memory_allocated (CUDA only)
Weights: real files when present (saves/*.pth, weights/*.pth). Without them the timings are
still meaningful (same architectures, same code): official -> deterministic weights from
../shared/reference/mivos/det_init.py written to temp .pth files (skipped with a note when
../shared is absent); bundled -> randomly initialised networks written as bundled files.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from util.errors import UserError, run_cli

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('IVOS_SHARED', REPO.parent / 'shared'))
MIVOS_REF = SHARED / 'reference' / 'mivos'
KINDS = ('bundled', 'official')


# ---------------------------------------------------------------------------- inputs
def synthetic_clip(num_frames, height=480, width=854, num_objects=3):
    """Frames (T,H,W,3) of textured ellipses moving over a textured background (the generator
    of scripts/bench_propagation.py) and the first frame's labels (H,W)."""
    from scripts.bench_propagation import make_clip
    frames, labels = make_clip(num_frames, height, width, num_objects)
    return frames, labels[0]


def _det_state_dict(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location('det_init', MIVOS_REF / 'det_init.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # np.array keeps 0-d entries (num_batches_tracked) 0-d; ascontiguousarray would not
    return {k: torch.from_numpy(np.array(v))
            for k, v in mod.det_state_dict(MIVOS_REF / 'keys' / f'{name}.txt').items()}


def prepare_weights(kind, tmp):
    """(saves_dir or weights_dir, note). Writes stand-in weight files to `tmp` when the real
    ones are absent; returns (None, reason) when that is impossible."""
    from inference_core import networks as N
    if kind == 'official':
        saves = N._resolve_saves('saves')
        if N.official_available(saves):
            return saves, 'official weights from ' + str(saves)
        if not (MIVOS_REF / 'det_init.py').is_file():
            return None, 'skipped: no saves/*.pth and ../shared/reference/mivos is absent'
        d = Path(tmp) / 'saves'
        d.mkdir()
        for name, fname in (('stcn', 'stcn.pth'), ('fusion_stcn', 'fusion_stcn.pth'),
                            ('s2m', 's2m.pth'), ('fbrs', 'fbrs.pth')):
            if (MIVOS_REF / 'keys' / f'{name}.txt').is_file():
                torch.save(_det_state_dict(name), d / fname)
        return str(d), 'deterministic stand-in weights (det_init.py); real weights absent'
    try:
        N.load_bundled(N.DEFAULT_WEIGHTS_DIR, 'cpu')
        return N.DEFAULT_WEIGHTS_DIR, 'bundled weights from weights/'
    except UserError:
        pass
    from model import lite_networks as L
    d = Path(tmp) / 'weights'
    d.mkdir()
    torch.manual_seed(0)
    for role, fname in L.FILES.items():
        net = L.build(role, pretrained=False)
        torch.save({k: v.half() if v.is_floating_point() else v
                    for k, v in net.state_dict().items()}, d / fname)
    return str(d), 'random stand-in weights (no trained weights in weights/)'


# ---------------------------------------------------------------------------- measurements
def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _session(nets, frames, num_objects, args):
    from inference_core.session import Session
    from inference_core.store import FrameStore
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(num_objects)
    return Session(store, networks=nets, mem_freq=args.mem_freq, top_k=args.top_k,
                   amp='fp16' if args.amp else False, history_bytes=0)


def bench_propagation(nets, frames, labels0, num_objects, args):
    lab = np.where(labels0 <= num_objects, labels0, 0).astype(np.uint8)
    warm = _session(nets, frames[:3], num_objects, args)
    warm.set_labels(0, lab)
    warm.propagate(0, direction='forward')
    warm.close()
    s = _session(nets, frames, num_objects, args)
    try:
        s.set_labels(0, lab)
        _sync(nets.device)
        t0 = time.perf_counter()
        s.propagate(0, direction='forward')
        _sync(nets.device)
        dt = time.perf_counter() - t0
        n = len(frames) - 1
        return {'objects': num_objects, 'frames': n, 'seconds': round(dt, 3),
                'fps': round(n / dt, 3), 'size': [frames.shape[2], frames.shape[1]]}
    finally:
        s.close()


def bench_adapt(nets, frames, labels0, args):
    s = _session(nets, frames[:2], 3, args)
    try:
        if not s.can_adapt:
            return None
        s.set_labels(0, labels0.astype(np.uint8))
        _sync(nets.device)
        t0 = time.perf_counter()
        s.adapt()
        _sync(nets.device)
        from inference_core.adaptation import DEFAULT_ITERS
        return {'steps': DEFAULT_ITERS, 'objects': 3, 'seconds': round(time.perf_counter() - t0, 3)}
    finally:
        s.close()


def _stroke(labels0, obj):
    ys, xs = np.nonzero(labels0 == obj)
    cy, cx = ys.mean(), xs.mean()
    return [(cx - 30, cy), (cx, cy + 5), (cx + 30, cy)]


def bench_scribble(nets, frames, labels0, args):
    s = _session(nets, frames[:1], 1, args)
    try:
        pos = _stroke(labels0, 1)
        neg = [(20.0, 20.0), (120.0, 30.0)]
        s.scribble(0, 1, positive=pos, negative=neg)          # warm-up
        times = []
        for i in range(args.repeats):
            s.reset_frame(0)
            _sync(nets.device)
            t0 = time.perf_counter()
            s.scribble(0, 1, positive=pos, negative=neg)
            _sync(nets.device)
            times.append(time.perf_counter() - t0)
        return {'median_ms': round(1000 * float(np.median(times)), 2),
                'min_ms': round(1000 * min(times), 2), 'repeats': len(times)}
    finally:
        s.close()


def bench_click(nets, frames, labels0, args):
    s = _session(nets, frames[:1], 1, args)
    try:
        ys, xs = np.nonzero(labels0 == 1)
        cy, cx = float(ys.mean()), float(xs.mean())
        pts = [(cx, cy, True), (cx + 60, cy, False), (cx - 20, cy + 10, True),
               (20.0, 20.0, False), (cx + 10, cy - 10, True)]
        try:
            s.click(0, 1, cx, cy, True)                          # warm-up (and availability)
        except UserError as e:
            return {'available': False, 'note': str(e)}
        s.reset_frame(0)
        times = []
        for x, y, positive in pts[:max(2, min(len(pts), args.repeats))]:
            _sync(nets.device)
            t0 = time.perf_counter()
            s.click(0, 1, x, y, positive)
            _sync(nets.device)
            times.append(time.perf_counter() - t0)
        backend = 'f-BRS' if nets.click is not None else 'interaction net'
        return {'available': True, 'backend': backend, 'first_ms': round(1000 * times[0], 2),
                'median_later_ms': round(1000 * float(np.median(times[1:])), 2),
                'clicks': len(times)}
    finally:
        s.close()


def peak_rss_mb():
    try:
        import resource
    except ImportError:           # Windows
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (1 << 20) if sys.platform == 'darwin' else r / 1024, 1)


def run_kind(kind, args):
    """All measurements for one kind, in this process. Returns a dict."""
    from inference_core.networks import load_networks
    from util.device import pick_device
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory(prefix='ivos_bench_') as tmp:
        where, note = prepare_weights(kind, tmp)
        if where is None:
            return {'skipped': True, 'note': note}
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        if kind == 'official':
            nets = load_networks('official', saves_dir=where, device=device, top_k=args.top_k)
        else:
            nets = load_networks('bundled', weights_dir=where, device=device)
        _sync(device)
        load_s = time.perf_counter() - t0
    if args.long_video:
        from scripts import bench_long_video
        with torch.inference_mode():
            return {'weights': note, 'device': str(device),
                    'long_video': bench_long_video.run(nets, args.long_video, args)}
    frames, labels0 = synthetic_clip(args.frames + 1, num_objects=3)
    out = {'weights': note, 'device': str(device), 'load_s': round(load_s, 3),
           'click_model': 'f-BRS' if nets.click is not None else None}
    with torch.inference_mode():
        out['propagation'] = [bench_propagation(nets, frames, labels0, k, args) for k in (1, 3)]
    out['scribble'] = bench_scribble(nets, frames, labels0, args)
    out['click'] = bench_click(nets, frames, labels0, args)
    out['adapt'] = None if args.no_adapt else bench_adapt(nets, frames, labels0, args)
    out['peak_rss_mb'] = peak_rss_mb()
    if device.type == 'cuda':
        out['peak_gpu_mb'] = round(torch.cuda.max_memory_allocated(device) / (1 << 20), 1)
    return out


def _child_argv(kind, args):
    argv = [sys.executable, '-m', 'scripts.benchmark', '--child', kind, '--device', args.device,
            '--frames', str(args.frames), '--repeats', str(args.repeats),
            '--top_k', str(args.top_k), '--mem_freq', str(args.mem_freq)]
    if args.amp:
        argv.append('--amp')
    if args.threads:
        argv += ['--threads', str(args.threads)]
    if args.long_video:
        argv += ['--long-video', str(args.long_video)]
    if args.no_adapt:
        argv.append('--no-adapt')
    return argv


def build_parser():
    p = argparse.ArgumentParser(prog='python -m scripts.benchmark', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--kinds', nargs='+', default=list(KINDS), choices=KINDS)
    p.add_argument('--device', default='auto', help='auto | cpu | cuda | cuda:N')
    p.add_argument('--frames', type=int, default=30, help='frames propagated per measurement')
    p.add_argument('--repeats', type=int, default=5, help='scribble/click repeats')
    p.add_argument('--top_k', type=int, default=20)
    p.add_argument('--mem_freq', type=int, default=5)
    p.add_argument('--amp', action='store_true', help='fp16 autocast (CUDA only)')
    p.add_argument('--threads', type=int, help='torch CPU threads (default: torch default)')
    p.add_argument('--no-adapt', action='store_true', help='skip the (slow) adaptation measurement')
    p.add_argument('--long-video', type=int, metavar='N',
                   help='instead: the long-video benchmark on an N-frame 480p video '
                        '(scripts/bench_long_video.py: per-frame time early vs late, peak RSS)')
    p.add_argument('--output', help='also write the JSON here')
    p.add_argument('--child', choices=KINDS, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.frames < 2:
        raise UserError(f'--frames must be >= 2, got {args.frames}')
    if args.repeats < 1:
        raise UserError(f'--repeats must be >= 1, got {args.repeats}')
    if args.long_video is not None and args.long_video < 200:
        raise UserError(f'--long-video needs at least 200 frames, got {args.long_video}')
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_kind(args.child, args)))
        return 0
    from util.device import pick_device
    device = pick_device(args.device)
    report = {'device': str(device), 'torch': torch.__version__, 'python': platform.python_version(),
              'cpu_threads': args.threads or torch.get_num_threads(), 'cpus': os.cpu_count(),
              'platform': platform.platform(), 'frames': args.frames, 'amp': args.amp,
              'results': {}}
    if device.type == 'cuda':
        report['gpu'] = torch.cuda.get_device_name(device)
    for kind in args.kinds:
        print(f'benchmarking {kind} ...', file=sys.stderr)
        proc = subprocess.run(_child_argv(kind, args), cwd=str(REPO), capture_output=True,
                              text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']
            report['results'][kind] = {'error': tail[0]}
            continue
        report['results'][kind] = json.loads(lines[-1])
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        from util.atomic import write_text
        write_text(args.output, text + '\n')
    return 0


if __name__ == '__main__':
    run_cli(main)
