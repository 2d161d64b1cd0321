"""`python -m scripts.benchmark [all]`: speed and memory of the bundled and the official networks
through the Session API the tools use, as one JSON document.

Measured per network kind, each in its own process (so peak memory is per kind):
  load_s               load_networks() from weight files (timed after the files exist)
  propagation          frames/s of Session.propagate over a 480p (854x480) synthetic clip, with
                       1 and with 3 objects (a fresh session each: no cached features), after a
                       3-frame warm-up (the `propagation` command has the memory options and
                       per-frame timings)
  scribble             Session.scribble -> mask latency on a 480p frame (median of --repeats):
                       a frame's first stroke, and a later stroke on the same frame
  click                Session.click latency (f-BRS with official weights when fbrs.pth exists,
                       the interaction net otherwise): first click and median of later clicks
  adapt                Session.adapt (online adaptation, default steps) on one annotated 480p frame
                       with 3 objects (bundled networks only)
  peak_rss_mb          peak resident memory of the process (Linux/macOS)
  peak_gpu_mb          torch.cuda.max_memory_allocated (CUDA only)
Weights: real files when present (saves/*.pth, weights/*.pth). Without them the timings are
still meaningful (same architectures, same code): official -> deterministic weights from
../shared/reference/mivos/det_init.py written to temp .pth files (skipped with a note when
../shared is absent); bundled -> randomly initialised networks written as bundled files.
The `long-video` command loads the networks the same way.
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scripts.benchmark import common
from util.errors import UserError

HELP = ('(default) per network kind: load time, propagation FPS, scribble / click latency, '
        'adaptation, peak memory')


def add_arguments(p):
    kinds = common.network_kinds()
    p.add_argument('--kinds', nargs='+', default=list(kinds), choices=kinds,
                   help='network kinds, each measured in its own process (default: both)')
    common.add_device(p)
    p.add_argument('--frames', type=int, default=30, help='frames propagated per measurement')
    p.add_argument('--repeats', type=int, default=5, help='scribble/click repeats')
    common.add_engine(p)
    common.add_amp(p)
    p.add_argument('--no-adapt', action='store_true', help='skip the (slow) adaptation measurement')
    common.add_output(p)
    p.add_argument('--child', choices=kinds, help=argparse.SUPPRESS)


# ---------------------------------------------------------------------------- inputs
def synthetic_clip(num_frames, height=480, width=854, num_objects=3):
    """Frames (T,H,W,3) of textured ellipses moving over a textured background and the first
    frame's labels (H,W)."""
    frames, labels = common.make_clip(num_frames, height, width, num_objects)
    return frames, labels[0]


def prepare_weights(kind, tmp):
    """(saves_dir or weights_dir, note). Writes stand-in weight files to `tmp` when the real
    ones are absent; returns (None, reason) when that is impossible."""
    from inference_core import networks as N
    if kind == 'official':
        saves = str(common.REPO / 'saves')
        if N.official_available(saves):
            return saves, 'official weights from ' + saves
        if not (common.MIVOS_REF / 'det_init.py').is_file():
            return None, 'skipped: no saves/*.pth and ../shared/reference/mivos is absent'
        d = Path(tmp) / 'saves'
        d.mkdir()
        for name, fname in (('stcn', 'stcn.pth'), ('fusion_stcn', 'fusion_stcn.pth'),
                            ('s2m', 's2m.pth'), ('fbrs', 'fbrs.pth')):
            if (common.MIVOS_REF / 'keys' / f'{name}.txt').is_file():
                torch.save(common.det_state_dict(name), d / fname)
        return str(d), 'deterministic stand-in weights (det_init.py); real weights absent'
    try:
        N.load_bundled(N.DEFAULT_WEIGHTS_DIR, 'cpu')
        return N.DEFAULT_WEIGHTS_DIR, 'bundled weights from weights/'
    except UserError:
        pass
    d = Path(tmp) / 'weights'
    d.mkdir()
    N.write_untrained_bundled(d, seed=0)
    return str(d), 'random stand-in weights (no trained weights in weights/)'


def load_kind(kind, device, top_k):
    """(Networks, note on the weights, load seconds) or (None, note, None) when skipped."""
    from inference_core.networks import load_networks
    with tempfile.TemporaryDirectory(prefix='ivos_bench_') as tmp:
        where, note = prepare_weights(kind, tmp)
        if where is None:
            return None, note, None
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        if kind == 'official':
            nets = load_networks('official', saves_dir=where, device=device, top_k=top_k)
        else:
            nets = load_networks('bundled', weights_dir=where, device=device)
        common.sync(device)
        return nets, note, time.perf_counter() - t0


# ---------------------------------------------------------------------------- measurements
def _session(nets, frames, num_objects, args):
    from inference_core.session import Session
    return Session.from_frames(frames, storage='memory', num_objects=num_objects, networks=nets,
                               mem_freq=args.mem_freq, top_k=args.top_k,
                               amp=args.amp, history_bytes=0)


def bench_propagation(nets, frames, labels0, num_objects, args):
    from util.progress import cli_progress
    lab = np.where(labels0 <= num_objects, labels0, 0).astype(np.uint8)
    warm = _session(nets, frames[:3], num_objects, args)
    warm.set_labels(0, lab)
    warm.propagate(0, direction='forward')
    warm.close()
    s = _session(nets, frames, num_objects, args)
    try:
        s.set_labels(0, lab)
        with cli_progress(f'propagation, {num_objects} object(s)', args.quiet) as p:
            common.sync(nets.device)
            t0 = time.perf_counter()
            s.propagate(0, direction='forward', progress=p)
            common.sync(nets.device)
            dt = time.perf_counter() - t0
        n = len(frames) - 1
        return {'objects': num_objects, 'frames': n, 'seconds': round(dt, 3),
                'fps': round(n / dt, 3), 'size': [frames.shape[2], frames.shape[1]]}
    finally:
        s.close()


def bench_adapt(nets, frames, labels0, args):
    from util.progress import cli_progress
    s = _session(nets, frames[:2], 3, args)
    try:
        if not s.can_adapt:
            return None
        s.set_labels(0, labels0.astype(np.uint8))
        with cli_progress('adaptation', args.quiet) as p:
            common.sync(nets.device)
            t0 = time.perf_counter()
            s.adapt(progress=p)
            common.sync(nets.device)
            dt = time.perf_counter() - t0
        from inference_core.session import DEFAULT_ADAPT_STEPS
        return {'steps': DEFAULT_ADAPT_STEPS, 'objects': 3, 'seconds': round(dt, 3)}
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
        times, again = [], []
        for i in range(args.repeats):
            for kept, out in ((False, times), (True, again)):
                s.reset_frame(0)
                if not kept:
                    s.release_memory()     # the first stroke on a frame: no maps kept from before
                common.sync(nets.device)
                t0 = time.perf_counter()
                s.scribble(0, 1, positive=pos, negative=neg)
                common.sync(nets.device)
                out.append(time.perf_counter() - t0)
        # median_ms: a frame's first stroke; same_frame_median_ms: a later stroke on that frame
        # (the bundled net reuses the frame's backbone maps)
        return {'median_ms': round(1000 * float(np.median(times)), 2),
                'min_ms': round(1000 * min(times), 2),
                'same_frame_median_ms': round(1000 * float(np.median(again)), 2),
                'repeats': len(times)}
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
        s.release_memory()      # the first click on the frame computes the frame's maps again
        times = []
        for x, y, positive in pts[:max(2, min(len(pts), args.repeats))]:
            common.sync(nets.device)
            t0 = time.perf_counter()
            s.click(0, 1, x, y, positive)
            common.sync(nets.device)
            times.append(time.perf_counter() - t0)
        backend = 'f-BRS' if nets.click is not None else 'interaction net'
        return {'available': True, 'backend': backend, 'first_ms': round(1000 * times[0], 2),
                'median_later_ms': round(1000 * float(np.median(times[1:])), 2),
                'clicks': len(times)}
    finally:
        s.close()


def run_kind(kind, args):
    """All measurements for one kind, in this process. Returns a dict."""
    from util.device import pick_device
    device = pick_device(args.device)
    nets, note, load_s = load_kind(kind, device, args.top_k)
    if nets is None:
        return {'skipped': True, 'note': note}
    frames, labels0 = synthetic_clip(args.frames + 1, num_objects=3)
    out = {'weights': note, 'device': str(device), 'load_s': round(load_s, 3),
           'click_model': 'f-BRS' if nets.click is not None else None}
    with torch.inference_mode():
        out['propagation'] = [bench_propagation(nets, frames, labels0, k, args) for k in (1, 3)]
    out['scribble'] = bench_scribble(nets, frames, labels0, args)
    out['click'] = bench_click(nets, frames, labels0, args)
    out['adapt'] = None if args.no_adapt else bench_adapt(nets, frames, labels0, args)
    out['peak_rss_mb'] = common.peak_rss_mb()
    if device.type == 'cuda':
        out['peak_gpu_mb'] = round(torch.cuda.max_memory_allocated(device) / (1 << 20), 1)
    return out


def check(args):
    if args.frames < 2:
        raise UserError(f'--frames must be >= 2, got {args.frames}')
    if args.repeats < 1:
        raise UserError(f'--repeats must be >= 1, got {args.repeats}')
    common.check_engine(args)


def per_kind_report(args, measure, **fields):
    """Run `measure(kind, args)` for each of --kinds in a child process (in this process when
    it is the child) and return / print the report."""
    if args.child:
        common.child_result(measure(args.child, args))
        return None
    from util.device import pick_device
    device = pick_device(args.device)
    report = {'device': str(device), 'torch': torch.__version__,
              'python': platform.python_version(),
              'cpu_threads': args.threads or torch.get_num_threads(), 'cpus': os.cpu_count(),
              'platform': platform.platform(), **fields, 'amp': args.amp, 'results': {}}
    if device.type == 'cuda':
        report['gpu'] = torch.cuda.get_device_name(device)
    for kind in args.kinds:
        print(f'benchmarking {kind} ...', file=sys.stderr)
        rc, result, last = common.run_child(common.child_argv(args, '--child', kind))
        report['results'][kind] = result if rc == 0 and result is not None else {'error': last}
    return report


def run(args):
    check(args)
    report = per_kind_report(args, run_kind, frames=args.frames)
    if report is not None:
        common.emit(report, args.output)
    return 0
