"""NoC (number of clicks) with the standard click robot, on held-out photos, through the Session.

    python -m scripts.eval_noc [--first N | --spread N] [--box] [--max-clicks 20] [--weights DIR]
                               [--roots ../shared/data/static-sal ../shared/data/static-fg]
                               [--threads N] [--output noc.json]

The photos: every photo of the folders (images/<id>.jpg + masks/<id>.png) whose name passes
`util.photo_split.is_validation_photo` (a crc32 of the name mod 20: about 1 in 20, ~490
photos over static-sal and static-fg). The trainers' photo loader (StaticFG, its training part)
never returns these, and no setting was chosen on them. `--first N` takes the first N of them
(sorted by name) for a quick run; `--spread N` takes N spread evenly over the sorted list (the
names group by source: the first ones are all DUTS photos, the last ones pets). Mask pixels 64..191 (the pet trimaps' uncertain band) are
ignored: they count in no IoU and get no click.

The robot (RITM's protocol, as in the papers' NoC tables): each photo is a fresh one-frame
Session; the next click goes to the error pixel farthest from the boundary of its error region
(a distance transform of the missed and of the false-positive pixels, the image border counting
as boundary): a positive click when that pixel is missed object, a negative one when it is a false
positive. Clicks accumulate in one interaction, as a person's clicks do in the GUI
(`Session.click`). At most --max-clicks (20) clicks; a photo stops once its IoU reaches 0.90 and
at least 5 clicks were made (so IoU after 1 / 3 / 5 clicks is known).

Reported: NoC@85 and NoC@90 (the first click count reaching that IoU, --max-clicks when never
reached, as the papers count), mean IoU after 1 / 3 / 5 clicks, failures (photos that never reach
0.90), the median seconds per click, and with --box the IoU from one box (the tight box around the
ground truth, `Session.add_box`; then, from that box's mask, the clicks the robot needs as well:
NoC@85 / 90 after the box).
"""
import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from util.errors import UserError, run_cli

SHARED = Path(__file__).resolve().parents[2] / 'shared'
DEFAULT_ROOTS = (SHARED / 'data' / 'static-sal', SHARED / 'data' / 'static-fg')
THRESHOLDS = (0.85, 0.90)
REPORT_AFTER = (1, 3, 5)
MAX_CLICKS = 20
IMAGE_SUFFIXES = ('.jpg', '.webp', '.png')


# ---------------------------------------------------------------------------------- the set
def heldout_photos(roots=DEFAULT_ROOTS):
    """[(name, image path, mask path)] of the held-out photos of static-fg-style folders, sorted
    by name: the photos `is_validation_photo` keeps out of training. A name found in two folders
    is taken from the first (as the trainers' loader does)."""
    from util.photo_split import is_validation_photo
    found = {}
    for root in map(Path, roots):
        if not ((root / 'images').is_dir() and (root / 'masks').is_dir()):
            raise UserError(f'{root}: not a photo folder (needs images/ and masks/)')
        masks = {p.stem: p for p in (root / 'masks').glob('*.png')}
        for p in sorted((root / 'images').iterdir()):
            if (p.suffix.lower() in IMAGE_SUFFIXES and p.stem in masks and p.stem not in found
                    and is_validation_photo(p.stem)):
                found[p.stem] = (p, masks[p.stem])
    return [(n, *found[n]) for n in sorted(found)]


def load_photo(image_path, mask_path):
    """(rgb uint8 (h, w, 3), object bool, ignore bool): mask > 191 object, 64..191 ignored."""
    bgr = cv2.imread(os.fspath(image_path), cv2.IMREAD_COLOR)
    m = cv2.imread(os.fspath(mask_path), cv2.IMREAD_GRAYSCALE)
    if bgr is None or m is None or bgr.shape[:2] != m.shape:
        raise UserError(f'{image_path}: unreadable image or mask (or their sizes differ)')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), m > 191, (m > 63) & (m <= 191)


def spread_indices(total, n):
    """n indices spread evenly over range(total) (the first and the last included)."""
    if n >= total:
        return list(range(total))
    if n == 1:
        return [0]
    return sorted({int(round(i * (total - 1) / (n - 1))) for i in range(n)})


# ---------------------------------------------------------------------------------- the robot
def _interior_distance(mask):
    """Distance of each pixel of `mask` to the nearest pixel outside it (the border counts as
    outside), 0 off the mask."""
    padded = np.pad(mask.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def next_click(pred, gt, ignore=None):
    """The robot's next click (x, y, positive), or None when there is no error: the point of the
    missed (positive) or false-positive (negative) pixels farthest from the boundary of its error
    region; a tie between the two goes to the negative click, a tie inside one to the first
    pixel in row order (RITM's rule)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    valid = ~np.asarray(ignore, bool) if ignore is not None else np.ones_like(gt)
    fn_d = _interior_distance(gt & ~pred & valid)
    fp_d = _interior_distance(pred & ~gt & valid)
    fn_max, fp_max = float(fn_d.max(initial=0)), float(fp_d.max(initial=0))
    if fn_max == 0 and fp_max == 0:
        return None
    positive = fn_max > fp_max
    d, best = (fn_d, fn_max) if positive else (fp_d, fp_max)
    y, x = np.argwhere(d == best)[0]
    return int(x), int(y), bool(positive)


def iou(pred, gt, ignore=None):
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if ignore is not None:
        valid = ~np.asarray(ignore, bool)
        pred, gt = pred & valid, gt & valid
    union = (pred | gt).sum()
    return float((pred & gt).sum() / union) if union else 1.0


def clicks_to_reach(ious, threshold, max_clicks=MAX_CLICKS):
    """The first click count whose IoU reaches `threshold`, max_clicks when none does."""
    for i, v in enumerate(ious):
        if v >= threshold:
            return i + 1
    return max_clicks


# ---------------------------------------------------------------------------------- one photo
def click_run(session, gt, ignore, max_clicks=MAX_CLICKS, stop_at=max(THRESHOLDS),
              min_clicks=max(REPORT_AFTER)):
    """Robot clicks on frame 0 of a one-object Session from its current mask, accumulating in
    one interaction. Returns (IoU after each click, seconds of each click)."""
    pred = session.get_mask(0) == 1
    ious, secs = [], []
    for n in range(1, max_clicks + 1):
        c = next_click(pred, gt, ignore)
        if c is None:                      # perfect: it stays so
            ious.append(1.0)
            break
        x, y, positive = c
        t0 = time.perf_counter()
        labels = session.click(0, 1, x, y, positive=positive)
        secs.append(time.perf_counter() - t0)
        pred = labels == 1
        ious.append(iou(pred, gt, ignore))
        if ious[-1] >= stop_at and n >= min_clicks:
            break
    return ious, secs


def evaluate_photo(rgb, gt, ignore, networks, max_clicks=MAX_CLICKS, box=False):
    """{'ious': [...], 'seconds': [...], 'NoC@85', 'NoC@90', and with box: 'box_iou',
    'box_seconds', 'box_ious' (clicks after the box), 'box_NoC@85', 'box_NoC@90'}."""
    from inference_core.session import Session
    with Session.from_frames(np.asarray(rgb)[None], storage='memory', num_objects=1,
                             networks=networks, history_bytes=0) as s:
        ious, secs = click_run(s, gt, ignore, max_clicks)
        row = {'ious': [round(v, 4) for v in ious], 'seconds': [round(v, 4) for v in secs]}
        for thr in THRESHOLDS:
            row[f'NoC@{round(thr * 100)}'] = clicks_to_reach(ious, thr, max_clicks)
        if box:
            ys, xs = np.nonzero(gt)
            s.reset_frame(0)
            t0 = time.perf_counter()
            labels = s.add_box(0, 1, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
            row['box_seconds'] = round(time.perf_counter() - t0, 4)
            row['box_iou'] = round(iou(labels == 1, gt, ignore), 4)
            bious, _ = click_run(s, gt, ignore, max_clicks)
            row['box_ious'] = [round(v, 4) for v in bious]
            for thr in THRESHOLDS:
                reached = row['box_iou'] >= thr
                row[f'box_NoC@{round(thr * 100)}'] = 0 if reached else \
                    clicks_to_reach(bious, thr, max_clicks)
    return row


def iou_after(ious, k):
    """IoU after k clicks (the last one when the run stopped earlier: it had reached 0.90)."""
    return ious[min(k, len(ious)) - 1]


def summarize(rows, max_clicks=MAX_CLICKS):
    rows = list(rows)
    if not rows:
        return {'photos': 0}
    out = {'photos': len(rows), 'max_clicks': max_clicks}
    for thr in THRESHOLDS:
        key = f'NoC@{round(thr * 100)}'
        out[key] = round(float(np.mean([r[key] for r in rows])), 3)
    for k in REPORT_AFTER:
        out[f'IoU@{k}'] = round(float(np.mean([iou_after(r['ious'], k) for r in rows])), 4)
    out['failures@90'] = sum(1 for r in rows if max(r['ious']) < max(THRESHOLDS))
    secs = [v for r in rows for v in r['seconds']]
    out['median_s_per_click'] = round(statistics.median(secs), 4) if secs else None
    if 'box_iou' in rows[0]:
        out['box_IoU'] = round(float(np.mean([r['box_iou'] for r in rows])), 4)
        out['box_IoU_median'] = round(float(np.median([r['box_iou'] for r in rows])), 4)
        out['box_median_s'] = round(statistics.median(r['box_seconds'] for r in rows), 4)
        for thr in THRESHOLDS:
            key = f'box_NoC@{round(thr * 100)}'
            out[key] = round(float(np.mean([r[key] for r in rows])), 3)
    return out


def format_summary(summary):
    s = summary
    lines = [f'{s["photos"]} photos, at most {s.get("max_clicks", MAX_CLICKS)} clicks',
             f'  NoC@85 {s["NoC@85"]:.2f}   NoC@90 {s["NoC@90"]:.2f}   failures (never 0.90) '
             f'{s["failures@90"]}',
             f'  IoU after 1 / 3 / 5 clicks: {s["IoU@1"]:.3f} / {s["IoU@3"]:.3f} / '
             f'{s["IoU@5"]:.3f}   median {s["median_s_per_click"] * 1000:.0f} ms per click']
    if 'box_IoU' in s:
        lines.append(f'  one box: IoU {s["box_IoU"]:.3f} (median {s["box_IoU_median"]:.3f}, '
                     f'{s["box_median_s"] * 1000:.0f} ms); clicks after the box: NoC@85 '
                     f'{s["box_NoC@85"]:.2f}, NoC@90 {s["box_NoC@90"]:.2f}')
    return '\n'.join(lines)


def main(argv=None, networks=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--roots', nargs='+', default=[str(r) for r in DEFAULT_ROOTS],
                    help='photo folders (images/ + masks/); default static-sal and static-fg')
    ap.add_argument('--first', type=int, default=None,
                    help='only the first N held-out photos (sorted by name)')
    ap.add_argument('--spread', type=int, default=None,
                    help='only N held-out photos spread evenly over the sorted list')
    ap.add_argument('--max-clicks', type=int, default=MAX_CLICKS)
    ap.add_argument('--box', action='store_true',
                    help='also the IoU from one box (Session.add_box) and the clicks after it')
    ap.add_argument('--weights', default=None, help='bundled weights folder (default weights/)')
    ap.add_argument('--no-edge-refine', action='store_true',
                    help="without the bundled interaction net's edge refinement (the guided "
                         "filter along the photo's edges; to measure what it gives)")
    ap.add_argument('--model', default='bundled', choices=('bundled', 'official', 'auto'))
    ap.add_argument('--threads', type=int, default=None, help='torch threads')
    ap.add_argument('--output', help='write the JSON report here')
    ap.add_argument('--quiet', action='store_true', help='no per-photo lines')
    args = ap.parse_args(argv)
    for opt in ('first', 'spread'):
        if getattr(args, opt) is not None and getattr(args, opt) < 1:
            raise UserError(f'--{opt} must be >= 1, got {getattr(args, opt)}')
    if args.first and args.spread:
        raise UserError('--first and --spread exclude each other')
    if args.max_clicks < max(REPORT_AFTER):
        raise UserError(f'--max-clicks must be >= {max(REPORT_AFTER)}, got {args.max_clicks}')
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f'--threads must be >= 1, got {args.threads}')
        import torch
        torch.set_num_threads(args.threads)
    photos = heldout_photos(args.roots)
    total = len(photos)
    if args.first:
        photos = photos[:args.first]
    elif args.spread and args.spread < total:
        photos = [photos[i] for i in spread_indices(total, args.spread)]
    if not photos:
        raise UserError(f'no held-out photos in {", ".join(args.roots)}')
    if networks is None:
        from inference_core.networks import load_networks
        networks = load_networks(args.model, device='cpu', weights_dir=args.weights)
    if args.no_edge_refine:
        if getattr(networks.interaction, 'edge_refine', None) is None:
            raise UserError('--no-edge-refine needs the bundled interaction network')
        networks.interaction.edge_refine = None
    rows = []
    for i, (name, img, msk) in enumerate(photos):
        rgb, gt, ignore = load_photo(img, msk)
        row = {'name': name, **evaluate_photo(rgb, gt, ignore, networks, args.max_clicks,
                                              args.box)}
        rows.append(row)
        if not args.quiet:
            box = f'  box {row["box_iou"]:.3f}' if args.box else ''
            print(f'[{i + 1}/{len(photos)}] {name:44s} NoC@90 {row["NoC@90"]:2d}  IoU@1 '
                  f'{row["ious"][0]:.3f}{box}', flush=True)
    summary = summarize(rows, args.max_clicks)
    summary['held_out_photos'] = total
    print(format_summary(summary))
    if args.output:
        from util.atomic import write_json
        write_json(args.output, {
            'summary': summary, 'photos': rows, 'roots': [str(r) for r in args.roots],
            'rule': 'util.photo_split.is_validation_photo(name): crc32(name) % 20 == 0',
            'first': args.first, 'spread': args.spread, 'weights': args.weights or 'weights', 'model': networks.kind,
            'edge_refine': getattr(networks.interaction, 'edge_refine', None) is not None},
            indent=1)
    return 0


if __name__ == '__main__':
    run_cli(main)
