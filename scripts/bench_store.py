"""Benchmark FrameStore loading: time and peak RSS for a long synthetic video.

Writes a synthetic mp4 (moving gradient + box) to a temp dir in a child process, then loads it
with open_frames and reports load time, peak RSS of the loader, and RSS after a simulated
propagation pass (every frame read, every mask written).

    python scripts/bench_store.py [--frames 3000] [--storage auto|memory|disk] [--height 480]
"""
import argparse
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from util.errors import UserError, run_cli  # noqa: E402


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
        return (_status_kb('VmRSS') / 1024, _status_kb('RssAnon') / 1024, _status_kb('RssFile') / 1024)
    except OSError:
        return (float('nan'),) * 3


def peak_rss_mb():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != 'darwin' else r / 1024 / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description='FrameStore load time and peak RSS')
    p.add_argument('--frames', type=int, default=3000)
    p.add_argument('--storage', default='auto', choices=['auto', 'memory', 'disk'])
    p.add_argument('--height', type=int, default=480, help='video height (width keeps the 854x480 aspect)')
    p.add_argument('--resolution', type=int, default=480, help='processing resolution')
    p.add_argument('--video', help='load this video instead of a synthetic one')
    p.add_argument('--no-pass', action='store_true', help='skip the simulated propagation pass')
    a = p.parse_args(argv)
    if a.frames < 1:
        raise UserError('--frames must be >= 1')
    from util.frames_io import open_frames

    tmp = tempfile.mkdtemp(prefix='bench_store_')
    try:
        video = a.video
        if video is None:
            video = os.path.join(tmp, 'synthetic.mp4')
            w = int(round(a.height * 854 / 480)) // 2 * 2   # DAVIS 854x480 aspect
            t0 = time.perf_counter()
            # A child process, so its memory does not count in this process's peak RSS.
            proc = mp.get_context('spawn').Process(target=write_synthetic_video,
                                                   args=(video, a.frames, a.height, w))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                raise UserError('writing the synthetic video failed')
            print(f'synthetic video: {a.frames} frames {w}x{a.height}, '
                  f'{os.path.getsize(video) / 2**20:.0f} MB, written in {time.perf_counter() - t0:.1f}s')
        base = rss_mb()[0]
        t0 = time.perf_counter()
        store = open_frames(video, resolution=a.resolution, storage=a.storage)
        dt = time.perf_counter() - t0
        raw = store.num_frames * store.height * store.width * 3
        print(f'loaded {store!r}')
        print(f'load time: {dt:.2f}s ({store.num_frames / dt:.0f} frames/s); raw frames '
              f'{raw / 2**30:.2f} GiB, masks {raw / 3 / 2**30:.2f} GiB')
        print(f'RSS before load {base:.0f} MB; peak RSS during load {peak_rss_mb():.0f} MB; '
              'after load {:.0f} MB (anon {:.0f}, file {:.0f})'.format(*rss_mb()))
        if not a.no_pass:
            store.add_object()
            t0 = time.perf_counter()
            lab = np.zeros((store.height, store.width), np.uint8)
            for t in range(store.num_frames):
                fr = store.frame(t)
                lab[:] = fr[..., 2] > 128
                store.set_mask(t, lab)
                store.get_mask(t)
            dt = time.perf_counter() - t0
            print(f'pass over all frames (read frame, write+read mask): {dt:.2f}s; '
                  'RSS {:.0f} MB (anon {:.0f}, file {:.0f}); peak RSS {:.0f} MB'.format(
                      *rss_mb(), peak_rss_mb()))
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    run_cli(main)
