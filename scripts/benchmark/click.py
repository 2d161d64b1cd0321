"""`python -m scripts.benchmark click`: click -> mask latency at 480p for the f-BRS path and the
bundled interaction-net path.

    python -m scripts.benchmark click                       # both paths, JSON on stdout
    python -m scripts.benchmark click --paths fbrs --clicks 4 --output bench_click.json

f-BRS uses saves/fbrs.pth when present; otherwise the same architecture with the deterministic
reference weights (../shared/reference/mivos/det_init.py) or, without those, random weights
(the compute is the same; the number of L-BFGS evaluations per click depends on the weights).
The bundled path uses weights/interaction_lite.pth when present; otherwise the untrained
architecture is timed and reported as such.
The frame is DAVIS 2016 'bear' frame 0 when ../shared is present, else a synthetic 854x480 frame.
Each click of a sequence (positive, negative, positive, ...) is timed end to end
(`ClickController.click`: padding, network(s), L-BFGS, unpadding): wall seconds, and the
process CPU seconds per click (`cpu_s`, all threads together) for a load-independent figure.
The controller alone runs with torch's threads (--threads); the Session's thread policy for
interactions is measured by the `interaction` command. `--busy-neighbour [N]` measures while N
child processes each burn a core.
"""
import os
import platform
import statistics
import sys
import time

import numpy as np

from scripts.benchmark import common
from util.errors import UserError

HELP = 'click controller latency per click (f-BRS and the bundled interaction net)'
PATHS = ('fbrs', 'bundled')


def add_arguments(p):
    p.add_argument('--paths', nargs='+', default=list(PATHS), choices=PATHS,
                   help='click paths to time (default: both)')
    p.add_argument('--clicks', type=int, default=3, help='clicks per sequence (default 3)')
    p.add_argument('--repeats', type=int, default=1, help='sequences timed (median per click)')
    common.add_device(p)
    p.add_argument('--saves', default=str(common.REPO / 'saves'),
                   help='folder with the official weights (fbrs.pth)')
    p.add_argument('--weights', default=str(common.REPO / 'weights'),
                   help='bundled weights folder')
    p.add_argument('--seq', default='bear', help='DAVIS sequence for the frame (default bear)')
    common.add_busy_neighbour(p)
    common.add_output(p, quiet=False)


def load_frame(seq):
    """(rgb (480, 854, 3) uint8, description)."""
    import cv2
    path = common.SHARED / 'data' / 'davis2016-train' / 'videos' / f'{seq}.mp4'
    if path.is_file():
        cap = cv2.VideoCapture(str(path))
        ok, bgr = cap.read()
        cap.release()
        if ok:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f'DAVIS {seq} frame 0'
    yy, xx = np.mgrid[0:480, 0:854].astype(np.float32)
    rgb = np.stack([xx / 854 * 200, yy / 480 * 200, 80 + 0 * xx], -1)
    rgb[((yy - 260) / 120) ** 2 + ((xx - 430) / 180) ** 2 <= 1] = (220, 60, 40)
    return rgb.astype(np.uint8), 'synthetic 854x480 (ellipse)'


def fbrs_model(saves, device):
    import torch

    from model.fbrs_net import FBRSNet, load_fbrs
    path = os.path.join(saves, 'fbrs.pth')
    if os.path.isfile(path):
        return load_fbrs(path, device)[0], f'official {path}'
    if (common.MIVOS_REF / 'det_init.py').is_file():
        return (load_fbrs(common.det_state_dict('fbrs'), device)[0],
                'official architecture, deterministic reference weights')
    torch.manual_seed(0)
    return FBRSNet().to(device).eval(), 'official architecture, random weights'


def bundled_model(weights, device):
    import torch

    from model import lite_networks
    if os.path.isfile(os.path.join(weights, lite_networks.FILES['interaction'])):
        return lite_networks.load_bundled(weights, device)[2], f'bundled {weights}'
    torch.manual_seed(0)
    return lite_networks.build('interaction').to(device).eval(), 'bundled architecture, untrained'


def click_points(w, h, n):
    base = [(0.50, 0.55, True), (0.15, 0.20, False), (0.42, 0.62, True), (0.85, 0.80, False),
            (0.58, 0.48, True), (0.30, 0.85, False), (0.50, 0.70, True), (0.70, 0.30, False)]
    return [(int(fx * w), int(fy * h), pos) for fx, fy, pos in (base * (n // len(base) + 1))[:n]]


def bench(ctrl, image, labels, clicks, repeats, device):
    import torch
    runs = []
    for _ in range(repeats):
        ctrl.reset()
        times, info = [], []
        for x, y, pos in clicks:
            if device.type == 'cuda':
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            out = ctrl.click(image, x, y, pos, labels, 1, 1, frame=0)
            if device.type == 'cuda':
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            # CPU seconds of this process: a load-independent cost when the machine is shared
            entry = {'cpu_s': round(time.process_time() - c0, 3),
                     'area': round(float((out > 0.5).float().mean()), 4)}
            if ctrl.predictor is not None:
                entry.update(lbfgs_nfev=ctrl.predictor.lbfgs_nfev,
                             zoom_roi=list(ctrl.predictor.zoom_roi) if ctrl.predictor.zoom_roi
                             else None)
            info.append(entry)
        runs.append(times)
    per_click = [statistics.median(r[i] for r in runs) for i in range(len(clicks))]
    return {'per_click_s': [round(t, 3) for t in per_click],
            'first_click_s': round(per_click[0], 3),
            'later_clicks_mean_s': round(statistics.mean(per_click[1:]), 3)
            if len(clicks) > 1 else None,
            'clicks': [dict(x=x, y=y, positive=p, **e) for (x, y, p), e in zip(clicks, info)]}


def run(args):
    if args.clicks < 1 or args.repeats < 1:
        raise UserError('--clicks and --repeats must be >= 1')
    with common.busy_neighbour(args.busy_neighbour):
        return _run(args)


def _run(args):
    import torch

    from inference_core.click import ClickController
    from inference_core.padding import pad_divide_by
    from util.device import pick_device
    from util.tensor_util import normalize_frames
    device = pick_device(args.device)
    if device.type == 'cuda':
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    rgb, frame_desc = load_frame(args.seq)
    h, w = rgb.shape[:2]
    image, _ = pad_divide_by(normalize_frames(rgb), 16)
    image = image.to(device)
    labels = np.zeros((h, w), np.uint8)
    clicks = click_points(w, h, args.clicks)
    result = {'frame': frame_desc, 'size': [w, h], 'device': str(device),
              'cpu': platform.processor() or platform.machine(), 'cpu_count': os.cpu_count(),
              'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
              'busy_neighbours': args.busy_neighbour, 'paths': {}}
    if device.type == 'cuda':
        result['gpu'] = torch.cuda.get_device_name(device)
    for name in dict.fromkeys(args.paths):
        if name == 'fbrs':
            net, desc = fbrs_model(args.saves, device)
            ctrl = ClickController(click_model=net, device=device)
        else:
            net, desc = bundled_model(args.weights, device)
            ctrl = ClickController(interaction=net, device=device)
        # warm-up (allocator, oneDNN / cuDNN kernels), not timed
        small, _ = pad_divide_by(normalize_frames(rgb[:128, :128]), 16)
        ctrl.click(small.to(device), 64, 64, True, np.zeros((128, 128), np.uint8), 1, 1)
        r = bench(ctrl, image, labels, clicks, args.repeats, device)
        r['model'] = desc
        result['paths'][name] = r
        print(f'{name}: {desc}: per click {r["per_click_s"]} s', file=sys.stderr)
    common.emit(result, args.output, indent=2)
    return 0
