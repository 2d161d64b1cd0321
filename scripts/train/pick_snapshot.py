"""Choose among the propagation snapshots of a run (e.g. the ones a GPU run brought back) with the
trainer's own validation, on this machine, and export the chosen one.

    python -m scripts.train.pick_snapshot SNAPSHOT_DIR --weights runs/gpu_weights \\
        [--static-fg ../shared/data/static-fg] [--quick]

Each snapshot (`propagation_itNNNNNN.pth`, listed in `snapshots.json`) is scored as
`train_propagation` validates: semi-supervised J&F on the selection sequences and, with
static-fg, on the 24 synthetic composites of the held-out photos; the score is their mean
(`selection_and_composites_JF`; `--composites-weight W` weighs the composites W times a real
video). The best one is exported to `--weights` (fp16 + manifest entry
with the iterations and both validation numbers). These are selection numbers: measure the
exported network on the report split (scripts/train/README.md, "Shipping new weights").
"""
import argparse
import json
from pathlib import Path

from model.lite_networks import load_network
from scripts.train import common
from scripts.train.data import DEFAULT_ROOT
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
    ap.add_argument('--static-fg', default=str(STATIC_FG_ROOT),
                    help="static-fg folder for the composites ('' : selection sequences only)")
    add_composites_weight(ap)
    ap.add_argument('--quick', action='store_true', help='first 40 frames of each sequence')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--info', default=None, metavar='JSON',
                    help='extra manifest fields of the run (e.g. {"data": "...", "machine": "H200"})')
    args = ap.parse_args(argv)
    common.setup_threads(args.threads)
    entries = list_snapshots(args.snapshots)
    clips = None
    if args.static_fg and StaticFG.available(args.static_fg):
        clips = validation_clips(StaticFG(args.static_fg, part='validation'))
    score_label = score_name(clips, args.composites_weight)
    best = None
    for e in entries:
        net = load_network('propagation', Path(args.snapshots) / e['file'])
        res = validate(net, args.data, args.quick, clips, args.composites_weight)
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
    val = {'semi_JF': e['selection_JF'], 'frames': 'first 40' if args.quick else 'all'}
    if clips:
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
