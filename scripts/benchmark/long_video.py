"""`python -m scripts.benchmark long-video [--frames 10000]`: a long video through the Session.

Writes an N-frame 854x480 H.264 video (a textured ellipse moving over a textured background),
then, through the Session API as the GUI uses it, for each network kind in its own process
(weights as in the default command): opens it (frames kept on disk when they do not fit the
memory budget), sets the first frame's mask, propagates through the whole video with the
default memory policy, and exports indexed PNGs and the overlay video. Reports the per-frame
propagation time around 5% and 90% of the video (frames 500 and 9,000 of a 10,000-frame video)
and the peak resident memory after each stage.
"""
import argparse
import os
import tempfile
import time

import numpy as np

from scripts.benchmark import common, suite
from util.errors import UserError

HELP = 'an N-frame video opened, propagated and exported: per-frame time early vs late, peak RSS'
MIN_FRAMES = 200


def add_arguments(p):
    kinds = common.network_kinds()
    p.add_argument('--kinds', nargs='+', default=list(kinds), choices=kinds,
                   help='network kinds, each measured in its own process (default: both)')
    p.add_argument('--frames', type=int, default=10000,
                   help=f'frames of the generated video (default 10000, at least {MIN_FRAMES})')
    p.add_argument('--early', type=int, default=None, metavar='FRAME',
                   help='frame whose time is the early reference (default: 5%% of the video; use '
                        'a frame after the memory is full, e.g. 170 at the default memory sizes, '
                        'to compare steady states on a short video)')
    p.add_argument('--late', type=int, default=None, metavar='FRAME',
                   help='frame compared with it (default: 90%% of the video)')
    common.add_device(p)
    common.add_engine(p)
    common.add_amp(p)
    common.add_output(p)
    p.add_argument('--child', choices=kinds, help=argparse.SUPPRESS)


def _scene(h=480, w=854, seed=0):
    import cv2
    rng = np.random.default_rng(seed)
    small = rng.random((h // 24 + 2, w // 24 + 2, 3))
    bg = (np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1) * 140 + 50)
    tex = rng.random((h, w, 3)) * 60
    yy, xx = np.mgrid[0:h, 0:w]

    def frame(t):
        cx = w * (0.5 + 0.3 * np.sin(t * 0.013))
        cy = h * (0.5 + 0.25 * np.sin(t * 0.021 + 1.0))
        inside = ((xx - cx) / 70) ** 2 + ((yy - cy) / 50) ** 2 <= 1
        img = bg.copy()
        img[inside] = (np.array([200.0, 70.0, 50.0]) + tex)[inside]
        return np.clip(img, 0, 255).astype(np.uint8), inside.astype(np.uint8)
    return frame


def write_video(path, n, fps=30, progress=None):
    from util.video_io import H264Writer
    frame = _scene()
    with H264Writer(path, (480, 854), fps) as w:
        for t in range(n):
            w.write(frame(t)[0])
            if progress is not None:
                progress(t + 1, n)
    return frame(0)[1]


def _median_ms(stamps, at, half=50):
    lo, hi = max(1, at - half), min(len(stamps) - 1, at + half)
    d = np.diff(np.asarray(stamps[lo - 1:hi + 1]))
    return round(float(np.median(d)) * 1000, 2)


def run_long_video(nets, num_frames, args):
    from inference_core.session import Session
    from util.progress import cli_progress
    out = {'frames': num_frames, 'size': [854, 480]}
    quiet = args.quiet
    with tempfile.TemporaryDirectory(prefix='ivos_long_') as tmp:
        video = os.path.join(tmp, 'long.mp4')
        t0 = time.perf_counter()
        with cli_progress('write video', quiet) as p:
            mask0 = write_video(video, num_frames, progress=p)
        out['write_video_s'] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        with cli_progress('open', quiet) as p:
            s = Session.open(video, resolution=480, networks=nets, mem_freq=args.mem_freq,
                             top_k=args.top_k, amp=args.amp, progress=p)
        out['open_s'] = round(time.perf_counter() - t0, 1)
        out['storage'] = s.storage
        out['rss_after_open_mb'] = common.peak_rss_mb()
        try:
            s.add_object('ellipse')
            s.set_labels(0, mask0)
            stamps = []
            with cli_progress('propagate', quiet) as p:
                def progress(d, total):
                    stamps.append(time.perf_counter())
                    p(d, total)
                t0 = time.perf_counter()
                s.propagate(0, direction='forward', progress=progress)
                out['propagate_s'] = round(time.perf_counter() - t0, 1)
            out['fps'] = round((num_frames - 1) / out['propagate_s'], 2)
            a = int(num_frames * 0.05) if getattr(args, 'early', None) is None else args.early
            b = int(num_frames * 0.9) if getattr(args, 'late', None) is None else args.late
            out['ms_per_frame'] = {str(a): _median_ms(stamps, a), str(b): _median_ms(stamps, b)}
            out['late_to_early_ratio'] = round(out['ms_per_frame'][str(b)] /
                                               out['ms_per_frame'][str(a)], 3)
            out['peak_memory_frames'] = s.peak_memory_frames
            out['rss_after_propagate_mb'] = common.peak_rss_mb()
            last = s.get_mask(num_frames - 1)
            gt = _scene()(num_frames - 1)[1]
            out['last_frame_iou'] = round(float(((last == 1) & (gt == 1)).sum() /
                                                max(((last == 1) | (gt == 1)).sum(), 1)), 3)
            t0 = time.perf_counter()
            with cli_progress('export', quiet) as p:
                assert s.export(os.path.join(tmp, 'out'), ['png', 'mp4'], progress=p)
            out['export_s'] = round(time.perf_counter() - t0, 1)
            out['exported_pngs'] = len(os.listdir(os.path.join(tmp, 'out', 'masks')))
        finally:
            s.close()
        out['peak_rss_mb'] = common.peak_rss_mb()
    return out


def run_kind(kind, args):
    import torch

    from util.device import pick_device
    device = pick_device(args.device)
    nets, note, _ = suite.load_kind(kind, device, args.top_k)
    if nets is None:
        return {'skipped': True, 'note': note}
    with torch.inference_mode():
        return {'weights': note, 'device': str(device),
                'long_video': run_long_video(nets, args.frames, args)}


def run(args):
    if args.frames < MIN_FRAMES:
        raise UserError(f'long-video needs --frames {MIN_FRAMES} or more, got {args.frames}')
    for name in ('early', 'late'):
        at = getattr(args, name)
        if at is not None and not 50 <= at < args.frames - 50:
            raise UserError(f'--{name} must be a frame between 50 and {args.frames - 51} (times '
                            f'are medians over 50 frames each side), got {at}')
    common.check_engine(args)
    report = suite.per_kind_report(args, run_kind, frames=args.frames)
    if report is not None:
        common.emit(report, args.output)
    return 0
