"""Score predicted masks against ground truth with the DAVIS J and F measures.

    python -m scripts.metrics --pred results/ --gt DAVIS/ [--sequences bear boat] [--all-frames]

Both folders may be: a DAVIS root (Annotations/480p/<seq>), a YouTube-VOS root
(Annotations/<seq>), ../shared/data/davis2016-train (masks/<seq>), a folder of sequence folders,
or a single sequence folder of PNGs. Frames are matched by file name. Masks may be palette
(index = object id), label or 0/255 binary PNGs.

Prints a per-sequence table and the DAVIS global numbers; writes <output>.json (everything,
including per-frame scores) and <output>_global.csv / <output>_per_sequence.csv. --output
defaults to <pred>/metrics. By default the first and last frame of every sequence are excluded
(semi-supervised protocol); --all-frames scores every frame.
"""
import argparse
import contextlib
import csv
import io
import json
import os
import sys
import time

from util.atomic import atomic_path
from util.errors import UserError, run_cli, write_error
from util.metrics import BOUND_TH, evaluate_folders
from util.progress import cli_progress


def format_table(results, summary):
    lines = [f'{"sequence":<24} {"obj":>3} {"J&F":>6} {"J":>6} {"F":>6}']
    for r in results:
        lines.append(f'{r["name"]:<24} {len(r["objects"]):>3} {r["J&F"]:6.3f} {r["J"]:6.3f} '
                     f'{r["F"]:6.3f}')
    lines.append('')
    keys = ['J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay']
    lines.append(' '.join(f'{k:>9}' for k in keys))
    lines.append(' '.join(f'{summary[k]:9.3f}' for k in keys))
    lines.append(f'({summary["objects"]} objects in {summary["sequences"]} sequences)')
    return '\n'.join(lines)


def _csv(rows, header):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _clean(x):
    """NaN (no frames to score) -> None, so the JSON stays standard."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_reports(out, results, summary, meta):
    """<out>.json, <out>_global.csv, <out>_per_sequence.csv (one row per object, DAVIS style)."""
    d = os.path.dirname(os.path.abspath(out))
    if os.path.exists(d) and not os.path.isdir(d):
        raise UserError(f'cannot write output {out}.json: {d} is a file, not a folder')
    if not os.path.isdir(d):
        raise UserError(f'output folder does not exist: {d}')
    texts = {out + '.json': json.dumps(_clean({'summary': summary, 'sequences': results, **meta}),
                                       indent=1, allow_nan=False, ensure_ascii=False)}
    keys = ['J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay']
    texts[out + '_global.csv'] = _csv([[f'{summary[k]:.6f}' for k in keys]], keys)
    rows = [[f'{r["name"]}_{o["id"]}', f'{o["J"]["mean"]:.6f}', f'{o["F"]["mean"]:.6f}']
            for r in results for o in r['objects']]
    texts[out + '_per_sequence.csv'] = _csv(rows, ['Sequence', 'J-Mean', 'F-Mean'])
    _write_all(texts)


def _write_text(path, text):
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write(text)


def _write_all(texts):
    """Write {path: text} all or nothing: every file goes to a temp file first and the targets
    are replaced only when all of them were written (a full disk leaves the old reports as
    they were). An OSError becomes a one-line UserError."""
    path = None
    try:
        with contextlib.ExitStack() as stack:
            tmps = {}
            for path in texts:
                tmps[path] = stack.enter_context(atomic_path(path))
            for path, text in texts.items():
                _write_text(tmps[path], text)
    except OSError as e:
        raise write_error(e, path) from None


def build_parser():
    p = argparse.ArgumentParser(prog='python -m scripts.metrics', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--pred', required=True, help='predicted masks (see layouts above)')
    p.add_argument('--gt', required=True, help='ground-truth masks (see layouts above)')
    p.add_argument('--sequences', nargs='+', help='only these sequences (default: all in --gt)')
    p.add_argument('--split', help='text file with one sequence name per line (like --sequences)')
    p.add_argument('--all-frames', action='store_true',
                   help='score the first and last frame too (default: excluded, as in DAVIS '
                        'semi-supervised evaluation)')
    p.add_argument('--bound-th', type=float, default=BOUND_TH,
                   help='F boundary tolerance: fraction of the diagonal (<1) or pixels (>=1)')
    p.add_argument('--output', help='report path prefix (default: <pred>/metrics)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p


def read_split(path):
    try:
        with open(path, encoding='utf-8') as f:
            names = [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]
    except OSError as e:
        raise UserError(f'cannot read split file {path}: {e.strerror or e}') from None
    if not names:
        raise UserError(f'split file lists no sequences: {path}')
    return names


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.bound_th <= 0:
        raise UserError(f'--bound-th must be positive, got {args.bound_th}')
    sequences = list(args.sequences or [])
    if args.split:
        sequences += read_split(args.split)
    t0 = time.time()
    with cli_progress('scoring', quiet=args.quiet) as progress:
        results, summary = evaluate_folders(args.pred, args.gt, sequences or None,
                                            skip_first_last=not args.all_frames,
                                            bound_th=args.bound_th, progress=progress)
    print(format_table(results, summary))
    out = args.output or os.path.join(args.pred, 'metrics')
    meta = {'pred': os.path.abspath(args.pred), 'gt': os.path.abspath(args.gt),
            'skip_first_last': not args.all_frames, 'bound_th': args.bound_th,
            'seconds': round(time.time() - t0, 3)}
    try:
        write_reports(out, results, summary, meta)
    except UserError as e:
        if args.output is None:
            raise UserError(f'{e} (write the report elsewhere with --output)') from None
        raise
    print(f'wrote {out}.json, {out}_global.csv, {out}_per_sequence.csv', file=sys.stderr)
    return 0


if __name__ == '__main__':
    run_cli(main)
