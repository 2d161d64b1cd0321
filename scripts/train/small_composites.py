"""Small look-alike objects, synthetic: clips for the engine's small-object zoom, and their score.

    python -m scripts.train.small_composites [--weights DIR] [--clips 16] [--no-zoom] [--no-gate]
        [--photos ../shared/data/static-sal ../shared/data/static-fg] [--output F]

The real videos hold few small objects (the selection split ten, and dog-gooses' geese swing
with any change), so settings of the propagation engine for small objects are also scored on
fixed synthetic clips: objects cut from the held-out photos (util.photo_split: no training uses
them), 0.1-1% of a 480p frame, one of them twice (a look-alike), moving slowly over another
held-out photo for 24 frames. Semi-supervised J&F through the Session, by object size.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from scripts.train.static_fg import StaticFG, composite_clip, photo_roots, twin
from util.errors import UserError, run_cli

SHARED = Path(__file__).resolve().parents[3] / 'shared' / 'data'
DEFAULT_PHOTOS = (SHARED / 'static-sal', SHARED / 'static-fg')


def small_object_clips(fg, count=16, n=24, seed=0, size=(480, 854), objects=(3, 5)):
    """Fixed synthetic clips of small look-alike objects at video resolution, for the small
    objects a few real videos hold too few of (a herd, a crowd, far cars): `count` clips of
    objects[0] to objects[1] - 1 objects of `fg`'s validation photos, each 7-20% of the frame's
    shorter side long (about 0.1-1% of the frame), one of them twice (a recoloured twin,
    mirrored half the time, also tracked), moving slowly over another of its photos for `n`
    frames. The same for the same folder and seed. Returns [(frames, labels, objects), ...]."""
    if fg.part == 'train':
        raise ValueError('validation clips must come from photos training does not use')
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        k = int(rng.integers(objects[0], objects[1]))
        ids = rng.choice(len(fg), k + 1, replace=False)
        cut = [fg.cutout(int(i)) for i in ids[:k]]
        rgb, mask = cut[int(rng.integers(k))]
        trgb, mirrored = twin(rgb, rng)
        cut.append((np.ascontiguousarray(trgb), np.ascontiguousarray(mask[:, ::-1] if mirrored else mask)))
        frames, labels = composite_clip(cut, fg.load(int(ids[k]))[0], rng, n=n, size=size,
                                        scale=(0.07, 0.2), motion=0.25)
        if labels.max() >= 2:
            out.append((frames, labels, int(labels.max())))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--weights', default='weights', help='bundled weights folder')
    ap.add_argument('--clips', type=int, default=16)
    ap.add_argument('--photos', nargs='+', default=[str(p) for p in DEFAULT_PHOTOS], metavar='DIR',
                    help='photo folders (images/ + masks/; default static-sal and static-fg)')
    ap.add_argument('--no-zoom', action='store_true', help="without the engine's zoomed pass")
    ap.add_argument('--no-gate', action='store_true', help="without the engine's regional gate")
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--output', default=None, help='also write the results (JSON) here')
    args = ap.parse_args(argv)
    if args.clips < 1:
        raise UserError('--clips must be at least 1')
    if not StaticFG.available(args.photos):
        raise UserError(f'{" ".join(args.photos)}: not photo folders (images/ and masks/)')
    torch.set_num_threads(args.threads)
    from inference_core.networks import load_bundled
    from scripts.eval_semi_davis import evaluate_clips, print_by_size
    prop = load_bundled(args.weights).propagation
    clips = small_object_clips(StaticFG(photo_roots(args.photos), part='validation'), count=args.clips)
    res = evaluate_clips(prop, clips, zoom=not args.no_zoom, gate=not args.no_gate,
                         progress=lambda d, t: print(f'\rclips {d}/{t}', end='', file=sys.stderr))
    print(file=sys.stderr)
    print(f'small-object composites ({args.clips} clip{"s" * (args.clips > 1)}, {res["objects"]} objects): '
          f'J&F {res["J&F-Mean"]*100:.2f}  J {res["J-Mean"]*100:.2f}  F {res["F-Mean"]*100:.2f}')
    print_by_size(res['by_size'])
    if args.output:
        Path(args.output).write_text(json.dumps({'weights': args.weights, 'zoom': not args.no_zoom,
                                                 'gate': not args.no_gate, **res}, indent=2))
    return 0


if __name__ == '__main__':
    run_cli(main)
