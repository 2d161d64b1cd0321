"""`python -m scripts.benchmark interaction`: scribble, click and box -> mask latency through
the Session on the 480p example clip.

    python example/make_example.py                  # once: creates example/clip, example/masks
    python -m scripts.benchmark interaction [--model bundled] [--repeats 5] [--threads N]

What the GUI does for one interaction, timed end to end: `Session.scribble` (one positive
stroke through the object's middle, as scripts/screenshot_gui.sh draws it) and `Session.click`
(one positive click at the object's deepest point), each a fresh interaction on frame 0 of
example/clip (854x480) from an empty mask, for each object of example/masks/00000.png; the
scribble twice: as the first stroke on the frame (`scribble`: the frame's backbone maps computed)
and as a later one (`scribble_same_frame`: the maps of the frame's previous stroke reused, as
when a person draws several strokes on one frame), the click likewise (`click`,
`click_same_frame`), and a box prompt (`Session.add_box` with the object's tight box: `box`,
and `box_same_frame`, the same box again: a box is segmented on a zoomed crop, so only the same
box reuses its crop's maps; another box on the frame costs what `box` does). One warm-up of
each, then the median of --repeats: wall seconds, and process CPU seconds (all threads
together), which stay meaningful on a loaded machine where the wall time does not. (The default command measures the same calls on a synthetic clip together with
propagation; the `click` command times the click controller alone.)

`--busy-neighbour [N]` measures while N child processes (default 1) each burn a core, as another
CPU-heavy program would; `--interaction-threads auto|off|N` is the Session's thread policy for
interactions (util/cpu_threads.py; default auto, `off` = torch's setting, as before
the policy). To compare, run e.g. `--threads 2 --busy-neighbour --interaction-threads off` and
`... auto`; `--clicks-only` times only the click calls (a short measurement).
"""
import os
import platform
import statistics
import sys
import time

import numpy as np

from scripts.benchmark import common
from util.errors import UserError

HELP = 'Session.scribble, Session.click and Session.add_box latency on the 480p example clip'


def add_arguments(p):
    p.add_argument('--clip', default=str(common.REPO / 'example' / 'clip'))
    p.add_argument('--mask', default=str(common.REPO / 'example' / 'masks' / '00000.png'),
                   help='label PNG of frame 0: where the stroke and the click go')
    p.add_argument('--model', default='bundled', choices=('auto',) + common.network_kinds())
    common.add_device(p)
    common.add_amp(p)
    p.add_argument('--resolution', type=int, default=480)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--interaction-threads', default='auto', metavar='auto|off|N',
                   help="the Session's intra-op threads for interactions (default auto)")
    p.add_argument('--clicks-only', action='store_true', help='time only the click calls')
    common.add_busy_neighbour(p)
    common.add_output(p, quiet=False)


def interaction_policy(value):
    """--interaction-threads as a Session `interaction_threads` value."""
    v = str(value).strip().lower()
    if v == 'auto':
        return 'auto'
    if v in ('off', 'none'):
        return None
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise UserError(f'--interaction-threads must be auto, off or an int >= 1, got {value!r}')
    return n


def object_stroke(mask):
    """A gentle horizontal curve through the middle of a bool mask (as screenshot_gui.sh)."""
    import cv2
    inner = cv2.erode(mask.astype(np.uint8), np.ones((25, 25), np.uint8))
    if not inner.any():
        inner = mask.astype(np.uint8)
    ys, _ = np.nonzero(inner)
    cy = float(np.median(ys))
    row = np.flatnonzero(inner[int(cy)])
    x0, x1 = row[len(row) // 5], row[4 * len(row) // 5]
    return [(float(x), cy + 0.08 * (x1 - x0) * np.sin(np.pi * (x - x0) / max(x1 - x0, 1)))
            for x in np.linspace(x0, x1, 12)]


def deepest_point(mask):
    import cv2
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def _timed(fn, repeats, before=None):
    """(median wall s, median CPU s, all wall) of fn() over `repeats` runs after one warm-up."""
    if before is not None:
        before()
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        if before is not None:
            before()
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), wall


def run(args):
    if args.repeats < 1:
        raise UserError(f'--repeats must be >= 1, got {args.repeats}')
    policy = interaction_policy(args.interaction_threads)
    with common.busy_neighbour(args.busy_neighbour):
        return _run(args, policy)


def _run(args, policy):
    if not os.path.isdir(args.clip):
        raise UserError(f'clip not found: {args.clip} (run python example/make_example.py)')
    common.check_engine(args)
    import torch

    from inference_core.networks import load_networks
    from inference_core.session import Session
    from util.cpu_threads import threads_for_interaction
    from util.labels import resize_labels
    from util.mask_io import read_label_png

    nets = load_networks(args.model, device=args.device)
    s = Session.open(args.clip, resolution=args.resolution, networks=nets, history_bytes=0,
                     amp=args.amp, interaction_threads=policy)
    with s:
        gt = resize_labels(read_label_png(args.mask), s.height, s.width)
        ids = [int(k) for k in np.unique(gt) if k]
        if not ids:
            raise UserError(f'{args.mask} has no object')
        s.ensure_objects(max(ids))
        empty = np.zeros_like(gt)

        def fresh():          # a new interaction on an empty frame 0
            s.end_interaction()
            s.set_labels(0, empty)
            s.end_interaction()

        def first_on_frame():  # ... and nothing kept from earlier strokes on the frame
            fresh()
            s.release_memory()

        report = {'device': str(nets.device), 'model': nets.kind, 'torch': torch.__version__,
                  'threads': torch.get_num_threads(), 'cpus': os.cpu_count(),
                  'loadavg_1min': os.getloadavg()[0] if hasattr(os, 'getloadavg') else None,
                  'platform': platform.platform(), 'size': [s.width, s.height],
                  'amp': args.amp, 'repeats': args.repeats, 'busy_neighbours': args.busy_neighbour,
                  'interaction_threads_policy': 'off' if policy is None else policy,
                  'interaction_threads': threads_for_interaction(policy), 'objects': {}}
        for k in ids:
            obj = gt == k
            stroke = object_stroke(obj)
            x, y = deepest_point(obj)
            res = {}
            scribble = lambda: s.scribble(0, k, positive=[stroke])      # noqa: E731
            ys, xs = np.nonzero(obj)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            calls = (('scribble', scribble, first_on_frame),
                     ('scribble_same_frame', scribble, fresh),
                     ('click', lambda: s.click(0, k, x, y), first_on_frame),
                     ('click_same_frame', lambda: s.click(0, k, x, y), fresh),
                     ('box', lambda: s.add_box(0, k, box), first_on_frame),
                     ('box_same_frame', lambda: s.add_box(0, k, box), fresh))
            for name, fn, before in calls[2:4] if args.clicks_only else calls:
                wall, cpu, runs = _timed(fn, args.repeats, before)
                m = s.get_mask(0) == k
                res[name] = {'wall_s': round(wall, 4), 'cpu_s': round(cpu, 4),
                             'wall_runs_s': [round(v, 4) for v in runs],
                             'iou': round(float((m & obj).sum() / max(1, (m | obj).sum())), 3)}
                print(f'object {k} {name:19s}: median {wall:.3f} s wall, {cpu:.3f} s CPU '
                      f'(IoU {res[name]["iou"]:.3f})', file=sys.stderr)
            report['objects'][str(k)] = res
    common.emit(report, args.output)
    return 0
