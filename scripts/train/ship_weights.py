"""Ship a trained network into the bundled weights folder, only when it beats the shipped one on
a split neither trained on nor decided with: video-extra's unseen videos (util.davis_split
EXTRA_UNSEEN; `--margin 3` for the propagation network), or the report split.

    python -m scripts.eval_semi_davis --skip-scribble --split unseen --output shipped.json
    python -m scripts.eval_semi_davis --skip-scribble --split unseen --weights runs/v3set \
        --output new.json
    python -m scripts.train.ship_weights propagation --from runs/v3_weights --report new.json \
        --against shipped.json --margin 3 --selection new_sel.json shipped_sel.json --version v3

(the manifest entry then gets an `unseen_report` block: videos, J&F, the replaced network's,
per video and per object size). A network that replaces a later one (v3 -> v4) is also held
to v1's evaluation on the same videos, which is recorded beside (`--v1 v1.json`, beaten by
`--v1-margin`, default 3). The report split of davis2016-train:

    python -m scripts.eval_semi_davis --skip-scribble --split report --output shipped.json
    python -m scripts.eval_semi_davis --skip-scribble --split report --weights runs/v2_weights \
        --output new.json
    python -m scripts.train.ship_weights propagation --from runs/v2_weights \
        --report new.json --against shipped.json

The report split compares two networks only when neither trained on it. When one did (the
shipped v1 was trained before the split existed; a network trained with --with-report), the
report split measures how well it learnt those videos, so the two are compared on the selection
split instead (`--split selection` evaluations): neither trained there, though it chose the
checkpoints of both. The manifest records which split decided.

The new file replaces `weights/<kind>_lite.pth`; its manifest entry is the one the trainer wrote
(iterations, data, selection validation) plus both networks' numbers on the deciding split, and
a note of what it replaced. Refused (exit 2) when it is not better on the same sequences, when the
evaluations are not on the deciding split, or when the bundled weights would exceed 25 MB.

    python -m scripts.train.ship_weights fusion --retire --note 'what decided it'

removes the (optional) fusion file when it no longer helps a newly shipped propagation network.
A fusion network acts only between interaction rounds, so it is compared by the DAVIS robot's
rounds (`scripts.eval_interactive_davis --rounds 8 --output`, AUC over the rounds) on the unseen
videos, with the selection videos' rounds recorded beside (`--selection NEW SHIPPED`).

The interaction network is shipped when it needs fewer clicks on the held-out photos (NoC@90 of
`scripts.eval_noc --output`, the same photos for both) and its DAVIS-robot first scribble on the
unseen videos is not worse; the manifest records `noc90` and `unseen_first_scribble_j`:

    python -m scripts.eval_noc --box --output noc_new.json --weights runs/inter_weights
    python -m scripts.eval_noc --box --output noc_shipped.json
    python -m scripts.eval_semi_davis --skip-semi --split unseen --weights runs/inter_weights \
        --output new.json
    python -m scripts.eval_semi_davis --skip-semi --split unseen --output shipped.json
    python -m scripts.train.ship_weights interaction --from runs/inter_weights --report new.json \
        --against shipped.json --noc noc_new.json noc_shipped.json --version v2
"""
import argparse
import json
import os
import shutil
import time
from pathlib import Path

from scripts.train.common import REPO, WEIGHT_FILES, describe_manifest, sha256
from util.davis_split import trained_on_report
from util.errors import UserError, run_cli

MAX_BUNDLED_BYTES = 25 * 1000 * 1000
# kind -> (key in the evaluation JSON, value field, label, short name in the manifest). The first
# scribble is scored by J only; the fusion network only acts between interaction rounds, so the
# DAVIS robot's rounds decide it.
METRICS = {
    'propagation': ('semi', 'J&F-Mean', 'semi-supervised J&F', 'JF'),
    'interaction': ('first_scribble_robot', 'J', 'first-scribble J (DAVIS robot)', 'J'),
    'fusion': ('interactive', 'AUC', 'DAVIS robot J&F AUC over the rounds', 'AUC'),
}


def _read_eval(path):
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f'{path}: not a readable evaluation (JSON from eval_semi_davis --output): {e}') from None
    if isinstance(data, dict) and 'summary' in data and 'dataset' in data:
        return _interactive_eval(data, path)
    if not isinstance(data, dict) or 'sequences' not in data:
        raise UserError(f'{path}: not an eval_semi_davis --output file')
    return data


def _interactive_eval(data, path):
    """An eval_interactive_davis --output report in eval_semi_davis's shape: sequence names and
    an 'interactive' block with the AUC over the rounds, overall and per sequence (0..1)."""
    try:
        names = [s['name'] for s in data['sequences']]
        block = {'AUC': float(data['summary']['AUC']),
                 'per_sequence': {s['name']: {'AUC': float(s['AUC'])} for s in data['sequences']},
                 'rounds': data['settings']['rounds']}
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f'{path}: not a readable eval_interactive_davis --output report: {e}') from None
    return {'sequences': names, 'split': None, 'interactive': block}


def report_score(data, kind, path):
    """(score 0..100, per-sequence dict) of `kind`'s metric in an eval_semi_davis JSON."""
    key, field, label, _ = METRICS[kind]
    res = data.get(key)
    if kind == 'interaction' and res is None:      # without davisinteractive: the simulator's
        res = data.get('first_scribble')
    if isinstance(res, list):
        raise UserError(f'{path}: several runs (--seeds); evaluate the network once without adaptation')
    if not res or field not in res:
        how = ('scripts.eval_interactive_davis --output' if kind == 'fusion'
               else 'eval_semi_davis with that part enabled')
        raise UserError(f'{path}: has no {label}; run {how}')
    per = {s: round(100 * (v[field.split('-')[0]] if isinstance(v, dict) else v), 2)
           for s, v in res.get('per_sequence', {}).items()}
    return 100 * float(res[field]), per


def deciding_split(new_entry, shipped_entry, evaluated=None):
    """'unseen' when the evaluations are on video-extra's unseen videos (no network trains on
    them), else 'report' when neither network trained on the report videos, else 'selection'."""
    if evaluated == 'unseen':
        return 'unseen'
    seen = trained_on_report(new_entry) or (bool(shipped_entry) and trained_on_report(shipped_entry))
    return 'selection' if seen else 'report'


def _split_of(data):
    from util.davis_split import EXTRA_UNSEEN
    return 'unseen' if sorted(data['sequences']) == sorted(EXTRA_UNSEEN) else data.get('split')


def ship(kind, source, report, against, weights=REPO / 'weights', force=False, note=None, margin=0.0,
         selection=None, version=None, noc=None, v1=None, v1_margin=3.0):
    """Copy `source`/<kind>_lite.pth into `weights` when its score on the deciding split beats
    `against`'s by more than `margin` points; `selection`: (new, shipped) evaluations on the
    selection split, recorded beside; `version`: a name for the new network (the manifest's
    `<version>_JF` keys name the replaced one). An interaction network needs `noc`: (new,
    shipped) eval_noc reports on the held-out photos; it ships when its NoC@90 is lower and its
    first scribble on the unseen videos is not worse. `v1`: v1's evaluation on the same
    sequences, when the shipped network is a later one: the new one must also beat it by more
    than `v1_margin` points, and its numbers are recorded beside (`v1_JF`). Returns the new
    manifest entry."""
    from util.davis_split import EXTRA_UNSEEN, SPLITS
    SPLITS = {**SPLITS, 'unseen': EXTRA_UNSEEN}
    fname = WEIGHT_FILES[kind]
    source, weights = Path(source), Path(weights)
    if not (source / fname).is_file():
        raise UserError(f'{source}: no {fname} to ship')
    src_manifest = json.loads((source / 'manifest.json').read_text()) if (source / 'manifest.json').is_file() else {}
    man_path = weights / 'manifest.json'
    manifest = json.loads(man_path.read_text()) if man_path.is_file() else {}
    files = manifest.setdefault('files', {})
    previous = files.get(fname, {})
    entry = dict(src_manifest.get('files', {}).get(fname, {}))
    new, old = _read_eval(report), _read_eval(against)
    split = deciding_split(entry, previous, _split_of(new))
    if sorted(new['sequences']) != sorted(old['sequences']):
        raise UserError('the two evaluations are not on the same sequences')
    if sorted(new['sequences']) != sorted(SPLITS[split]) and not force:
        raise UserError(f'the evaluations are not on the {split} split (eval_semi_davis --split {split}'
                        f'{"" if split == "report" else ": a network here trained on the report videos"}); '
                        '--force to ship on other sequences')
    s_new, per_new = report_score(new, kind, report)
    s_old, per_old = report_score(old, kind, against)
    label = METRICS[kind][2]
    print(f'{split} split, {label}: new {s_new:.2f}, shipped {s_old:.2f}')
    if kind == 'interaction':
        noc_fields = noc_decision(noc, split, s_new, s_old, force)
    elif s_new <= s_old + margin and not force:
        by = f' by more than {margin:g}' if margin else ''
        raise UserError(f'not shipped: {s_new:.2f} does not beat the shipped network\'s {s_old:.2f}{by}')
    ref = None
    if v1 is not None:
        ref = _read_eval(v1)
        if sorted(ref['sequences']) != sorted(new['sequences']):
            raise UserError(f'{v1}: v1\'s evaluation is not on the same sequences')
        s_v1, per_v1 = report_score(ref, kind, v1)
        print(f'{split} split, {label}: v1 {s_v1:.2f}')
        if s_new <= s_v1 + v1_margin and not force:
            raise UserError(f'not shipped: {s_new:.2f} does not beat v1\'s {s_v1:.2f} by more than {v1_margin:g}')
    entry['report'] = {'split': split, 'sequences': sorted(new['sequences']), 'metric': label,
                       'score': round(s_new, 2), 'per_sequence': per_new,
                       'replaced_network_score': round(s_old, 2), 'replaced_per_sequence': per_old}
    old_name = previous.get('version', 'v1')
    if version:
        entry['version'] = version
    if split == 'unseen' and kind == 'propagation':     # (the others' scores are below)
        key = METRICS[kind][0]
        entry['unseen_report'] = {'videos': sorted(new['sequences']), 'JF': round(s_new, 2),
                                  f'{old_name}_JF': round(s_old, 2), 'per_video': per_new,
                                  f'{old_name}_per_video': per_old,
                                  'by_size': _by_size(new.get(key)), f'{old_name}_by_size': _by_size(old.get(key))}
        if ref is not None and old_name != 'v1':
            entry['unseen_report'].update({'v1_JF': round(s_v1, 2), 'v1_per_video': per_v1,
                                           'v1_by_size': _by_size(ref.get(key))})
        tf = new.get('semi_training_free') or old.get('semi_training_free') or \
            (ref.get('semi_training_free') if ref is not None else None)
        if tf:
            entry['unseen_report']['training_free_JF'] = round(100 * tf['J&F-Mean'], 2)
    if kind == 'interaction':
        entry.update(noc_fields)
        entry['unseen_first_scribble_j'] = round(s_new, 2)
        entry[f'{old_name}_unseen_first_scribble_j'] = round(s_old, 2)
    if selection:
        sel_new, sel_old = (_read_eval(p) for p in selection)
        if sorted(sel_new['sequences']) != sorted(sel_old['sequences']):
            raise UserError('the two selection evaluations are not on the same sequences')
        (a_new, p_new), (a_old, p_old) = report_score(sel_new, kind, selection[0]), report_score(sel_old, kind, selection[1])
        m = METRICS[kind][3]
        entry['selection_report'] = {'videos': sorted(sel_new['sequences']), m: round(a_new, 2),
                                     f'{old_name}_{m}': round(a_old, 2), 'per_video': p_new,
                                     f'{old_name}_per_video': p_old,
                                     'note': 'chose the checkpoint: decision data, not held-out'}
    if previous:
        entry['replaces'] = {k: previous[k] for k in ('sha256', 'exported', 'iterations') if k in previous}
    if note:
        entry['note'] = note
    weights.mkdir(parents=True, exist_ok=True)
    tmp = weights / (fname + '.part')
    shutil.copyfile(source / fname, tmp)
    entry['sha256'] = sha256(tmp)
    entry['bytes'] = tmp.stat().st_size
    entry['shipped'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    others = sum(f.get('bytes', 0) for n, f in files.items() if n != fname)
    if others + entry['bytes'] > MAX_BUNDLED_BYTES:
        tmp.unlink()
        raise UserError(f'the bundled weights would be {(others + entry["bytes"]) / 1e6:.1f} MB (limit 25 MB)')
    os.replace(tmp, weights / fname)
    files[fname] = entry
    _write_manifest(man_path, manifest)
    print(f'shipped {weights / fname} ({entry["bytes"] / 1e6:.1f} MB)')
    return entry


def _read_noc(path):
    try:
        data = json.loads(Path(path).read_text())
        summary, names = data['summary'], sorted(r['name'] for r in data['photos'])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f'{path}: not a readable scripts.eval_noc --output report: {e}') from None
    return summary, names


def noc_decision(noc, split, j_new, j_old, force=False):
    """The interaction network's rule: fewer clicks on the held-out photos (NoC@90, the same
    photos in both reports) and a first scribble on the unseen videos no worse. Returns the
    manifest fields {'noc90', ..., 'replaced_noc90'}; UserError when it does not ship."""
    if not noc:
        raise UserError('an interaction network needs --noc NEW SHIPPED (scripts.eval_noc --output '
                        'reports on the held-out photos)')
    if split != 'unseen' and not force:
        raise UserError('an interaction network is compared on the unseen videos '
                        '(eval_semi_davis --split unseen)')
    (new, names_new), (old, names_old) = (_read_noc(p) for p in noc)
    if names_new != names_old:
        raise UserError('the two NoC reports are not on the same photos')
    print(f'held-out photos ({len(names_new)}): NoC@90 new {new["NoC@90"]:.2f}, shipped {old["NoC@90"]:.2f}')
    if not force and not (new['NoC@90'] < old['NoC@90'] and j_new >= j_old):
        raise UserError(f'not shipped: NoC@90 {new["NoC@90"]:.2f} against {old["NoC@90"]:.2f}, unseen '
                        f'first scribble J {j_new:.2f} against {j_old:.2f} (needs fewer clicks and '
                        'no worse J)')
    out = {'noc90': new['NoC@90'], 'noc_photos': len(names_new), 'replaced_noc90': old['NoC@90']}
    for key, name in (('NoC@85', 'noc85'), ('IoU@1', 'iou_after_1_click'), ('box_IoU', 'iou_from_one_box')):
        if key in new:
            out[name] = new[key]
            if key in old:
                out[f'replaced_{name}'] = old[key]
    return out


def _by_size(res):
    """{'small'|'medium'|'large': {'JF', 'objects'}} of an evaluation's per-size buckets."""
    if not isinstance(res, dict) or 'by_size' not in res:
        return None
    return {k: {'JF': round(100 * v['J&F'], 2), 'objects': v['objects']} for k, v in res['by_size'].items()}


def _write_manifest(path, manifest):
    describe_manifest(manifest)        # processing size, splits, total bytes follow the files
    part = path.with_suffix('.json.part')
    part.write_text(json.dumps(manifest, indent=2, sort_keys=True) + '\n')
    os.replace(part, path)


def retire(kind, weights=REPO / 'weights', reason=None):
    """Remove the optional fusion file from the bundled set (the engine then passes the
    propagation result through); its manifest entry moves to `retired` with the reason. A fusion
    network learns from one propagation network's results: when that network is replaced and
    the old fusion file no longer helps the new one, it goes."""
    if kind != 'fusion':
        raise UserError(f'only the fusion network is optional; a {kind} network is replaced, not retired')
    if not reason:
        raise UserError('--retire needs --note with the measurement that decided it')
    weights = Path(weights)
    fname = WEIGHT_FILES[kind]
    man_path = weights / 'manifest.json'
    manifest = json.loads(man_path.read_text()) if man_path.is_file() else {}
    files = manifest.setdefault('files', {})
    if not (weights / fname).is_file():
        raise UserError(f'{weights}: no {fname} to retire')
    entry = {k: files.get(fname, {}).get(k) for k in ('sha256', 'exported', 'iterations', 'data')}
    entry.update(reason=reason, retired=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    manifest.setdefault('retired', {})[fname] = entry
    files.pop(fname, None)
    (weights / fname).unlink()
    _write_manifest(man_path, manifest)
    print(f'retired {weights / fname}')
    return entry


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('kind', choices=sorted(WEIGHT_FILES))
    ap.add_argument('--from', dest='source', help='weights folder the trainer exported to')
    ap.add_argument('--report',
                    help='eval_semi_davis --output JSON of the new network on the deciding split (report, '
                         'or selection when either network trained on the report videos)')
    ap.add_argument('--against', help='the same evaluation of the shipped network')
    ap.add_argument('--retire', action='store_true',
                    help='remove the shipped fusion file instead (needs --note: what decided it)')
    ap.add_argument('--weights', default=str(REPO / 'weights'), help='bundled weights folder')
    ap.add_argument('--note', default=None, help='a line for the manifest (history, data)')
    ap.add_argument('--force', action='store_true', help='ship even when not better (or not on the deciding split)')
    ap.add_argument('--margin', type=float, default=0.0, metavar='POINTS',
                    help='ship only when better by more than this (e.g. 3 J&F on the unseen split)')
    ap.add_argument('--selection', nargs=2, metavar=('NEW', 'SHIPPED'), default=None,
                    help='the two networks\' evaluations on the selection split, recorded beside')
    ap.add_argument('--version', default=None, help='a name for the new network (e.g. v3)')
    ap.add_argument('--noc', nargs=2, metavar=('NEW', 'SHIPPED'), default=None,
                    help='interaction: the two networks\' scripts.eval_noc --output reports on the '
                         'held-out photos (the network ships with fewer clicks)')
    ap.add_argument('--v1', default=None, metavar='JSON',
                    help='v1\'s evaluation on the same split, when the shipped network is a later one: '
                         'recorded beside, and the new network must beat it by --v1-margin')
    ap.add_argument('--v1-margin', type=float, default=3.0, metavar='POINTS',
                    help='with --v1: how much the new network must beat v1 by (default 3)')
    args = ap.parse_args(argv)
    if args.retire:
        retire(args.kind, args.weights, args.note)
        return 0
    if not (args.source and args.report and args.against):
        ap.error('--from, --report and --against are needed to ship')
    ship(args.kind, args.source, args.report, args.against, args.weights, args.force, args.note,
         args.margin, args.selection, args.version, args.noc, args.v1, args.v1_margin)
    return 0


if __name__ == '__main__':
    run_cli(main)
