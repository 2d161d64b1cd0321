"""Propagate given masks through videos, without the GUI.

Single video:
    python -m scripts.propagate --input video.mp4|frames/ --masks masks/ --output out/

    --masks is a folder of mask PNGs for ANY frames (or one PNG). Each given frame is taken as
    ground truth and propagated both ways up to the neighbouring given frames, fusing the two
    sides in between (the MiVOS interaction semantics). Output: out/<frame>.png for every
    frame, DAVIS palette (index = object id), at the original resolution.
    --export png,coco,ytvis,soft,mp4 (also objects) adds the GUI's other export formats in the
    same folder (annotations.json + the images it names, ytvis.json, soft/<object>/, overlay.mp4;
    see scripts/propagate_export.py); each dataset sequence gets them in out/<seq>/.

Dataset:
    python -m scripts.propagate --dataset ROOT --output out/ [--split list.txt] [--sequences a b]

    ROOT layouts:  DAVIS        JPEGImages/480p/<seq>/*.jpg + Annotations/480p/<seq>/*.png
                   YouTube-VOS  JPEGImages/<seq>/*.jpg      + Annotations/<seq>/*.png
                   DAVIS16 mp4  videos/<seq>.mp4            + masks/<seq>/*.png (0/255)
    Output: out/<seq>/<frame>.png. Each sequence is written into a temp folder and renamed when
    complete, so a run that is interrupted can be resumed by running the same command
    (finished sequences are skipped).

Your files in the output folder are safe. The run marker out/propagate_run.json lists every
file this tool wrote. --overwrite replaces only those (and removes the ones the new run no
longer writes, e.g. frames of an older, longer run), plus files of yours that have the SAME NAME
as an output (a hand-fixed 00012.png is replaced by the new 00012.png). Other files (notes,
renamed copies, subfolders) are never touched. Without --overwrite a file of yours with an
output's name stops the run before anything is written.

Which given masks are used (--use-masks): 'first' = only the first annotated frame (DAVIS
semi-supervised protocol; default for DAVIS layouts), 'appear' = each object's mask at the
frame where it first appears, propagated forward only (YouTube-VOS protocol; default there),
'all' = every given frame (default for a single video).
"""
import argparse
import os
import shutil
import sys

import torch

from inference_core.networks import check_engine_options
from inference_core.session import (DEFAULT_ADAPT_STEPS, DEFAULT_LONG_TERM_FRAMES,
                                    DEFAULT_WORKING_FRAMES)
from scripts.datasets import discover_dataset, read_split
from scripts.propagate_output import (MARKER, PARTIAL, check_clashes, check_not_inputs,
                                      check_output, clean_partials, install_dir, merge_files,
                                      not_inputs, plain_names, read_marker)
from scripts.propagate_runner import Runner
from scripts.propagate_sequence import process_sequence
from util.atomic import make_temp_dir, write_json
from util.cli_options import add_amp_option
from util.errors import UserError, run_cli, writing_output
from util.frames_io import read_folder

USE_MASKS = ('first', 'appear', 'all')


def build_parser():
    p = argparse.ArgumentParser(prog='python -m scripts.propagate', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group('input (one of)')
    src.add_argument('--input', help='video file or folder of frames')
    src.add_argument('--masks', nargs='+', help='with --input: folder of mask PNGs, PNG file(s), or a '
                     'COCO / YouTube-VIS JSON')
    src.add_argument('--dataset', help='dataset root (DAVIS / YouTube-VOS / videos+masks layout)')
    p.add_argument('--output', required=True, help='output folder')
    p.add_argument('--export', default='png', metavar='FORMATS',
                   help='comma-separated formats to write for each video, as the GUI exports '
                        'them: png (<frame>.png, default), objects, soft, coco, ytvis, mp4 '
                        '(e.g. --export png,coco,ytvis,soft,mp4; see README "Exports")')
    p.add_argument('--coco-images', choices=('write', 'source'), default='write',
                   help='coco/ytvis: write the frames the JSON names next to it (default), or, '
                        'for a folder of images, name those images instead of copying them')
    p.add_argument('--split', help='dataset mode: text file with one sequence name per line')
    p.add_argument('--sequences', nargs='+', help='dataset mode: only these sequences')
    p.add_argument('--use-masks', choices=USE_MASKS,
                   help='which given masks to use (see above; default depends on the layout)')
    p.add_argument('--model', default='auto', help='official | bundled | auto (default)')
    p.add_argument('--saves', default='saves', help='folder with the official weights')
    p.add_argument('--device', default='auto', help='auto | cpu | cuda | cuda:N')
    add_amp_option(p)
    p.add_argument('--top_k', type=int, default=20, help='memory read top-k (default 20)')
    p.add_argument('--mem_freq', type=int, default=5,
                   help='add a memory frame every N frames (default 5)')
    p.add_argument('--max_memory_frames', type=int, default=None,
                   help='expert: cap on all memory frames per pass, no long-term memory '
                        '(default: the bounded policy below)')
    p.add_argument('--working_frames', type=int, default=DEFAULT_WORKING_FRAMES,
                   help=f'recent memory frames per pass (default {DEFAULT_WORKING_FRAMES}; '
                        '0 = unbounded, as MiVOS)')
    p.add_argument('--long_term_frames', type=int, default=DEFAULT_LONG_TERM_FRAMES,
                   help='long-term memory of evicted frames, in frames of positions '
                        f'(default {DEFAULT_LONG_TERM_FRAMES}; 0 = off)')
    p.add_argument('--flip', action='store_true',
                   help='test-time augmentation: average the probabilities of the normal and the '
                        'horizontally flipped run (twice the time)')
    p.add_argument('--adapt', type=int, nargs='?', const=DEFAULT_ADAPT_STEPS, default=0, metavar='STEPS',
                   help='bundled networks: fine-tune the propagation network on the given masks '
                        f'of each video for STEPS steps (default {DEFAULT_ADAPT_STEPS}) before '
                        'propagating (online adaptation: tens of seconds per object on a CPU, '
                        'minutes for several objects; helps on crowds and see-through objects, can '
                        'lose small look-alikes; best together with --flip)')
    p.add_argument('--resolution', type=int, default=480,
                   help='processing size: shorter side in pixels, 16..4320 (default 480, '
                        '-1 = original)')
    p.add_argument('--overwrite', action='store_true',
                   help='recompute finished outputs, writing into a folder this tool did not '
                        'write; replaces the files it wrote before (removing those the new run '
                        'does not write) AND files of yours with the same name as an output; '
                        'your other files are never touched')
    p.add_argument('--workers', type=int, default=1,
                   help='dataset mode: propagate N sequences in parallel as Ray tasks (local '
                        'Ray by default; needs the optional extra: pip install -r '
                        'requirements-ray.txt)')
    p.add_argument('--address', help='with --workers: join this Ray cluster (e.g. auto or '
                                     'HOST:6379); dataset and output must be on shared storage')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (per worker with --workers; default: cores / workers)')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    return p


def _check_args(args):
    if bool(args.input) == bool(args.dataset):
        raise UserError('give either --input (with --masks) or --dataset')
    if args.input and not args.masks:
        raise UserError('--input needs --masks (a folder of mask PNGs or PNG files)')
    if args.dataset and args.masks:
        raise UserError('--masks is for --input; a dataset has its own Annotations folder')
    if args.input and (args.split or args.sequences):
        raise UserError('--split/--sequences are for --dataset')
    check_engine_options(args)
    from scripts.propagate_export import parse_exports
    args.exports = parse_exports(args.export)
    if args.adapt < 0:
        raise UserError(f'--adapt must be 0 (off) or a number of steps, got {args.adapt}')
    if args.working_frames < 0 or args.long_term_frames < 0:
        raise UserError('--working_frames and --long_term_frames must be 0 or more')
    if args.workers < 1:
        raise UserError(f'--workers must be at least 1, got {args.workers}')
    if args.threads is not None and args.threads < 1:
        raise UserError(f'--threads must be at least 1, got {args.threads}')
    if (args.workers > 1 or args.address) and not args.dataset:
        raise UserError('--workers/--address are for --dataset (one video runs in one process)')
    if args.workers > 1 or args.address:
        from scripts.batch_ray import import_ray
        import_ray()               # says how to install Ray when it is missing


def settings(args, mode):
    """What decides the result (compared when a run is resumed or found complete)."""
    return {'model': args.model, 'resolution': args.resolution, 'top_k': args.top_k,
            'mem_freq': args.mem_freq, 'max_memory_frames': args.max_memory_frames,
            'flip': args.flip, 'amp': _marker_amp(args.amp), 'use_masks': mode,
            'working_frames': args.working_frames, 'long_term_frames': args.long_term_frames,
            **({'adapt': args.adapt} if args.adapt else {}),
            **_export_settings(args)}


def _export_settings(args):
    """--export / --coco-images as the run marker records them (nothing for the default, so
    runs written before the option existed still resume)."""
    exports = getattr(args, 'exports', None) or ['png']
    if exports == ['png']:
        return {}
    out = {'export': exports}
    if getattr(args, 'coco_images', 'write') != 'write' and {'coco', 'ytvis'} & set(exports):
        out['coco_images'] = args.coco_images
    return out


def _marker_amp(amp):
    """--amp as the run marker records it (False / True for off / fp16, as before --amp took a
    value, so runs written then still resume)."""
    return {'off': False, 'fp16': True}.get(amp, amp)


def _same_run(marker, cfg, source, out):
    """Raise unless the run recorded in `marker` used the same source and settings."""
    if marker.get('settings') != cfg or marker.get('source') != source:
        raise UserError(f'output folder {out} holds a run with other inputs or settings '
                        f'({_diff(marker, cfg, source)}); use the same ones to resume, another '
                        f'folder, or --overwrite')


def _diff(marker, cfg, source):
    if marker.get('source') != source:
        return 'input differs'
    old = marker.get('settings') or {}
    return ', '.join(f'{k}: {old.get(k)} -> {v}' for k, v in cfg.items() if old.get(k) != v)


def main(argv=None, networks=None):
    """CLI entry; `networks` (an inference_core.networks.Networks) skips loading."""
    p = build_parser()
    args = p.parse_args(argv)
    _check_args(args)
    out = os.path.abspath(args.output)
    kind = 'dataset' if args.dataset else 'single'
    if kind == 'single':
        if not os.path.exists(args.input):
            raise UserError(f'input not found: {args.input}')
        mask_inputs = [m for m in args.masks]
        for m in mask_inputs:
            if not os.path.exists(m):
                raise UserError(f'mask path not found: {m}')
        from util.coco_io import is_annotation_file
        from util.mask_io import list_mask_files
        if len(mask_inputs) == 1 and is_annotation_file(mask_inputs[0]):
            files = [mask_inputs[0]]          # a COCO / YouTube-VIS JSON
        else:
            files = list_mask_files(mask_inputs[0] if len(mask_inputs) == 1 else mask_inputs)
        # every input, file or folder, is off limits to every output path
        inputs = [args.input] + mask_inputs + list(files)
        marker = check_output(out, kind, inputs, args.overwrite)
        mode = args.use_masks or 'all'
        cfg = settings(args, mode)
        source = {'input': os.path.abspath(args.input),
                  'masks': sorted(os.path.abspath(f) for f in files)}
        if marker and not args.overwrite:
            _same_run(marker, cfg, source, out)
            if marker.get('complete'):
                print(f'{out} is already complete (use --overwrite to redo it)', file=sys.stderr)
                return 0
    else:
        layout, seqs, default_mode = discover_dataset(args.dataset)
        names = list(args.sequences or [])
        if args.split:
            names += read_split(args.split)
        names = list(dict.fromkeys(names)) or list(seqs)
        if not names:
            raise UserError(f'no sequences found in {args.dataset}')
        unknown = [n for n in names if n not in seqs]
        if unknown:
            raise UserError(f'sequence {unknown[0]!r} not found in {args.dataset} ({layout} layout)')
        from util.mask_io import MASK_EXTS
        jobs = []
        for n in names:
            frames_path, ann = seqs[n]
            mfiles = [] if ann is None else sorted(
                os.path.join(ann, f) for f in read_folder(ann)
                if os.path.splitext(f)[1].lower() in MASK_EXTS and not f.startswith('.'))
            if not mfiles:
                raise UserError(f'sequence {n!r} has no annotations (mask PNGs) in {args.dataset}')
            jobs.append((n, frames_path, mfiles))
        marker = check_output(out, kind, [args.dataset], args.overwrite)
        mode = args.use_masks or default_mode
        cfg = settings(args, mode)
        source = os.path.abspath(args.dataset)
        if marker and not args.overwrite:
            _same_run(marker, cfg, source, out)

    if args.threads and args.workers == 1 and not args.address:
        torch.set_num_threads(args.threads)
    if networks is None:
        from inference_core.networks import load_networks
        networks = load_networks(args.model, saves_dir=args.saves, device=args.device)
    elif args.model != 'auto' and networks.kind != args.model:
        raise UserError(f'--model {args.model} requested but {networks.kind} networks given')
    if args.adapt:
        if not networks.adaptable:
            raise UserError(f'--adapt needs the bundled networks ({networks.kind} networks are loaded; '
                            f'use --model bundled)')
    runner = Runner(networks, args)

    if kind == 'single':
        return _run_single(args, out, files, mode, cfg, source, networks, runner, inputs)
    return _run_dataset(args, out, layout, jobs, mode, cfg, source, networks, runner, marker)


def _run_single(args, out, files, mode, cfg, source, networks, runner, inputs=()):
    """Propagate one video into `out`: a new folder is renamed into place when complete; an
    existing one gets the new files merged in (marker last; a crash in between leaves an
    incomplete marker listing every file that may be ours, so a rerun resumes)."""
    kind = 'single'
    parent, base = os.path.dirname(out), os.path.basename(out)
    inputs = [args.input, *inputs]
    with writing_output(out):          # errors name the output folder, not the temp folder
        os.makedirs(parent, exist_ok=True)
        clean_partials(parent, f'.{base}{PARTIAL}')
        tmp = make_temp_dir(f'.{base}{PARTIAL}', parent)
    old = read_marker(out) if os.path.isdir(out) else None
    owned = plain_names(old.get('files')) if old and old.get('kind') == kind else set()
    owned = not_inputs(out, owned, inputs)

    def check(names):
        check_not_inputs([os.path.join(out, n) for n in [*names, MARKER]], inputs)
        check_clashes(out, names, owned, args.overwrite)
    try:
        info = process_sequence(
            args.input, files, mode, tmp, runner, args.resolution,
            label=os.path.basename(os.path.normpath(args.input)), quiet=args.quiet,
            check=check, shown_dir=out,
            exports=args.exports, coco_images=args.coco_images)
        new = info.pop('files')
        head = {'kind': kind, 'complete': True, 'source': source, 'settings': cfg}
        with writing_output(out):
            write_json(os.path.join(tmp, MARKER), {**head, 'networks': networks.kind,
                                                   'run': info, 'files': new}, indent=1)
            if os.path.isdir(out) and os.listdir(out):
                write_json(os.path.join(out, MARKER),
                           {**head, 'complete': False, 'files': sorted(owned | set(new))},
                           indent=1)
                merge_files(tmp, out, new, owned)
                os.replace(os.path.join(tmp, MARKER), os.path.join(out, MARKER))
            else:
                if os.path.isdir(out):
                    os.rmdir(out)
                os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _report(info, args.input)
    return 0


def _run_dataset(args, out, layout, jobs, mode, cfg, source, networks, runner, marker):
    """Propagate every sequence into out/<seq>/. The marker lists the finished sequences
    ('sequences', each with its 'files') and, under 'writing', the files this tool wrote or
    may have written in sequence folders not finished with these settings."""
    kind = 'dataset'
    with writing_output(out):
        os.makedirs(out, exist_ok=True)
        clean_partials(out, PARTIAL)
    old = marker or {}
    finished = dict(old.get('sequences') or {})
    writing = {k: sorted(plain_names(v)) for k, v in (old.get('writing') or {}).items()}
    if args.overwrite and (old.get('settings') != cfg or old.get('source') != source):
        # results of other settings are not finished results of this run (but still ours)
        for k, v in finished.items():
            files = plain_names(writing.get(k)) | plain_names((v or {}).get('files'))
            if files:
                writing[k] = sorted(files)
        finished = {}
    state = {'kind': kind, 'layout': layout, 'source': source, 'settings': cfg,
             'networks': networks.kind, 'sequences': finished, 'writing': writing}

    def save():
        with writing_output():
            write_json(os.path.join(out, MARKER),
                       {k: v for k, v in state.items() if k != 'writing' or v}, indent=1)
    save()
    todo = [(n, f, m) for n, f, m in jobs
            if args.overwrite or not (n in finished and os.path.isdir(os.path.join(out, n)))]
    skipped = len(jobs) - len(todo)
    if skipped:
        print(f'{skipped} of {len(jobs)} sequences already done, skipping them', file=sys.stderr)
    if args.workers > 1 or args.address:
        return _run_dataset_ray(args, out, todo, mode, finished, writing, save,
                                [n for n, _f, _m in jobs if n not in {t[0] for t in todo}])
    for i, (n, frames_path, mfiles) in enumerate(todo):
        dst = os.path.join(out, n)
        owned = plain_names((finished.get(n) or {}).get('files')) | plain_names(writing.get(n))
        if n in finished:
            del finished[n]                  # being redone: not finished, its files still ours
            writing[n] = sorted(owned)
            save()
        with writing_output(out):
            tmp = make_temp_dir(f'{PARTIAL}{n}-', out)
        seq_inputs = [args.dataset, frames_path, *mfiles]
        owned = not_inputs(dst, owned, seq_inputs)

        def check(names, dst=dst, owned=owned, seq_inputs=seq_inputs):
            check_not_inputs([os.path.join(dst, x) for x in names], seq_inputs)
            check_clashes(dst, names, owned, args.overwrite)
        try:
            try:
                info = process_sequence(
                    frames_path, mfiles, mode, tmp, runner, args.resolution,
                    label=f'[{i + 1}/{len(todo)}] {n}', quiet=args.quiet,
                    check=check,
                    shown_dir=dst, exports=args.exports, coco_images=args.coco_images)
            except UserError as e:
                raise UserError(f'sequence {n!r}: {e}') from None
            writing[n] = sorted(owned | set(info['files']))
            save()
            with writing_output(dst):
                install_dir(tmp, dst, info['files'], owned)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        writing.pop(n, None)
        finished[n] = info
        save()
        _report(info, n)
    return 0


def _run_dataset_ray(args, out, todo, mode, finished, writing, save, skipped):
    """The dataset loop on Ray workers (scripts/batch_ray.py). The driver keeps the marker and
    moves each finished sequence into place exactly as the serial loop does."""
    from scripts import batch_ray
    from util.progress import cli_progress
    owned, tmps, done, failed = {}, {}, [], []
    for n, _f, _m in todo:
        owned[n] = plain_names((finished.get(n) or {}).get('files')) | plain_names(writing.get(n))
        with writing_output(out):
            tmps[n] = make_temp_dir(f'{PARTIAL}{n}-', out)

    def begin(n):
        if n in finished:
            del finished[n]                  # being redone: not finished, its files still ours
            writing[n] = sorted(owned[n])
            save()

    def finish(n, info):
        dst = os.path.join(out, n)
        try:
            check_not_inputs([os.path.join(dst, x) for x in info['files']], [args.dataset])
            check_clashes(dst, info['files'], owned[n], args.overwrite)
            writing[n] = sorted(owned[n] | set(info['files']))
            save()
            with writing_output(dst):
                install_dir(tmps[n], dst, info['files'], owned[n])
        finally:
            shutil.rmtree(tmps[n], ignore_errors=True)
        writing.pop(n, None)
        finished[n] = info
        save()
        done.append(n)

    def fail(n, reason):
        shutil.rmtree(tmps[n], ignore_errors=True)
        failed.append((n, reason))

    jobs = [(n, f, m, mode, tmps[n]) for n, f, m in todo]
    try:
        with cli_progress(f'{len(todo)} sequences on {args.workers} workers', args.quiet) as p:
            batch_ray.run(args, jobs, begin, finish, fail, p)
    finally:
        for t in tmps.values():
            shutil.rmtree(t, ignore_errors=True)
    return batch_ray.summary(done, skipped, failed)


def _report(info, name):
    fps = (info['frames'] - 1) / max(info['propagate_s'], 1e-9)
    adapt = f'adaptation {info["adapt_s"]:.1f} s, ' if 'adapt_s' in info else ''
    print(f'{name}: {info["frames"]} frames, {info["objects"]} objects, {adapt}propagation '
          f'{info["propagate_s"]:.1f} s ({fps:.1f} fps), total {info["total_s"]:.1f} s',
          file=sys.stderr)


if __name__ == '__main__':
    run_cli(main)
