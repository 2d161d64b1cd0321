"""Propagation speed and memory of the engine on a generated clip.

    python scripts/bench_propagation.py --model official --device cpu --frames 10
    python scripts/bench_propagation.py --model bundled --objects 1,3 --json out.json
    python scripts/bench_propagation.py --model official --device cuda --amp fp16

For each object count, a child process builds a clip of N frames (default 480x864) with K moving
textured ellipses, interacts on frame 0 with the true masks and propagates forward through the
clip. Reported per run: FPS over all propagated frames and without the first one (warm-up), CPU
seconds per frame, the peak resident memory of the process (RSS) and, on CUDA, the peak
allocated GPU memory.

--model official uses saves/*.pth when present; otherwise the MiVOS reference deterministic
weights (../shared/reference/mivos/det_init.py) or, without them, seeded random weights.
--model bundled uses weights/ (untrained networks when absent). Speed and memory do not depend
on the weight values; the JSON says which weights ran.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from util.errors import UserError, run_cli  # noqa: E402


def make_clip(num_frames, height, width, num_objects, seed=0):
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.random((height // 16 + 2, width // 16 + 2, 3)).astype(np.float32),
                    (width, height), interpolation=cv2.INTER_CUBIC)
    bg = np.clip(bg * 150 + 40, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    objs = [(width * (0.2 + 0.25 * k), height * (0.35 + 0.15 * k), width * 0.08, height * 0.12,
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


def load_bench_networks(model, device, saves_dir, weights):
    """(Networks, description of the weights)."""
    import torch
    from inference_core.networks import Networks, load_networks, official_available
    if model == 'bundled':
        if weights != 'random':
            try:
                return load_networks('bundled', device=device), 'bundled weights/'
            except UserError:
                if weights != 'auto':
                    raise
        # Untrained lite networks (weights/ not there yet): same speed and memory.
        from model import lite_networks
        torch.manual_seed(0)
        dev = torch.device(device)
        prop, fuse = (lite_networks.build(k).to(dev).eval() for k in ('propagation', 'fusion'))
        return Networks('bundled', prop, fuse, None, None, dev), 'random (weights/ absent)'
    if weights in ('auto', 'real') and official_available(saves_dir):
        return load_networks('official', saves_dir=saves_dir, device=device), 'official files'
    if weights == 'real':
        raise UserError(f'official weights not found in {saves_dir} (run python download_model.py)')
    from model.fusion_net import FusionNet
    from model.propagation_net import PropagationNetwork
    prop, fuse = PropagationNetwork(), FusionNet()
    desc = 'random (seed 0)'
    ref = os.path.join(os.path.dirname(REPO), 'shared', 'reference', 'mivos')
    if weights in ('auto', 'det') and os.path.isfile(os.path.join(ref, 'det_init.py')):
        import importlib.util
        spec = importlib.util.spec_from_file_location('det_init', os.path.join(ref, 'det_init.py'))
        det = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(det)
        for net, name in ((prop, 'stcn'), (fuse, 'fusion_stcn')):
            sd = det.det_state_dict(os.path.join(ref, 'keys', f'{name}.txt'))
            net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
        desc = 'MiVOS reference det_init'
    elif weights == 'det':
        raise UserError(f'det_init.py not found in {ref}')
    else:
        torch.manual_seed(0)
    dev = torch.device(device)
    return Networks('official', prop.to(dev).eval(), fuse.to(dev).eval(), None, None, dev), desc


def run_child(args):
    """One measurement in this process; prints one JSON line."""
    import torch
    from inference_core.engine import PropagationEngine
    from inference_core.store import FrameStore
    from util.device import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    nets, weights = load_bench_networks(args.model, str(device), args.saves, args.weights)
    frames, labels = make_clip(args.frames + 1, args.height, args.width, args.child_objects)
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(args.child_objects)
    engine = PropagationEngine(nets, store, mem_freq=args.mem_freq, top_k=args.top_k,
                               max_memory_frames=args.max_memory_frames, amp=args.amp,
                               device=device, feature_cache_bytes=args.feature_cache_mb << 20)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    stamps = []

    def progress(done, total):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    c0 = time.process_time()
    engine.interact(0, labels[0], direction='forward', progress=progress)
    cpu = time.process_time() - c0
    n = len(stamps)
    total = stamps[-1] - t0
    warm = (stamps[-1] - stamps[0]) / (n - 1) if n > 1 else float('nan')
    out = {
        'model': args.model, 'weights': weights, 'device': str(device),
        'device_name': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        'amp': str(engine.amp_dtype).replace('torch.', '') if engine.amp_dtype else 'off',
        'threads': torch.get_num_threads(), 'objects': args.child_objects,
        'height': args.height, 'width': args.width, 'frames': n,
        'mem_freq': args.mem_freq, 'top_k': args.top_k,
        'max_memory_frames': args.max_memory_frames,
        'peak_memory_frames': engine.peak_memory_frames,
        'seconds': round(total, 3),
        'fps': round(n / total, 3),
        'fps_warm': round(1 / warm, 3) if n > 1 else None,
        # CPU seconds per frame of this process (all threads): less sensitive than FPS to other
        # processes competing for the cores.
        'cpu_s_per_frame': round(cpu / n, 3),
        'load_avg_1m': round(os.getloadavg()[0], 2),
        'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == 'cuda':
        out['cuda_peak_mb'] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', choices=('official', 'bundled'), default='official')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N')
    p.add_argument('--amp', default='off', choices=('off', 'fp16', 'bf16'),
                   help='autocast dtype (CUDA only)')
    p.add_argument('--frames', type=int, default=10, help='frames to propagate')
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--width', type=int, default=864)
    p.add_argument('--objects', default='1,3', help='comma-separated object counts')
    p.add_argument('--mem_freq', '--mem-freq', type=int, default=5)
    p.add_argument('--top_k', '--top-k', type=int, default=20)
    p.add_argument('--max_memory_frames', '--max-memory-frames', type=int, default=None)
    p.add_argument('--feature_cache_mb', '--feature-cache-mb', type=int, default=1024)
    p.add_argument('--threads', type=int, default=0, help='torch threads (0 = torch default)')
    p.add_argument('--weights', choices=('auto', 'real', 'det', 'random'), default='auto',
                   help='official model weights: saves/ files, reference det_init, or random')
    p.add_argument('--saves', default=os.path.join(REPO, 'saves'))
    p.add_argument('--json', default=None, help='also write the results to this file')
    p.add_argument('--child_objects', type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.frames < 1 or args.height < 16 or args.width < 16:
        raise UserError('--frames must be >= 1 and --height/--width >= 16')
    if args.child_objects is not None:
        run_child(args)
        return 0
    try:
        counts = [int(c) for c in args.objects.split(',') if c.strip()]
    except ValueError:
        raise UserError(f'--objects must be comma-separated integers, got {args.objects!r}') from None
    if not counts or min(counts) < 1:
        raise UserError('--objects needs at least one count >= 1')
    results = []
    for k in counts:
        # A fresh process per run, so peak RSS belongs to that run alone.
        cmd = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:] + ['--child_objects', str(k)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            msg = (proc.stderr.strip().splitlines() or ['failed'])[-1]
            raise UserError(f'benchmark with {k} object(s) failed: {msg}')
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        print(f"{res['model']:8s} {res['device']:6s} amp={res['amp']:8s} K={k} "
              f"{res['height']}x{res['width']} {res['frames']} frames: {res['fps']:.2f} FPS "
              f"(warm {res['fps_warm'] or float('nan'):.2f}), peak RSS {res['peak_rss_mb']:.0f} MB"
              + (f", CUDA peak {res['cuda_peak_mb']:.0f} MB" if 'cuda_peak_mb' in res else ''),
              file=sys.stderr)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        from util.atomic import write_text
        write_text(args.json, text + '\n')
    return 0


if __name__ == '__main__':
    run_cli(main)
