"""`python -m scripts.benchmark store`: loading a long video into a Session: time and memory.

    python -m scripts.benchmark store [--frames 3000] [--storage auto|memory|disk] [--height 480]

Writes a synthetic mp4 (moving gradient + box) to a temp dir in a child process, then opens it
with Session.open (frames kept in memory or in a temporary file, `--storage`) and reports the
load time, the peak RSS while loading, and the RSS after a pass over every frame as a
propagation makes it (every frame read, every label map written and read back). The session
gets small untrained bundled networks (the pass runs none of them), so the memory is that of the
frames and masks.
"""
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from scripts.benchmark import common
from util.errors import UserError

HELP = 'Session.open load time and memory on a long synthetic video, and a pass over every frame'


def add_arguments(p):
    p.add_argument('--frames', type=int, default=3000, help='frames of the synthetic video')
    p.add_argument('--storage', default='auto', choices=['auto', 'memory', 'disk'])
    p.add_argument('--height', type=int, default=480,
                   help='video height (width keeps the 854x480 aspect)')
    p.add_argument('--resolution', type=int, default=480, help='processing resolution')
    p.add_argument('--video', help='load this video instead of a synthetic one')
    p.add_argument('--no-pass', action='store_true', help='skip the simulated propagation pass')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch default)')
    common.add_output(p)


def write_synthetic_video(path, frames, height, width, fps=24):
    import cv2
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not vw.isOpened():
        raise UserError(f'cannot write {path}')
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // width), (y * 255 // height), np.zeros_like(x)], -1).astype(np.uint8)
    for t in range(frames):
        f = base.copy()
        f[..., 2] = t % 256
        cx = int((t * 7) % (width - 80))
        f[height // 3:height // 3 + 80, cx:cx + 80] = (255, 255, 255)
        vw.write(f)
    vw.release()


def _status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def rss_mb():
    """Current RSS (MB) and its anonymous / file-backed parts (Linux)."""
    try:
        return (_status_kb('VmRSS') / 1024, _status_kb('RssAnon') / 1024,
                _status_kb('RssFile') / 1024)
    except OSError:
        return (float('nan'),) * 3


def _idle_networks():
    """Small untrained bundled networks on the CPU: a Session needs networks, this benchmark
    runs none."""
    import torch

    from inference_core.networks import Networks, untrained_bundled
    nets = untrained_bundled(('propagation', 'fusion'), seed=0)
    return Networks('bundled', nets['propagation'], nets['fusion'], None, None, torch.device('cpu'))


def run(args):
    if args.frames < 1:
        raise UserError('--frames must be >= 1')
    from inference_core.networks import check_engine_options
    check_engine_options(args)
    from inference_core.session import Session
    from util.progress import cli_progress

    nets = _idle_networks()
    report = {'storage_requested': args.storage, 'resolution': args.resolution}
    tmp = tempfile.mkdtemp(prefix='bench_store_')
    try:
        video = args.video
        if video is None:
            video = os.path.join(tmp, 'synthetic.mp4')
            w = int(round(args.height * 854 / 480)) // 2 * 2   # DAVIS 854x480 aspect
            t0 = time.perf_counter()
            # A child process, so its memory does not count in this process's peak RSS.
            proc = mp.get_context('spawn').Process(target=write_synthetic_video,
                                                   args=(video, args.frames, args.height, w))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                raise UserError('writing the synthetic video failed')
            dt = time.perf_counter() - t0
            report['synthetic_video'] = {'frames': args.frames, 'size': [w, args.height],
                                         'mb': round(os.path.getsize(video) / 2**20, 1),
                                         'write_s': round(dt, 1)}
            print(f'synthetic video: {args.frames} frames {w}x{args.height}, '
                  f'{os.path.getsize(video) / 2**20:.0f} MB, written in {dt:.1f}s',
                  file=sys.stderr)
        base = rss_mb()[0]
        t0 = time.perf_counter()
        with cli_progress('load', args.quiet) as p:
            s = Session.open(video, resolution=args.resolution, networks=nets,
                             storage=args.storage, history_bytes=0, progress=p)
        dt = time.perf_counter() - t0
        with s:
            raw = s.num_frames * s.height * s.width * 3
            after = rss_mb()
            report.update(frames=s.num_frames, size=[s.width, s.height], storage=s.storage,
                          load_s=round(dt, 2), load_fps=round(s.num_frames / dt, 1),
                          raw_frames_gib=round(raw / 2**30, 3),
                          masks_gib=round(raw / 3 / 2**30, 3), rss_before_load_mb=round(base),
                          peak_rss_load_mb=round(common.peak_rss_mb()),
                          rss_after_load_mb=[round(v) for v in after])
            print(f'loaded {s.num_frames} frames {s.width}x{s.height}, storage {s.storage}',
                  file=sys.stderr)
            print(f'load time: {dt:.2f}s ({s.num_frames / dt:.0f} frames/s); raw frames '
                  f'{raw / 2**30:.2f} GiB, masks {raw / 3 / 2**30:.2f} GiB', file=sys.stderr)
            print(f'RSS before load {base:.0f} MB; peak RSS during load '
                  f'{common.peak_rss_mb():.0f} MB; after load {after[0]:.0f} MB (anon '
                  f'{after[1]:.0f}, file {after[2]:.0f})', file=sys.stderr)
            if not args.no_pass:
                s.add_object()
                t0 = time.perf_counter()
                lab = np.zeros((s.height, s.width), np.uint8)
                with cli_progress('pass', args.quiet) as p:
                    for t in range(s.num_frames):
                        fr = s.frame(t)
                        lab[:] = fr[..., 2] > 128
                        s.set_labels(t, lab)
                        s.get_mask(t)
                        p(t + 1, s.num_frames)
                dt = time.perf_counter() - t0
                after = rss_mb()
                report.update(pass_s=round(dt, 2), rss_after_pass_mb=[round(v) for v in after],
                              peak_rss_mb=round(common.peak_rss_mb()))
                print(f'pass over all frames (read frame, write+read labels): {dt:.2f}s; '
                      f'RSS {after[0]:.0f} MB (anon {after[1]:.0f}, file {after[2]:.0f}); '
                      f'peak RSS {common.peak_rss_mb():.0f} MB', file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    common.emit(report, args.output)
    return 0
