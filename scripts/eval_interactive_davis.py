"""DAVIS interactive evaluation (scribble robot protocol) on any folder with ground truth.

    python -m scripts.eval_interactive_davis --dataset DAVIS/ [--sequences bear boat | --split list.txt]
                                             [--rounds 8] [--first-frame auto|middle|N] [--model auto]
                                             [--output report.json] [--save-masks DIR]

Needs the optional package `davisinteractive` (its InteractiveScribblesRobot simulates the
person; install: see requirements-extra.txt). Dataset layouts: DAVIS (JPEGImages/480p +
Annotations/480p, a mask for every frame) or videos/<seq>.mp4 + masks/<seq>/ (e.g.
../shared/data/davis2016-train).

Protocol, per sequence (after the DAVIS interactive benchmark and MiVOS's evaluation):
  round 1   the robot draws scribbles on an empty prediction, on the frame --first-frame picks
            ('auto' = the robot's choice on the empty prediction: the first frame where the most
            objects are visible; 'middle'; or a frame number);
  round r>1 the robot draws on the frame with the worst J of the current prediction (positive
            scribbles inside the missed regions of each object, background scribbles on the
            false positives);
  each round: the robot's scribble paths (normalised to [0,1] image coordinates) are drawn with a
  3-pixel brush at processing resolution -> Session.scribble (scribble-to-mask, every object) ->
  Session.propagate (both directions, fused with the earlier interactions) -> J, F and J&F of the
  whole sequence (every frame, every object, at the ground-truth resolution).
  --oracle (a diagnostic, not the benchmark): the robot's frame gets its ground-truth mask
  instead (Session.set_labels), so the rounds show what the propagation makes of perfect
  corrections: the ceiling any interaction network can reach with these propagation networks.
Reported: J&F per round, the time per round (interaction + propagation, the robot and the
scoring excluded) and the AUC of J&F over rounds:
  AUC = trapezoidal area under the J&F(round) curve with the rounds placed evenly on [0, 1]
        (round 1 at 0, round N at 1), i.e. AUC = (sum of J&F_r - (J&F_1 + J&F_N) / 2) / (N - 1);
        with one round it is J&F_1. Values are in [0, 1]; the DAVIS challenge's AUC is over time
        instead of rounds and is not comparable.
"""
import argparse
import os
import sys
import time

import numpy as np

from util.cli_options import add_amp_option
from util.errors import UserError, run_cli

ROBOT_BRUSH = 3      # MiVOS's DAVIS path dilates the rasterised robot scribbles with a 3x3 kernel


def auc_over_rounds(values):
    """Trapezoidal area under `values` placed evenly on [0, 1] (see the module docstring)."""
    v = [float(x) for x in values]
    if not v:
        return float('nan')
    if len(v) == 1:
        return v[0]
    return (sum(v) - (v[0] + v[-1]) / 2) / (len(v) - 1)


def robot_paths(scribble, frame_count):
    """(frame, {object_id: [path (n, 2) normalised (x, y)], ...}) of a robot answer, or
    (None, {}) when it drew nothing."""
    per_frame = scribble['scribbles']
    if len(per_frame) != frame_count:
        raise RuntimeError(f'robot returned {len(per_frame)} frames for {frame_count}')
    for t, paths in enumerate(per_frame):
        if paths:
            by_obj = {}
            for p in paths:
                pts = np.asarray(p['path'], dtype=np.float64).reshape(-1, 2)
                if len(pts):
                    by_obj.setdefault(int(p['object_id']), []).append(pts)
            return t, by_obj
    return None, {}


def to_pixels(paths, width, height):
    """Normalised robot paths -> (x, y) pixel polylines for a (width, height) frame, scaled by
    (size - 1) as davisinteractive's own rasteriser (scribbles2mask, used by MiVOS) does."""
    out = []
    for p in paths:
        q = np.empty_like(p)
        q[:, 0] = np.clip(p[:, 0] * (width - 1), 0, width - 1)
        q[:, 1] = np.clip(p[:, 1] * (height - 1), 0, height - 1)
        out.append(q)
    return out


def scribble_robot_round(session, t, by_obj, obj_ids, zoom=None):
    """Draw one robot answer on frame t of `session`: {object id: normalised paths} (0 =
    background) from robot_paths -> Session.scribble with the robot's brush, every object
    (`zoom`: Session.scribble's, None = the session's setting)."""
    w, h = session.width, session.height
    neg = to_pixels(by_obj.get(0, []), w, h)
    positives = [(k, to_pixels(p, w, h)) for k, p in sorted(by_obj.items())
                 if 0 < k <= max(obj_ids)]
    if not positives:
        session.scribble(t, obj_ids[0], negative=neg, brush=ROBOT_BRUSH, zoom=zoom)
    for i, (k, paths) in enumerate(positives):
        # strokes accumulate on the frame: the last call segments every object from all of
        # them (as MiVOS's DAVIS path does in one go)
        session.scribble(t, k, positive=paths, negative=neg if i == 0 else None,
                         brush=ROBOT_BRUSH, zoom=zoom)


def read_ground_truth(session, files):
    """(T, H, W) uint8 ground truth at the original resolution, one mask per frame."""
    from util.mask_io import match_masks_to_frames, read_label_png
    names, n = session.frame_names, session.num_frames
    targets = match_masks_to_frames(files, names)
    if sorted(targets) != list(range(n)):
        missing = sorted(set(range(n)) - set(targets))
        raise UserError(f'ground truth missing for frame {names[missing[0]]!r} '
                        f'({len(missing)} of {n} frames): the interactive '
                        f'evaluation needs a mask for every frame')
    gt = np.zeros((n, session.orig_height, session.orig_width), np.uint8)
    for f, t in zip(files, targets):
        lab = read_label_png(f)
        if lab.shape != gt.shape[1:]:
            raise UserError(f'mask {os.path.basename(f)} is {lab.shape[1]}x{lab.shape[0]} but '
                            f'the frames are {session.orig_width}x{session.orig_height}')
        gt[t] = lab
    return gt


def gt_at_processing_size(session, labels):
    """A ground-truth label map resized (nearest) to the session's processing size, void -> 0."""
    from util.labels import resize_labels
    from util.metrics import VOID_LABEL
    lab = resize_labels(labels, session.height, session.width)
    lab[lab == VOID_LABEL] = 0
    return lab


def per_frame_j(gt, pred, obj_ids):
    """(T,) mean J over the objects of each frame."""
    from util.metrics import VOID_LABEL, jaccard
    out = []
    for g, p in zip(gt, pred):
        void = g == VOID_LABEL
        out.append(np.mean([jaccard(g == k, p == k, void) for k in obj_ids]))
    return np.asarray(out)


def in_worst_third(j, frame, exclude=()):
    """Whether `frame` is among the worst third of frames by J (frames in `exclude` left out;
    ties with the third's boundary count as inside)."""
    keep = [t for t in range(len(j)) if t not in set(exclude)]
    if frame is None or frame not in keep:
        return None
    vals = np.sort(j[keep])
    bound = vals[max(0, int(np.ceil(len(vals) / 3)) - 1)]
    return bool(j[frame] <= bound)


def evaluate_sequence(name, session, gt, robot, rounds=8, first_frame='auto', log=None,
                      next_frame='worst', oracle=False):
    """Run the protocol on one sequence in `session` (a fresh Session on its frames, e.g.
    history_bytes=0). Returns (report dict, final prediction (T,H,W)).
    next_frame: 'worst' (round r > 1 on the frame with the worst J: the DAVIS protocol) or
    'suggested' (on Session.suggest_frame(): what a person without ground truth gets). Either
    way each round records the tool's suggestion and whether it was among the worst third of
    the frames by true J. oracle: each round's interaction is the ground-truth mask of the
    robot's frame instead of its scribbles (a ceiling for the interaction network: what the
    propagation and the combination make of perfect corrections)."""
    from util.metrics import VOID_LABEL, evaluate_sequence as score
    obj_ids = sorted(set(np.unique(gt).tolist()) - {0, VOID_LABEL})
    if not obj_ids:
        raise UserError(f'{name}: the ground truth has no object')
    n_obj = max(obj_ids)
    session.ensure_objects(n_obj)
    T = session.num_frames
    if first_frame == 'auto':
        frame1 = None
    elif first_frame == 'middle':
        frame1 = T // 2
    else:
        frame1 = int(first_frame)
        if not 0 <= frame1 < T:
            raise UserError(f'{name}: --first-frame {frame1} is out of range (0..{T - 1})')
    pred = np.zeros_like(gt)
    out = []
    for r in range(1, rounds + 1):
        suggested = session.suggest_frame() if r > 1 else None
        hit = None
        if suggested is not None:
            hit = in_worst_third(per_frame_j(gt, pred, obj_ids), suggested,
                                 exclude=session.interacted_frames)
        want = frame1 if r == 1 else (suggested if next_frame == 'suggested' else None)
        t0 = time.perf_counter()
        ans = robot.interact(name, pred, gt, nb_objects=n_obj, frame=want)
        t_robot = time.perf_counter() - t0
        t, by_obj = robot_paths(ans, T)
        row = {'round': r, 'frame': t, 'robot_s': round(t_robot, 4),
               'suggested': suggested, 'suggested_in_worst_third': hit,
               'paths': {str(k): len(v) for k, v in sorted(by_obj.items())}}
        if t is None:
            # nothing left to correct (or the errors are too thin to skeletonise)
            row.update(interaction_s=0.0, propagation_s=0.0)
        else:
            t1 = time.perf_counter()
            if oracle:
                session.set_labels(t, gt_at_processing_size(session, gt[t]))
            else:
                scribble_robot_round(session, t, by_obj, obj_ids)
            t2 = time.perf_counter()
            session.propagate(t, direction='both')
            t3 = time.perf_counter()
            row.update(interaction_s=round(t2 - t1, 4), propagation_s=round(t3 - t2, 4))
            pred = np.stack([session.get_mask(i, original=True) for i in range(T)])
        res = score(list(gt), list(pred), object_ids=obj_ids, skip_first_last=False, name=name)
        row.update(J=res['J'], F=res['F'], JF=res['J&F'],
                   time_s=round(row['interaction_s'] + row['propagation_s'], 4))
        out.append(row)
        if log:
            log(f'{name} round {r}: frame {t}, J&F {row["JF"]:.3f} '
                f'({row["time_s"]:.2f} s)')
    jf = [row['JF'] for row in out]
    return {'name': name, 'frames': T, 'objects': len(obj_ids), 'rounds': out,
            'AUC': auc_over_rounds(jf), 'JF_final': jf[-1]}, pred


def summarize(seq_reports, rounds):
    per_round = []
    for r in range(rounds):
        rows = [s['rounds'][r] for s in seq_reports]
        per_round.append({'round': r + 1,
                          'J': float(np.mean([x['J'] for x in rows])),
                          'F': float(np.mean([x['F'] for x in rows])),
                          'JF': float(np.mean([x['JF'] for x in rows])),
                          'time_s': float(np.mean([x['time_s'] for x in rows]))})
    hits = [x['suggested_in_worst_third'] for s in seq_reports for x in s['rounds']
            if x.get('suggested_in_worst_third') is not None]
    drops = [s['rounds'][i]['JF'] - s['rounds'][i + 1]['JF'] for s in seq_reports
             for i in range(len(s['rounds']) - 1)]
    return {'sequences': len(seq_reports), 'rounds': per_round,
            'suggestion_in_worst_third': float(np.mean(hits)) if hits else None,
            'suggestions_scored': len(hits),
            'worst_round_drop': float(max(drops)) if drops else 0.0,
            'AUC': auc_over_rounds([x['JF'] for x in per_round]),
            'JF_final': per_round[-1]['JF'] if per_round else float('nan'),
            'mean_time_per_round_s': float(np.mean([x['time_s'] for x in per_round]))}


def format_table(seq_reports, summary):
    n = len(summary['rounds'])
    head = f'{"sequence":<20}' + ''.join(f'{"R" + str(r + 1):>7}' for r in range(n)) + \
        f'{"AUC":>7}{"s/round":>9}'
    lines = [head + '   (J&F per round)']
    for s in seq_reports:
        t = np.mean([x['time_s'] for x in s['rounds']])
        lines.append(f'{s["name"]:<20}' + ''.join(f'{x["JF"]:7.3f}' for x in s['rounds']) +
                     f'{s["AUC"]:7.3f}{t:9.2f}')
    lines.append(f'{"mean":<20}' + ''.join(f'{x["JF"]:7.3f}' for x in summary['rounds']) +
                 f'{summary["AUC"]:7.3f}{summary["mean_time_per_round_s"]:9.2f}')
    if summary.get('suggestion_in_worst_third') is not None:
        lines.append(f'suggested frame among the worst third by J: '
                     f'{summary["suggestion_in_worst_third"]:.2f} of {summary["suggestions_scored"]} '
                     f'rounds (chance ~0.33); largest drop of J&F in one round: '
                     f'{summary["worst_round_drop"]:.3f}')
    return '\n'.join(lines)


def build_parser():
    p = argparse.ArgumentParser(prog='python -m scripts.eval_interactive_davis', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', required=True, help='DAVIS-layout folder with ground truth')
    p.add_argument('--sequences', nargs='+', help='only these sequences')
    p.add_argument('--split', help='text file with one sequence name per line')
    p.add_argument('--rounds', type=int, default=8, help='interaction rounds (default 8)')
    p.add_argument('--first-frame', default='auto',
                   help="frame of round 1: auto (robot's choice), middle, or a frame number")
    p.add_argument('--model', default='auto', help='official | bundled | auto (default)')
    p.add_argument('--saves', default='saves', help='folder with the official weights')
    p.add_argument('--weights', default=None,
                   help='folder with the bundled weights (default: the shipped weights/); '
                        'e.g. a training run\'s export folder')
    p.add_argument('--device', default='auto', help='auto | cpu | cuda | cuda:N')
    add_amp_option(p)
    p.add_argument('--top_k', type=int, default=20)
    p.add_argument('--mem_freq', type=int, default=5)
    p.add_argument('--max_memory_frames', type=int, default=None)
    p.add_argument('--resolution', type=int, default=480,
                   help='processing size: shorter side (default 480, -1 = original)')
    p.add_argument('--output', help='write the JSON report here')
    p.add_argument('--save-masks', help='write the final masks as <dir>/<seq>/<frame>.png')
    p.add_argument('--mivos-overwrite', action='store_true',
                   help='let every new pass overwrite earlier results (MiVOS) instead of keeping '
                        'what they were more confident of')
    p.add_argument('--no-zoom', action='store_true',
                   help='segment corrective scribbles on the whole frame (default: on an enlarged '
                        'crop around a small object, inference_core/scribble_zoom.py)')
    p.add_argument('--next-frame', choices=('worst', 'suggested'), default='worst',
                   help="rounds after the first: on the frame with the worst J (DAVIS protocol) "
                        "or on the tool's suggestion (Session.suggest_frame, no ground truth)")
    p.add_argument('--oracle', action='store_true',
                   help="diagnostic ceiling: each round sets the ground-truth mask of the robot's "
                        "frame instead of segmenting its scribbles, then propagates")
    p.add_argument('--quiet', action='store_true', help='no per-round log lines')
    return p


def main(argv=None, networks=None):
    args = build_parser().parse_args(argv)
    from scripts.datasets import discover_dataset, read_split
    from util.davis_compat import scribbles_robot
    if args.rounds < 1:
        raise UserError(f'--rounds must be >= 1, got {args.rounds}')
    if args.first_frame not in ('auto', 'middle') and not args.first_frame.lstrip('-').isdigit():
        raise UserError(f'--first-frame must be auto, middle or a frame number, '
                        f'got {args.first_frame!r}')
    from inference_core.networks import check_engine_options
    check_engine_options(args)
    robot = scribbles_robot()          # clear error when davisinteractive is missing
    _quiet_robot_logs()

    layout, seqs, _ = discover_dataset(args.dataset)
    names = list(args.sequences or [])
    if args.split:
        names += read_split(args.split)
    names = list(dict.fromkeys(names)) or list(seqs)
    for n in names:
        if n not in seqs:
            raise UserError(f'sequence {n!r} not found in {args.dataset} ({layout} layout)')
        if seqs[n][1] is None:
            raise UserError(f'sequence {n!r} has no ground truth (mask PNGs) in {args.dataset}')
    if networks is None:
        from inference_core.networks import load_networks
        networks = load_networks(args.model, saves_dir=args.saves, device=args.device,
                                 weights_dir=args.weights)
    session_kw = dict(mem_freq=args.mem_freq, top_k=args.top_k,
                      max_memory_frames=args.max_memory_frames,
                      amp=args.amp, keep_confident=not args.mivos_overwrite,
                      zoom_corrections=not args.no_zoom, history_bytes=0)

    from inference_core.session import Session
    from util.mask_io import list_mask_files
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr))
    reports = []
    for n in names:
        frames_path, ann = seqs[n]
        with Session.open(frames_path, resolution=args.resolution, networks=networks,
                          **session_kw) as session:
            gt = read_ground_truth(session, list_mask_files(ann))
            rep, pred = evaluate_sequence(n, session, gt, robot, args.rounds, args.first_frame,
                                          log, args.next_frame, args.oracle)
            if args.save_masks:
                _save_masks(os.path.join(args.save_masks, n), session.frame_names, pred)
        reports.append(rep)
    summary = summarize(reports, args.rounds)
    print(format_table(reports, summary))
    if args.output:
        from util.atomic import write_json
        write_json(args.output, {'summary': summary, 'sequences': reports,
                                 'settings': {'model': networks.kind, 'rounds': args.rounds,
                                              'first_frame': args.first_frame,
                                              'next_frame': args.next_frame,
                                              'keep_confident': not args.mivos_overwrite,
                                              'zoom_corrections': not args.no_zoom,
                                              'oracle': args.oracle,
                                              'resolution': args.resolution,
                                              'top_k': args.top_k, 'mem_freq': args.mem_freq,
                                              'device': str(networks.device)},
                                 'dataset': os.path.abspath(args.dataset)}, indent=1)
        print(f'wrote {args.output}', file=sys.stderr)
    return 0


def _save_masks(folder, names, pred):
    from util.atomic import write_bytes
    from util.export import indexed_png_bytes
    os.makedirs(folder, exist_ok=True)
    for name, lab in zip(names, pred):
        write_bytes(os.path.join(folder, f'{name}.png'), indexed_png_bytes(lab))


def _quiet_robot_logs():
    # davisinteractive logs every robot call at INFO level through absl
    from davisinteractive import logging as dlog
    dlog.set_verbosity(dlog.WARNING)


if __name__ == '__main__':
    run_cli(main)
