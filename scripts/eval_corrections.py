"""One correction on each of a video's worst frames, with and without zoomed corrections (paired).

    python -m scripts.eval_corrections [--split selection|report] [--frames 5] [--weights DIR]
                                       [--data ../shared/data/davis2016-train] [--output out.json]

For each sequence a Session propagates the first ground-truth mask forward (the bundled networks,
or those in --weights). On its `--frames` worst frames by J (J < 0.9) the DAVIS interactive robot
draws one corrective round on the propagated mask, and the Session's scribble turns it into a mask
twice from the same strokes and the same previous mask: on the whole frame, and with
`zoom_corrections` (inference_core/scribble_zoom.py). J of that frame before and after each.
Unlike the 8-round protocol (scripts/eval_interactive_davis.py), where one run's rounds depend on the
previous ones and small differences snowball, both variants here see identical inputs, so the
difference is the zoom's alone. With `--propagate`, each correction is also propagated through
the whole video (both directions, combined with the first pass as in the GUI) and the video's
J&F before and after is recorded, then undone: what one correction round does to the video,
the quantity behind the goal that no round lowers J&F by more than a point. Needs the
optional davisinteractive package.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from util.davis_split import SPLITS
from util.errors import UserError, run_cli

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'davis2016-train'
VARIANTS = (('whole frame', False), ('zoomed', True))


def robot_answer(robot, name, pred, gt, n_obj):
    """The robot's corrective strokes on one frame: {object id: normalised paths}, 0 = background."""
    from scripts.eval_interactive_davis import robot_paths
    ans = robot.interact(name, pred[None], gt[None], nb_objects=n_obj, frame=0)
    return robot_paths(ans, 1)[1]


def video_jf(session, gt, obj_ids):
    """J&F of the whole sequence (every frame) as the Session holds it."""
    from util.metrics import evaluate_sequence as score
    pred = [session.get_mask(t, original=True) for t in range(session.num_frames)]
    return float(score(list(gt), pred, object_ids=obj_ids, skip_first_last=False)['J&F'])


def evaluate_sequence(name, session, gt, robot, frames=5, propagate=False):
    """Rows {frame, J_before, J per variant, seconds per variant (+ video J&F before and after
    per variant with propagate)} for one sequence."""
    from scripts.eval_interactive_davis import per_frame_j, scribble_robot_round
    from util.metrics import VOID_LABEL
    obj_ids = sorted(set(np.unique(gt).tolist()) - {0, VOID_LABEL})
    n_obj = max(obj_ids)
    session.ensure_objects(n_obj)
    session.set_labels(0, session_labels(session, gt[0]))
    session.propagate(0, direction='forward')
    T = session.num_frames
    pred = np.stack([session.get_mask(t, original=True) for t in range(T)])
    j = per_frame_j(gt, pred, obj_ids)
    j[0] = 1.0
    jf_video = video_jf(session, gt, obj_ids) if propagate else None
    depth = session.undo_steps
    rows = []
    for t in [int(t) for t in np.argsort(j, kind='stable')[:frames] if j[t] < 0.9]:
        by_obj = robot_answer(robot, name, pred[t], gt[t], n_obj)
        if not by_obj:
            continue
        start = session.get_mask(t)
        row = {'frame': t, 'J_before': float(j[t])}
        if propagate:
            row['video_JF_before'] = jf_video
        for label, zoom in VARIANTS:
            if not propagate:
                session.set_labels(t, start)       # the same previous mask for both variants
            session.end_interaction()
            t0 = time.perf_counter()
            scribble_robot_round(session, t, by_obj, obj_ids, zoom=zoom)
            row[f'{label} s'] = time.perf_counter() - t0
            row[label] = float(per_frame_j(gt[t:t + 1], session.get_mask(t, original=True)[None],
                                           obj_ids)[0])
            if propagate:
                session.propagate(t, direction='both')
                row[f'{label} video_JF'] = video_jf(session, gt, obj_ids)
                while session.undo_steps > depth:  # back to the first pass, exactly
                    session.undo()
                if not (session.get_mask(t) == start).all():
                    raise RuntimeError(f'{name}: undo did not restore frame {t}')
        rows.append(row)
    return rows


def session_labels(session, labels):
    """Ground-truth labels (original size) -> the Session's processing size."""
    from util.labels import resize_labels
    from util.metrics import VOID_LABEL
    lab = np.where(labels == VOID_LABEL, 0, labels).astype(np.uint8)
    return resize_labels(lab, session.height, session.width)


def summarize(per_seq):
    rows = [r for rs in per_seq.values() for r in rs]
    if not rows:
        raise UserError('no frame needed a correction (every frame has J >= 0.9)')
    out = {'corrections': len(rows), 'J_before': float(np.mean([r['J_before'] for r in rows]))}
    for label, _ in VARIANTS:
        a = np.array([r[label] for r in rows])
        b = np.array([r['J_before'] for r in rows])
        out[label] = {'J_after': float(a.mean()), 'worse': float((a < b - 0.01).mean()),
                      'median_s': float(np.median([r[f'{label} s'] for r in rows]))}
    z, w = (np.array([r[lab] for r in rows]) for lab in ('zoomed', 'whole frame'))
    out['zoom_better'] = int((z > w + 0.01).sum())
    out['zoom_worse'] = int((z < w - 0.01).sum())
    if 'video_JF_before' in rows[0]:
        b = np.array([r['video_JF_before'] for r in rows])
        for label, _ in VARIANTS:
            a = np.array([r[f'{label} video_JF'] for r in rows])
            out[label].update(video_JF_change=float((a - b).mean()),
                              video_worse_1pt=int((a < b - 0.01).sum()),
                              video_worst_drop=float(max(0.0, (b - a).max())))
    return out


def main(argv=None, networks=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=str(DEFAULT_ROOT), help='DAVIS-2016-style folder')
    ap.add_argument('--split', choices=sorted(SPLITS), default='selection')
    ap.add_argument('--sequences', nargs='+', help='instead of --split')
    ap.add_argument('--frames', type=int, default=5, help='worst frames corrected per sequence')
    ap.add_argument('--propagate', action='store_true',
                    help='also propagate each correction and score the whole video (slower)')
    ap.add_argument('--weights', default=None, help='bundled weights folder (default weights/)')
    ap.add_argument('--resolution', type=int, default=480,
                    help='processing short side (-1: the original frames)')
    ap.add_argument('--threads', type=int, default=None, help='torch threads')
    ap.add_argument('--output', help='write the JSON report here')
    args = ap.parse_args(argv)
    if args.frames < 1:
        raise UserError(f'--frames must be >= 1, got {args.frames}')
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from scripts.eval_interactive_davis import _quiet_robot_logs, read_ground_truth
    from inference_core.networks import load_networks
    from inference_core.session import Session
    from scripts.datasets import discover_dataset
    from util.davis_compat import scribbles_robot
    from util.mask_io import list_mask_files
    from util.progress import CliProgress
    robot = scribbles_robot()
    _quiet_robot_logs()
    _, seqs, _ = discover_dataset(args.data)
    names = list(args.sequences or SPLITS[args.split])
    missing = [n for n in names if n not in seqs or seqs[n][1] is None]
    if missing:
        raise UserError(f'{args.data}: no frames or masks for {", ".join(missing)}')
    if networks is None:
        networks = load_networks('bundled', device='cpu', weights_dir=args.weights)
    per_seq = {}
    bar = CliProgress('sequences')
    for i, n in enumerate(names):
        with Session.open(seqs[n][0], resolution=args.resolution, networks=networks,
                          history_bytes=(256 << 20) if args.propagate else 0) as s:
            gt = read_ground_truth(s, list_mask_files(seqs[n][1]))
            per_seq[n] = evaluate_sequence(n, s, gt, robot, args.frames, args.propagate)
        bar(i + 1, len(names))
    bar.close()
    summary = summarize(per_seq)
    for n, rows in per_seq.items():
        for r in rows:
            video = ''
            if 'video_JF_before' in r:
                video = (f'; video J&F {r["video_JF_before"]:.3f} -> '
                         f'{r["whole frame video_JF"]:.3f} / {r["zoomed video_JF"]:.3f}')
            print(f'{n:20s} frame {r["frame"]:3d}  J {r["J_before"]:.3f} -> whole frame '
                  f'{r["whole frame"]:.3f}, zoomed {r["zoomed"]:.3f}{video}')
    print(f'{summary["corrections"]} corrections, J before {summary["J_before"]:.4f}')
    for label, _ in VARIANTS:
        v = summary[label]
        print(f'  {label:12s} J after {v["J_after"]:.4f}  worse than before: {v["worse"]:.0%}  '
              f'median {v["median_s"] * 1000:.0f} ms')
        if 'video_JF_change' in v:
            print(f'  {"":12s} video J&F change {v["video_JF_change"] * 100:+.2f}, lowered by > 1 '
                  f'point: {v["video_worse_1pt"]} of {summary["corrections"]}, worst drop '
                  f'{v["video_worst_drop"] * 100:.1f}')
    print(f'  zoomed better / worse than whole frame (> 1 point): {summary["zoom_better"]} / '
          f'{summary["zoom_worse"]}')
    if args.output:
        from util.atomic import write_json
        write_json(args.output, {'summary': summary, 'sequences': per_seq,
                                 'weights': args.weights or 'weights'}, indent=1)
    return 0


if __name__ == '__main__':
    run_cli(main)
