"""Long-video benchmark (run through `python -m scripts.benchmark --long-video N`).

Writes an N-frame 854x480 H.264 video (a textured ellipse moving over a textured background),
then, through the Session API as the GUI uses it: opens it (frames kept on disk when they do not
fit the memory budget), sets the first frame's mask, propagates through the whole video with the
default memory policy, and exports indexed PNGs and the overlay video. Reports the per-frame
propagation time around 5% and 90% of the video (frames 500 and 9,000 of a 10,000-frame video)
and the peak resident memory after each stage.
"""
import os
import resource
import sys
import tempfile
import time

import numpy as np


def _rss_mb():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (1 << 20) if sys.platform == 'darwin' else r / 1024, 1)


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


def write_video(path, n, fps=30):
    from util.video_io import H264Writer
    frame = _scene()
    with H264Writer(path, (480, 854), fps) as w:
        for t in range(n):
            w.write(frame(t)[0])
    return frame(0)[1]


def _median_ms(stamps, at, half=50):
    lo, hi = max(1, at - half), min(len(stamps) - 1, at + half)
    d = np.diff(np.asarray(stamps[lo - 1:hi + 1]))
    return round(float(np.median(d)) * 1000, 2)


def run(nets, num_frames, args):
    from inference_core.session import Session
    out = {'frames': num_frames, 'size': [854, 480]}
    with tempfile.TemporaryDirectory(prefix='ivos_long_') as tmp:
        video = os.path.join(tmp, 'long.mp4')
        t0 = time.perf_counter()
        mask0 = write_video(video, num_frames)
        out['write_video_s'] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        s = Session.open(video, resolution=480, networks=nets, mem_freq=args.mem_freq,
                         top_k=args.top_k, amp='fp16' if args.amp else False)
        out['open_s'] = round(time.perf_counter() - t0, 1)
        out['storage'] = s.store.storage
        out['rss_after_open_mb'] = _rss_mb()
        try:
            s.add_object('ellipse')
            s.set_labels(0, mask0)
            stamps = []
            t0 = time.perf_counter()
            s.propagate(0, direction='forward', progress=lambda d, t: stamps.append(time.perf_counter()))
            out['propagate_s'] = round(time.perf_counter() - t0, 1)
            out['fps'] = round((num_frames - 1) / out['propagate_s'], 2)
            a, b = int(num_frames * 0.05), int(num_frames * 0.9)
            out['ms_per_frame'] = {str(a): _median_ms(stamps, a), str(b): _median_ms(stamps, b)}
            out['late_to_early_ratio'] = round(out['ms_per_frame'][str(b)] / out['ms_per_frame'][str(a)], 3)
            out['peak_memory_frames'] = s.peak_memory_frames
            out['rss_after_propagate_mb'] = _rss_mb()
            last = s.get_mask(num_frames - 1)
            gt = _scene()(num_frames - 1)[1]
            out['last_frame_iou'] = round(float(((last == 1) & (gt == 1)).sum() / max(((last == 1) | (gt == 1)).sum(), 1)), 3)
            t0 = time.perf_counter()
            assert s.export(os.path.join(tmp, 'out'), ['png', 'mp4'])
            out['export_s'] = round(time.perf_counter() - t0, 1)
            out['exported_pngs'] = len(os.listdir(os.path.join(tmp, 'out', 'masks')))
        finally:
            s.close()
        out['peak_rss_mb'] = _rss_mb()
    return out
