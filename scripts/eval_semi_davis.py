"""Evaluate the bundled networks on the held-out DAVIS sequences (util.davis_split.VAL_SEQUENCES).

    python -m scripts.eval_semi_davis [--data ../shared/data/davis2016-train] [--weights weights]
                                      [--kind bundled|official] [--skip-scribble] [--output out.json]

* Semi-supervised J&F: the first frame's ground-truth mask is given and a Session
  (inference_core/session.py: set_labels on frame 0, propagate forward; mem_freq 5, top-k 20)
  propagates it; J and F exclude the first and last frames (DAVIS protocol, util/metrics.py).
* First-scribble J: a simulated first scribble on the first frame -> interaction network -> J on
  that frame. Two simulators: this project's (a positive stroke inside the object and a negative
  one in the background around it, 5 random draws per sequence) and, when the optional
  davisinteractive package is installed, the DAVIS interactive robot's first scribble (the
  standard benchmark's; one positive stroke along the object's skeleton). The robot's path
  is not exactly the same from one run to the next (it moves by a pixel here and there; J per
  sequence by up to ~1 point).
Also reports propagation speed (frames/s over the whole run) and peak RSS.
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from scripts.eval_session import interaction_mask, propagate_flipped, propagate_sequence
from util.davis_split import VAL_SEQUENCES
from util.errors import UserError, run_cli

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'davis2016-train'


EXTRA_ROOT = DEFAULT_ROOT.parent / 'video-extra'
# object size by its mean share of the frame over the frames where it is visible (a 1% object
# is a handful of cells of the 15x27 / 18x32 matching grid)
SIZE_BUCKETS = (('small', 0.0, 0.01), ('medium', 0.01, 0.04), ('large', 0.04, 1.01))


def split_items(split, root=DEFAULT_ROOT, extra_root=EXTRA_ROOT):
    """[(folder, sequence), ...] of a split (util.davis_split): 'selection' (davis2016-train's
    selection videos plus video-extra's EXTRA_SELECTION where that folder exists), 'report'
    (davis2016-train's report videos) or 'unseen' (video-extra's EXTRA_UNSEEN)."""
    from util.davis_split import EXTRA_SELECTION, EXTRA_UNSEEN, REPORT_SEQUENCES, SELECTION_SEQUENCES
    extra = Path(extra_root) if extra_root is not None else None
    has_extra = extra is not None and (extra / 'videos').is_dir()
    if split == 'selection':
        return ([(Path(root), s) for s in SELECTION_SEQUENCES]
                + ([(extra, s) for s in EXTRA_SELECTION] if has_extra else []))
    if split == 'report':
        return [(Path(root), s) for s in REPORT_SEQUENCES]
    if split == 'unseen':
        if not has_extra:
            raise UserError(f'{extra_root}: the video-extra folder (videos/, masks/) is needed for --split unseen')
        return [(extra, s) for s in EXTRA_UNSEEN]
    raise ValueError(f'unknown split {split!r}')


def available_sequences(root, sequences):
    """The requested sequences that exist: names under `root` or (folder, name) pairs, returned
    as (folder, name) pairs (UserError when none does)."""
    items = [(Path(s[0]), s[1]) if isinstance(s, (tuple, list)) else (Path(root), s) for s in sequences]
    found = [(r, s) for r, s in items if (r / 'videos' / f'{s}.mp4').is_file() and (r / 'masks' / s).is_dir()]
    if not found:
        names = ', '.join(s for _, s in items)
        raise UserError(f'{root}: none of the held-out sequences {names} is there')
    return found


def object_sizes(gt, object_ids):
    """{id: mean share of the frame over the frames where the object is visible}."""
    gt = np.asarray(gt)
    out = {}
    for k in object_ids:
        area = (gt == k).reshape(len(gt), -1).mean(1)
        out[int(k)] = float(area[area > 0].mean()) if (area > 0).any() else 0.0
    return out


def size_bucket(share):
    return next(name for name, lo, hi in SIZE_BUCKETS if lo <= share < hi)


def by_size(results):
    """J&F (0..1) and object count per size bucket over the per-object results of evaluate_semi."""
    out = {}
    for name, _, _ in SIZE_BUCKETS:
        objs = [o for r in results for o in r['objects'] if o.get('size_bucket') == name]
        if objs:
            j = float(np.nanmean([o['J']['mean'] for o in objs]))
            f = float(np.nanmean([o['F']['mean'] for o in objs]))
            out[name] = {'J&F': (j + f) / 2, 'J': j, 'F': f, 'objects': len(objs)}
    return out


def scored_sequence(gt, pred, ids, name):
    """util.metrics.evaluate_sequence of one sequence's labels, each object also given its
    'size' (object_sizes) and 'size_bucket'."""
    from util.metrics import evaluate_sequence
    res = evaluate_sequence(list(gt), list(pred), object_ids=ids, name=name)
    sizes = object_sizes(gt, ids)
    for o in res['objects']:
        o['size'] = sizes.get(o['id'], 0.0)
        o['size_bucket'] = size_bucket(o['size'])
    return res


def evaluate_semi(prop_net, root=DEFAULT_ROOT, sequences=VAL_SEQUENCES, max_frames=None, progress=None,
                  adapt=0, seed=0, flip=False, training_free=False, zoom=True, gate=True):
    """Semi-supervised J&F (util.metrics.summarize dict, values in 0..1) plus 'fps' and per-sequence results.
    adapt > 0: first adapt the network to each sequence's first mask for that many steps
    (inference_core/adaptation.py, with `seed`); 'adapt_s' is the mean time it took.
    flip: average with a run on the mirrored video (test-time augmentation; 'fps' then includes
    the adaptation). training_free: the reference row instead of the network
    (inference_core.networks.training_free_propagation: frozen ImageNet features, no
    training). zoom: the engine's zoomed pass for small objects
    (inference_core/small_object_zoom.py); gate: its regional gate (inference_core/region_gate.py)."""
    from util.davis_io import load_labels
    from util.metrics import summarize
    results, n_frames, t_total, t_adapt = [], 0, 0.0, []
    items = available_sequences(root, sequences)
    with torch.inference_mode():
        for i, (folder, seq) in enumerate(items):
            frames, gt = load_labels(folder, seq)
            if max_frames:
                frames, gt = frames[:max_frames], gt[:max_frames]
            ids = [int(v) for v in np.unique(gt[0]) if v]
            t0 = time.time()
            if training_free:
                from inference_core.networks import training_free_propagation
                pred = training_free_propagation()(frames, gt[0])
            elif flip:      # adaptation (if any) happens inside and is timed with the propagation
                pred = propagate_flipped(prop_net, frames, gt[0], adapt=adapt, seed=seed)
            else:
                timing = {}
                pred = propagate_sequence(prop_net, frames, gt[0], zoom=zoom, adapt=adapt, seed=seed,
                                          timing=timing, gate=gate)
                if adapt:
                    t_adapt.append(timing['adapt_s'])
                    t0 += timing['adapt_s']         # the propagation's time alone
            t_total += time.time() - t0
            n_frames += len(frames) - 1
            results.append(scored_sequence(gt, pred, ids or [1], seq))
            if progress:
                progress(i + 1, len(items))
    out = summarize(results)
    out['fps'] = n_frames / max(t_total, 1e-9)
    if t_adapt:
        out['adapt_s'] = float(np.mean(t_adapt))
    out['per_sequence'] = {r['name']: {'J': r['J'], 'F': r['F'], 'J&F': r['J&F'],
                                       'objects': {str(o['id']): {
                                           'J&F': (o['J']['mean'] + o['F']['mean']) / 2,
                                           'size': o['size'], 'size_bucket': o['size_bucket']}
                                           for o in r['objects']}}
                           for r in results}
    out['by_size'] = by_size(results)
    return out


def evaluate_clips(prop_net, clips, zoom=True, gate=True, progress=None):
    """Semi-supervised J&F (util.metrics.summarize dict, values 0..1, plus 'by_size') of
    `prop_net` on synthetic multi-object clips [(frames, labels, objects), ...]
    (scripts.train.static_fg.validation_clips, scripts.train.small_composites): frame 0's
    labels given, the rest propagated through the Session (zoom, gate: as evaluate_semi)."""
    from util.metrics import summarize
    results = []
    with torch.inference_mode():
        for i, (frames, labels, k) in enumerate(clips):
            gt = labels.astype(np.uint8)
            pred = propagate_sequence(prop_net, frames, gt[0], zoom=zoom, gate=gate)
            results.append(scored_sequence(gt, pred, list(range(1, k + 1)), f'composite-{i}'))
            if progress:
                progress(i + 1, len(clips))
    out = summarize(results)
    out['by_size'] = by_size(results)
    return out


def robot_first_scribbles(gt, robot, brush=None):
    """The DAVIS interactive robot's first scribble on `gt` (H,W bool) with an empty prediction
    (davisinteractive's InteractiveScribblesRobot: the longest path of the object's skeleton),
    drawn as scripts/eval_interactive_davis.py and MiVOS draw it (`brush`: as robot_scribbles).
    Returns (pos, neg) float32 maps."""
    return robot_scribbles(gt, np.zeros(np.shape(gt), bool), robot, brush)


def robot_scribbles(gt, pred, robot, brush=None):
    """The DAVIS interactive robot's scribbles for the prediction `pred` against `gt` (H,W bool):
    positive strokes along the skeleton of missed regions, negative ones on false positives,
    drawn as scripts/eval_interactive_davis.py and MiVOS draw them (`brush`: another stroke width, e.g.
    at a smaller frame size). Returns (pos, neg) float32 maps."""
    from scripts.eval_interactive_davis import ROBOT_BRUSH, robot_paths, to_pixels
    from util.strokes import stroke_mask
    gt = np.asarray(gt, bool)
    h, w = gt.shape
    ans = robot.interact('frame', np.asarray(pred, bool)[None].astype(int), gt[None].astype(int),
                         nb_objects=1, frame=0)
    _, by_obj = robot_paths(ans, 1)
    pos = stroke_mask(h, w, to_pixels(by_obj.get(1, []), w, h), ROBOT_BRUSH)
    neg = stroke_mask(h, w, to_pixels(by_obj.get(0, []), w, h), ROBOT_BRUSH)
    return pos.astype(np.float32), neg.astype(np.float32)


_PROPAGATED = {}    # (id of the propagation net, root, sequence) -> labels, reused by validations


def evaluate_corrections(inter_net, prop_net, root=DEFAULT_ROOT, sequences=VAL_SEQUENCES, frames=3,
                         robot=None, seed=0):
    """Correction rounds on real propagation errors: `prop_net` propagates each sequence's first
    mask; on the `frames` worst frames (J < 0.9) a corrective round is drawn on that result (the
    DAVIS robot's scribbles with `robot`, else this project's simulator, fixed seed) and the
    interaction net turns it into a mask with the propagated one as the previous mask (a
    Session's scribble: interaction_mask).
    Returns {'J_before', 'J_after', 'worse' (share of corrections that lowered J), 'per_frame'}."""
    from scripts.simulated_marks import correction
    from util.davis_io import load_sequence
    from util.metrics import jaccard
    rng = np.random.default_rng(seed)
    before, after, per = [], [], {}
    with torch.inference_mode():
        for folder, seq in available_sequences(root, sequences):
            video, masks = load_sequence(folder, seq)
            key = (id(prop_net), str(folder), seq)
            if key not in _PROPAGATED:
                _PROPAGATED[key] = propagate_sequence(prop_net, video, masks[0].astype(np.uint8)) > 0
            pred = _PROPAGATED[key]
            js = np.array([jaccard(masks[t], pred[t]) for t in range(len(video))])
            js[0] = 1.0
            for t in [int(t) for t in np.argsort(js, kind='stable')[:frames] if js[t] < 0.9]:
                if robot is not None:
                    pos, neg = robot_scribbles(masks[t], pred[t], robot)
                else:
                    pos, neg = correction(masks[t], pred[t], rng, thickness=3)
                if not pos.any() and not neg.any():
                    continue
                mask, _ = interaction_mask(inter_net, video[t], pred[t], pos, neg)
                j = jaccard(masks[t], mask)
                before.append(js[t])
                after.append(j)
                per[f'{seq}/{t}'] = (round(float(js[t]), 4), round(float(j), 4))
    b, a = np.array(before), np.array(after)
    return {'J_before': float(b.mean()) if len(b) else float('nan'),
            'J_after': float(a.mean()) if len(a) else float('nan'),
            'worse': float((a < b - 0.01).mean()) if len(b) else float('nan'), 'per_frame': per}


def evaluate_first_scribble(inter_net, root=DEFAULT_ROOT, sequences=VAL_SEQUENCES, seed=0, frames=(0,),
                            trials=1, robot=None):
    """Mean J of the interaction net's mask from one simulated first scribble on frame 0 (or each
    of `frames`) of each held-out sequence (a Session's scribble: interaction_mask); also the
    median latency (ms) of one scribble -> mask at full resolution.

    Scribbles: by default this project's simulator (scripts/simulated_marks.first_scribbles: a
    positive stroke in the object, a negative one in the background around it; J averaged over
    `trials` random draws per frame); with `robot` (a davisinteractive InteractiveScribblesRobot)
    the DAVIS robot's first scribble (one positive stroke, no negative; one draw per frame)."""
    from scripts.simulated_marks import first_scribbles
    from util.davis_io import load_sequence
    from util.metrics import jaccard
    rng = np.random.default_rng(seed)
    js, times = {}, []
    sequences = available_sequences(root, sequences)
    with torch.inference_mode():
        for folder, seq in sequences:
            video, masks = load_sequence(folder, seq)
            for t in frames:
                if t >= len(video):
                    continue
                img, gt = video[t], masks[t]
                scores = []
                for _ in range(1 if robot is not None else trials):
                    pos, neg = robot_first_scribbles(gt, robot) if robot is not None else first_scribbles(gt, rng)
                    mask, seconds = interaction_mask(inter_net, img, np.zeros_like(pos), pos, neg)
                    times.append(seconds)
                    scores.append(jaccard(gt, mask))
                js[seq if len(frames) == 1 else f'{seq}/{t}'] = float(np.mean(scores))
    return {'J': float(np.mean(list(js.values()))), 'per_sequence': js,
            'latency_ms': 1000 * float(np.median(times))}


def evaluate_first_scribble_objects(inter_net, root=DEFAULT_ROOT, sequences=VAL_SEQUENCES, robot=None):
    """The DAVIS robot's first scribble for each object of frame 0, as the DAVIS interactive
    benchmark draws it on multi-object videos: the robot runs on the frame's object-id labels
    (a stroke per object, each sized by its own object) and a Session with all the objects turns
    the strokes into labels. J per object; a sequence's J is the mean over its objects, 'J' the
    mean over sequences and 'J_objects' the mean over all objects.

    (evaluate_first_scribble with `robot` instead treats all objects as one: one robot call on
    their union, whose opening, sized by the union, can erase a small object's stroke.)"""
    from scripts.eval_interactive_davis import robot_paths
    from scripts.eval_session import interaction_labels
    from util.davis_io import load_labels
    from util.metrics import jaccard
    per, times = {}, []
    with torch.inference_mode():
        for folder, seq in available_sequences(root, sequences):
            frames, gt = load_labels(folder, seq)
            img, lab = frames[0], gt[0]
            ids = [int(v) for v in np.unique(lab) if v]
            if not ids:
                continue
            k = max(ids)
            ans = robot.interact(seq, np.zeros((1,) + lab.shape, int), lab[None].astype(int),
                                 nb_objects=k, frame=0)
            _, by_obj = robot_paths(ans, 1)
            pred, seconds = interaction_labels(inter_net, img, by_obj, k)
            times.append(seconds)
            per[seq] = {str(i): float(jaccard(lab == i, pred == i)) for i in ids}
    seq_j = {s: float(np.mean(list(o.values()))) for s, o in per.items()}
    return {'J': float(np.mean(list(seq_j.values()))),
            'J_objects': float(np.mean([j for o in per.values() for j in o.values()])),
            'per_sequence': seq_j, 'per_object': per,
            'latency_ms': 1000 * float(np.median(times)) if times else float('nan')}


def networks_that_saw(weights, sequences):
    """Files of a bundled weights folder whose manifest says they trained on report videos
    among `sequences` (util.davis_split.trained_on_report)."""
    from util.davis_split import REPORT_SEQUENCES, trained_on_report
    path = Path(weights) / 'manifest.json'
    if not set(sequences) & set(REPORT_SEQUENCES) or not path.is_file():
        return []
    try:
        files = json.loads(path.read_text()).get('files', {})
    except ValueError:
        return []
    return sorted(name for name, entry in files.items() if trained_on_report(entry))


def print_by_size(buckets):
    print('  by object size (mean share of the frame where visible: small < 1%, medium < 4%): ' + ', '.join(
        f'{k} {v["J&F"]*100:.2f} ({v["objects"]} objects)' for k, v in buckets.items()))


def print_semi(res):
    """Per-sequence (and, for several objects, per-object) lines and the size buckets."""
    for s, r in res['per_sequence'].items():
        objs = r.get('objects', {})
        detail = ''
        if len(objs) > 1:
            detail = '   objects ' + ' '.join(f'{k}:{o["J&F"]*100:.1f}' for k, o in objs.items())
        print(f'  {s:18s} J&F {r["J&F"]*100:6.2f}{detail}')
    print_by_size(res['by_size'])


def main(argv=None):
    ap = argparse.ArgumentParser(description='Held-out evaluation of the bundled networks')
    ap.add_argument('--data', default=str(DEFAULT_ROOT))
    ap.add_argument('--weights', default='weights', help='bundled weights folder')
    ap.add_argument('--kind', default='bundled', choices=['bundled', 'official'])
    ap.add_argument('--saves', default='saves', help='official weights folder (--kind official)')
    ap.add_argument('--max-frames', type=int, default=None, help='only the first N frames per sequence')
    ap.add_argument('--skip-scribble', action='store_true')
    ap.add_argument('--skip-semi', action='store_true')
    ap.add_argument('--scribble-scales', type=int, nargs='+', default=None, metavar='SHORT',
                    help='run the interaction net at these processing sizes (short sides) and average '
                         'the logits (default: the shipped ones, model.lite_interaction.TEST_SCALES)')
    ap.add_argument('--no-edge-refine', action='store_true',
                    help="without the interaction net's edge refinement (the guided filter along "
                         "the frame's edges; to measure what it gives)")
    ap.add_argument('--scribble-trials', type=int, default=5, help='random scribbles per frame (J is averaged)')
    ap.add_argument('--adapt', type=int, default=0, metavar='STEPS',
                    help='online adaptation to each first mask before propagating (steps; 0 = off)')
    ap.add_argument('--flip', action='store_true',
                    help='flip test-time augmentation (as scripts.propagate --flip)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0],
                    help='with --adapt: one evaluation per adaptation seed (mean and range reported)')
    ap.add_argument('--training-free', action='store_true',
                    help='also score the training-free reference propagation on the same frames '
                         '(model/training_free.py; about 0.5 frames/s)')
    ap.add_argument('--split', choices=('selection', 'report', 'unseen'), default='selection',
                    help='held-out sequences to score (util.davis_split): selection (chooses '
                         'checkpoints and settings; default), report (DAVIS 2016 videos never used '
                         'to decide anything) or unseen (video-extra videos no network trained on '
                         'or decided with: final numbers only)')
    ap.add_argument('--extra-data', default=str(EXTRA_ROOT),
                    help='the video-extra folder (object-id masks): the unseen split and the '
                         'selection split\'s multi-object videos')
    ap.add_argument('--sequences', nargs='+', default=None,
                    help='score these sequences instead of a split')
    ap.add_argument('--proc-short', type=int, default=None, metavar='PIXELS',
                    help='bundled propagation: short side of the size it matches at (default: '
                         'the one its weights were trained at, stored in the file: 240 for the '
                         'shipped ones; its stride-16 grid is 1/16 of that)')
    ap.add_argument('--corrections', action='store_true',
                    help='also score correction rounds on real propagation errors: the 3 worst '
                         'frames of each sequence after semi-supervised propagation get the DAVIS '
                         'robot\'s corrective scribbles (this project\'s simulator without '
                         'davisinteractive); J before and after the interaction net')
    ap.add_argument('--no-zoom', action='store_true',
                    help='without the zoomed pass for small objects (to measure what it gives)')
    ap.add_argument('--no-gate', action='store_true',
                    help="without the engine's regional gate (each object kept near its previous "
                         "mask; to measure what it gives)")
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--output', default=None, help='also write the results (JSON) here')
    args = ap.parse_args(argv)
    if not (Path(args.data) / 'videos').is_dir():
        raise UserError(f'{args.data}: DAVIS data not found (needs videos/ and masks/)')
    torch.set_num_threads(args.threads)
    from inference_core.networks import load_bundled, load_official
    nets = load_bundled(args.weights) if args.kind == 'bundled' else load_official(args.saves, 'cpu')
    prop, inter = nets.propagation, nets.interaction
    sequences = tuple(args.sequences) if args.sequences else tuple(
        split_items(args.split, args.data, args.extra_data))
    names = [s[1] if isinstance(s, tuple) else s for s in sequences]
    out = {'sequences': names, 'split': None if args.sequences else args.split, 'zoom': not args.no_zoom,
           'gate': not args.no_gate}
    if args.kind == 'bundled':
        seen = networks_that_saw(args.weights, names)
        if seen:
            out['trained_on_these_videos'] = seen
            print(f'note: {", ".join(seen)} trained on report videos scored here: not held-out numbers',
                  file=sys.stderr)
    if args.proc_short is not None:
        if args.kind != 'bundled' or not 64 <= args.proc_short <= 1080:
            raise UserError('--proc-short needs the bundled networks and 64..1080 pixels')
        prop.proc_short = args.proc_short
    if args.kind == 'bundled':
        out['proc_short'] = prop.proc_short          # what was measured, overridden or not
    if args.scribble_scales:
        if args.kind != 'bundled' or min(args.scribble_scales) < 32:
            raise UserError('--scribble-scales needs the bundled networks and sizes of at least 32 pixels')
        inter.proc_short, inter.extra_scales = args.scribble_scales[0], tuple(args.scribble_scales[1:])
        out['scribble_scales'] = args.scribble_scales
    if args.no_edge_refine:
        if args.kind != 'bundled':
            raise UserError('--no-edge-refine needs the bundled networks')
        inter.edge_refine = None
    out['edge_refine'] = args.kind == 'bundled' and inter.edge_refine is not None
    if not args.skip_semi:
        runs = []
        for seed in (args.seeds if args.adapt else [0]):
            label = f'semi (adapt {args.adapt} steps, seed {seed})' if args.adapt else 'semi'
            label += ' + flip' if args.flip else ''
            res = evaluate_semi(prop, args.data, sequences, max_frames=args.max_frames, adapt=args.adapt,
                                seed=seed, flip=args.flip, zoom=not args.no_zoom, gate=not args.no_gate,
                                progress=lambda d, t: print(f'\r{label} {d}/{t}', end='', file=sys.stderr))
            print(file=sys.stderr)
            runs.append(res)
            extra = f', adaptation {res["adapt_s"]:.1f} s per sequence' if 'adapt_s' in res else ''
            print(f'{label}: J&F {res["J&F-Mean"]*100:.2f}  J {res["J-Mean"]*100:.2f}  '
                  f'F {res["F-Mean"]*100:.2f}  ({res["fps"]:.1f} frames/s{extra})')
            print_semi(res)
        out['semi'] = runs[0] if len(runs) == 1 else runs
        if args.training_free:
            res = evaluate_semi(None, args.data, sequences, max_frames=args.max_frames, training_free=True,
                                progress=lambda d, t: print(f'\rtraining-free {d}/{t}', end='', file=sys.stderr))
            print(file=sys.stderr)
            out['semi_training_free'] = res
            print(f'training-free reference: J&F {res["J&F-Mean"]*100:.2f}  J {res["J-Mean"]*100:.2f}  '
                  f'F {res["F-Mean"]*100:.2f}  ({res["fps"]:.2f} frames/s)')
            for s, r in res['per_sequence'].items():
                net = runs[0]['per_sequence'][s]['J&F'] * 100
                print(f'  {s:18s} J&F {r["J&F"]*100:6.2f}   (network {net:6.2f}, {net - r["J&F"]*100:+.2f})')
            print_by_size(res['by_size'])
        if len(runs) > 1:
            jf = [r['J&F-Mean'] * 100 for r in runs]
            print(f'semi-supervised over {len(runs)} adaptation seeds: J&F mean {np.mean(jf):.2f} '
                  f'(min {min(jf):.2f}, max {max(jf):.2f})')
    if not args.skip_scribble:
        res = evaluate_first_scribble(inter, args.data, sequences, trials=args.scribble_trials)
        out['first_scribble'] = res
        print(f'first-scribble J {res["J"]*100:.2f}  (this project\'s simulator: a positive and a '
              f'negative stroke, {args.scribble_trials} draws per sequence; median '
              f'{res["latency_ms"]:.0f} ms per scribble)')
        for s, j in res['per_sequence'].items():
            print(f'  {s:14s} J {j*100:6.2f}')
        from util import davis_compat
        if davis_compat.available():
            from scripts.eval_interactive_davis import _quiet_robot_logs
            robot = davis_compat.scribbles_robot()
            _quiet_robot_logs()
            res = evaluate_first_scribble(inter, args.data, sequences, robot=robot)
            out['first_scribble_robot'] = res
            print(f'first-scribble J {res["J"]*100:.2f}  (the DAVIS interactive robot\'s first scribble)')
            for s, j in res['per_sequence'].items():
                print(f'  {s:14s} J {j*100:6.2f}')
            res = evaluate_first_scribble_objects(inter, args.data, sequences, robot=robot)
            out['first_scribble_robot_objects'] = res
            print(f'first-scribble J {res["J"]*100:.2f} per sequence, {res["J_objects"]*100:.2f} per '
                  f'object  (the DAVIS robot\'s first scribble for each object, as its benchmark '
                  f'draws multi-object frames; the line above treats all objects as one)')
            for s, j in res['per_sequence'].items():
                objs = ' '.join(f'{i}:{v*100:.1f}' for i, v in res['per_object'][s].items())
                print(f'  {s:14s} J {j*100:6.2f}   objects {objs}')
        else:
            print('(the DAVIS robot\'s first-scribble J needs the optional davisinteractive package: '
                  f'{davis_compat.INSTALL_HINT})')
    if args.corrections:
        from util import davis_compat
        robot = davis_compat.scribbles_robot() if davis_compat.available() else None
        if robot is not None:
            from scripts.eval_interactive_davis import _quiet_robot_logs
            _quiet_robot_logs()
        res = evaluate_corrections(inter, prop, args.data, sequences, robot=robot)
        out['corrections'] = res
        who = 'the DAVIS robot' if robot is not None else "this project's simulator"
        print(f'corrections on real propagation errors ({who}, 3 worst frames per sequence): '
              f'J {res["J_before"]*100:.2f} -> {res["J_after"]*100:.2f}, '
              f'{res["worse"]*100:.0f}% of the corrections lowered J')
        for f, (b, a) in res['per_frame'].items():
            print(f'  {f:18s} J {b*100:6.2f} -> {a*100:6.2f}')
    out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'peak RSS {out["peak_rss_mb"]:.0f} MB')
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == '__main__':
    run_cli(main)
