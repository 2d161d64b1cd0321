"""`python -m scripts.benchmark propagation`: propagation speed and memory on a generated clip.

    python -m scripts.benchmark propagation --model official --device cpu --frames 10
    python -m scripts.benchmark propagation --model bundled --objects 1 3 --output out.json
    python -m scripts.benchmark propagation --model official --device cuda --amp fp16

For each object count, a child process builds a clip of N frames (default 480x864) with K moving
textured ellipses, sets the true masks on frame 0 of a Session and propagates forward through
the clip. Reported per run: FPS over all propagated frames and without the first one (warm-up),
CPU seconds per frame, the peak resident memory of the process (RSS) and, on CUDA, the peak
allocated GPU memory.

--model official uses saves/*.pth when present; otherwise the MiVOS reference deterministic
weights (../shared/reference/mivos/det_init.py) or, without them, seeded random weights.
--model bundled uses weights/ (untrained networks when absent). Speed and memory do not depend
on the weight values; the JSON says which weights ran.
"""
import argparse
import os
import sys
import time

from scripts.benchmark import common
from util.errors import UserError

HELP = ('propagation FPS and memory on a generated clip, one process per object count, with the '
        'memory options')
AMP_DTYPES = {'fp16': 'float16', 'bf16': 'bfloat16'}


def add_arguments(p):
    p.add_argument('--model', choices=common.network_kinds(), default='official',
                   help='network kind (default official)')
    common.add_device(p)
    common.add_amp(p)
    p.add_argument('--frames', type=int, default=10, help='frames to propagate (default 10)')
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--width', type=int, default=864)
    p.add_argument('--objects', type=int, nargs='+', default=[1, 3],
                   help='object counts, one run (process) each (default: 1 3)')
    common.add_engine(p)
    p.add_argument('--max_memory_frames', type=int, default=None,
                   help='expert: cap on all memory frames per pass (default: the bounded policy)')
    p.add_argument('--feature_cache_mb', type=int, default=1024,
                   help='feature cache budget in MiB (default 1024)')
    p.add_argument('--weights', choices=('auto', 'real', 'det', 'random'), default='auto',
                   help='official model weights: saves/ files, reference det_init, or random')
    p.add_argument('--saves', default=str(common.REPO / 'saves'),
                   help='folder with the official weights')
    p.add_argument('--bundled-weights', default=None, metavar='DIR',
                   help='bundled weights folder (default weights/): e.g. a candidate set in runs/, '
                        'whose propagation file may run at another processing size')
    common.add_output(p)
    p.add_argument('--object-scale', type=float, default=1.0, metavar='S',
                   help='shrink the objects (1: ~3%% of the frame each; 0.5: ~0.75%%, which the '
                        'bundled networks track with their zoomed small-object pass)')
    p.add_argument('--child', type=int, default=None, metavar='OBJECTS',
                   help=argparse.SUPPRESS)


def load_bench_networks(model, device, saves_dir, weights, bundled_dir=None):
    """(Networks, description of the weights)."""
    import torch

    from inference_core.networks import Networks, load_networks, official_available
    if model == 'bundled':
        if weights != 'random':
            try:
                nets = load_networks('bundled', device=device, weights_dir=bundled_dir)
                return nets, f'bundled {bundled_dir or "weights/"}'
            except UserError:
                if weights != 'auto' or bundled_dir:
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
    if weights in ('auto', 'det') and (common.MIVOS_REF / 'det_init.py').is_file():
        for net, name in ((prop, 'stcn'), (fuse, 'fusion_stcn')):
            net.load_state_dict(common.det_state_dict(name), strict=True)
        desc = 'MiVOS reference det_init'
    elif weights == 'det':
        raise UserError(f'det_init.py not found in {common.MIVOS_REF}')
    else:
        torch.manual_seed(0)
    dev = torch.device(device)
    return Networks('official', prop.to(dev).eval(), fuse.to(dev).eval(), None, None, dev), desc


def run_child(args):
    """One measurement in this process; prints one JSON line."""
    import torch

    from inference_core.session import Session
    from util.device import pick_device
    from util.progress import cli_progress

    k = args.child
    device = pick_device(args.device)
    nets, weights = load_bench_networks(args.model, str(device), args.saves, args.weights,
                                        args.bundled_weights)
    frames, labels = common.make_clip(args.frames + 1, args.height, args.width, k,
                                      object_scale=args.object_scale)
    s = Session.from_frames(frames, storage='memory', num_objects=k, networks=nets,
                            mem_freq=args.mem_freq, top_k=args.top_k,
                            max_memory_frames=args.max_memory_frames, amp=args.amp,
                            feature_cache_bytes=args.feature_cache_mb << 20, history_bytes=0)
    s.set_labels(0, labels[0])
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    stamps = []
    with cli_progress(f'{args.model}, {k} object(s)', args.quiet) as bar:
        def progress(done, total):
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            stamps.append(time.perf_counter())
            bar(done, total)

        t0 = time.perf_counter()
        c0 = time.process_time()
        s.propagate(0, direction='forward', progress=progress)
        cpu = time.process_time() - c0
    n = len(stamps)
    total = stamps[-1] - t0
    warm = (stamps[-1] - stamps[0]) / (n - 1) if n > 1 else float('nan')
    amp = AMP_DTYPES.get(args.amp, 'off') if device.type == 'cuda' else 'off'
    out = {
        'model': args.model, 'weights': weights, 'device': str(device),
        'proc_short': getattr(nets.propagation, 'proc_short', None),    # bundled: its matching size
        'device_name': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        'amp': amp, 'threads': torch.get_num_threads(), 'objects': k,
        'height': args.height, 'width': args.width, 'frames': n, 'object_scale': args.object_scale,
        'object_share': round(float((labels[0] > 0).mean()) / k, 5),
        'mem_freq': args.mem_freq, 'top_k': args.top_k,
        'max_memory_frames': args.max_memory_frames,
        'peak_memory_frames': s.peak_memory_frames,
        'seconds': round(total, 3),
        'fps': round(n / total, 3),
        'fps_warm': round(1 / warm, 3) if n > 1 else None,
        # CPU seconds per frame of this process (all threads): less sensitive than FPS to other
        # processes competing for the cores.
        'cpu_s_per_frame': round(cpu / n, 3),
        'load_avg_1m': round(os.getloadavg()[0], 2),
        'peak_rss_mb': common.peak_rss_mb(),
    }
    if device.type == 'cuda':
        out['cuda_peak_mb'] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    s.close()
    common.child_result(out)


def run(args):
    if args.frames < 1 or args.height < 16 or args.width < 16:
        raise UserError('--frames must be >= 1 and --height/--width >= 16')
    if min(args.objects) < 1:
        raise UserError('--objects needs counts >= 1')
    if args.feature_cache_mb < 0:
        raise UserError(f'--feature_cache_mb must be 0 or more, got {args.feature_cache_mb}')
    common.check_engine(args)
    if args.child is not None:
        run_child(args)
        return 0
    results = []
    for k in args.objects:
        # A fresh process per run, so peak RSS belongs to that run alone.
        rc, res, last = common.run_child(common.child_argv(args, '--child', str(k)))
        if rc != 0 or res is None:
            raise UserError(f'benchmark with {k} object(s) failed: {last}')
        results.append(res)
        print(f"{res['model']:8s} {res['device']:6s} amp={res['amp']:8s} K={k} "
              f"{res['height']}x{res['width']} {res['frames']} frames: {res['fps']:.2f} FPS "
              f"(warm {res['fps_warm'] or float('nan'):.2f}), peak RSS {res['peak_rss_mb']:.0f} MB"
              + (f", CUDA peak {res['cuda_peak_mb']:.0f} MB" if 'cuda_peak_mb' in res else ''),
              file=sys.stderr)
    common.emit(results, args.output, indent=2)
    return 0
