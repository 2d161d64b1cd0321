"""Choose among the propagation snapshots of a run (e.g. the ones a GPU run brought back) with the
trainer's own validation, on this machine, and export the chosen one.

    python -m scripts.train.pick_snapshot SNAPSHOT_DIR --weights runs/gpu_weights \\
        [--static-fg ../shared/data/static-fg] [--quick]

Each snapshot (`propagation_itNNNNNN.pth`, listed in `snapshots.json`) is scored as
`train_propagation` validates: semi-supervised J&F on the selection sequences (with
`--extra-video`, video-extra's selection videos too) and, with static-fg, on the 24 synthetic
composites of the held-out photos at the snapshot's processing size; the score is their mean
(`selection_and_composites_JF`; `--composites-weight W` weighs the composites W times a real
video). Give it the run's `--extra-video`, `--static-fg` and `--composites-weight` to get the
numbers its trainer would have logged. The best one is exported to `--weights` (fp16 + manifest entry
with the iterations and both validation numbers). These are selection numbers: measure the
exported network on the report split (scripts/train/README.md, "Shipping new weights").
"""
import argparse
import json
from pathlib import Path

from model.lite_networks import load_network
from scripts.train import common
from scripts.train.data import DEFAULT_ROOT, cache_size
from scripts.train.static_fg import DEFAULT_ROOT as STATIC_FG_ROOT, StaticFG, validation_clips
from scripts.train.train_propagation import add_composites_weight, score_name, validate
from util.errors import UserError, run_cli


def list_snapshots(folder):
    """Entries of <folder>/snapshots.json whose file is there, by iteration."""
    folder = Path(folder)
    index = folder / 'snapshots.json'
    if not index.is_file():
        raise UserError(f'{folder}: no snapshots.json (written by train_propagation --snapshot-dir)')
    entries = [e for e in json.loads(index.read_text()) if (folder / e['file']).is_file()]
    if not entries:
        raise UserError(f'{folder}: none of the snapshots listed in snapshots.json is there')
    return sorted(entries, key=lambda e: e['iteration'])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('snapshots', help='folder with snapshots.json and the propagation_it*.pth files')
    ap.add_argument('--weights', required=True, help='export folder of the chosen snapshot')
    ap.add_argument('--data', default=str(DEFAULT_ROOT), help='DAVIS-2016-style folder (selection sequences)')
    ap.add_argument('--static-fg', default=[str(STATIC_FG_ROOT)], nargs='+', metavar='DIR',
                    help="static-fg folder(s) for the composites, as the run's --static-fg "
                         "('' : selection sequences only)")
    ap.add_argument('--extra-video', default=None, metavar='DIR',
                    help="the run's --extra-video: its selection videos are scored too")
    ap.add_argument('--val-composites', type=int, default=24, help="the run's --val-composites")
    add_composites_weight(ap)
    ap.add_argument('--quick', action='store_true', help='first 40 frames of each sequence')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--info', default=None, metavar='JSON',
                    help='extra manifest fields of the run (e.g. {"data": "...", "machine": "H200"})')
    args = ap.parse_args(argv)
    common.setup_threads(args.threads)
    entries = list_snapshots(args.snapshots)
    folders = [f for f in args.static_fg if f]
    held = StaticFG(folders, part='validation') if folders and StaticFG.available(folders) else None
    if held is not None and len(held) < 4:          # as the trainer: too few for composites
        held = None
    clips_at = {}      # processing size -> the composites, drawn at that size as the trainer draws them

    def composites(net):
        if held is None or args.val_composites <= 0:
            return None
        size = cache_size(net.proc_short)
        if size not in clips_at:
            clips_at[size] = validation_clips(held, args.val_composites, size=size)
        return clips_at[size]

    score_label = score_name(held is not None and args.val_composites > 0, args.composites_weight)
    best = None
    for e in entries:
        net = load_network('propagation', Path(args.snapshots) / e['file'])
        clips = composites(net)
        res = validate(net, args.data, args.quick, clips, args.composites_weight, args.extra_video)
        e['selection_JF'] = round(res['J&F-Mean'] * 100, 2)
        if clips:
            e['composites_JF'] = round(res['composites']['J&F-Mean'] * 100, 2)
        e['score'] = round(res['score'] * 100, 2)
        print(f'{e["file"]}: iteration {e["iteration"]}, selection J&F {e["selection_JF"]:.2f}'
              + (f', composites {e["composites_JF"]:.2f}' if clips else '')
              + f', score {e["score"]:.2f}', flush=True)
        if best is None or e['score'] > best[0]['score']:
            best = (e, net)
    e, net = best
    val = {'semi_JF': e['selection_JF'], 'frames': 'first 40' if args.quick else 'all',
           'sequences': 'selection' + (' + video-extra selection' if args.extra_video else '')}
    if 'composites_JF' in e:
        val['composites_JF'] = e['composites_JF']
    # snapshots of a --with-report run (e.g. from a device_pack --with-report pack) say so
    info = {'iterations': e['iteration'], **common.training_data(e.get('trained_on_report', False)),
            'validation': val,
            'model': f'model.lite_propagation.LitePropagationNet(lite0, proc_short={net.proc_short})',
            'chosen_from': [{k: x[k] for k in ('file', 'iteration', 'score') if k in x} for x in entries]}
    if args.info:
        info.update(json.loads(args.info))
    common.export_weights('propagation', net, args.weights, score_label, e['score'], info, force=True)
    print(f'exported {e["file"]} (score {e["score"]:.2f}) to {args.weights}')
    return 0


if __name__ == '__main__':
    run_cli(main)
