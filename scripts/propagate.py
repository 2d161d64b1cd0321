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
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from inference_core.adaptation import DEFAULT_ITERS as DEFAULT_ADAPT_STEPS
from inference_core.networks import check_engine_options
from inference_core.session import DEFAULT_LONG_TERM_FRAMES, DEFAULT_WORKING_FRAMES
from util.atomic import make_temp_dir, write_bytes, write_json
from util.cli_options import add_amp_option
from util.errors import UserError, run_cli, write_error, writing_output
from util.frames_io import read_folder
from util.labels import resize_labels
from util.tensor_util import argmax0

MARKER = 'propagate_run.json'
PARTIAL = '.partial-'
USE_MASKS = ('first', 'appear', 'all')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v')


# ---------------------------------------------------------------------------- planning
def plan_steps(mask_frames, mode, num_frames):
    """The propagation calls for the given mask frames (sorted): [(t, direction, end), ...].

    'first'/'all': at each given frame propagate both ways; the forward side stops before the
    next given frame (which then propagates backwards to it, fused). 'appear': forward only,
    each pass ends AT the next given frame (its prediction is merged with the new objects)."""
    fs = sorted(mask_frames)
    steps = []
    for i, t in enumerate(fs):
        nxt = fs[i + 1] if i + 1 < len(fs) else None
        if mode == 'appear':
            if t < num_frames - 1:
                steps.append((t, 'forward', nxt))
        elif nxt is None:
            steps.append((t, 'both', None))
        elif nxt == t + 1:
            steps.append((t, 'backward', None))
        else:
            steps.append((t, 'both', nxt - 1))
    return steps


def count_work(steps, num_frames):
    """Frames processed by `steps` (for the progress total). Given frames are committed in
    ascending order, so a backward pass runs down to the previous step's frame."""
    n, prev = 0, -1
    for t, direction, end in steps:
        if direction in ('both', 'forward'):
            n += (num_frames - 1 if end is None else end) - t
        if direction in ('both', 'backward'):
            n += t - prev - 1
        prev = t
    return n


# ---------------------------------------------------------------------------- sessions
class Propagation:
    """The sessions of one propagation run (the caller's, plus the flipped one of --flip);
    prob(t) gives the final soft result."""

    def __init__(self, sessions, appear_at=None, adapt_s=0.0):
        self.sessions = sessions
        self.appear_at = appear_at or {}
        self.adapt_s = adapt_s       # time spent adapting the network before propagating

    def prob(self, t):
        """(K+1, H, W) float32 CPU probabilities at processing size (flip runs averaged).
        Objects that have not appeared yet at t ('appear' mode) get probability 0."""
        p = torch.from_numpy(self.sessions[0].probabilities(t))
        if len(self.sessions) > 1:
            p1 = torch.from_numpy(self.sessions[1].probabilities(t))
            p = (p + torch.flip(p1, dims=[-1])) / 2
        late = [k for k, first in self.appear_at.items() if t < first and k < p.shape[0]]
        if late:
            p = p.clone()           # may share memory with the session's cache: no in-place edits
            p[late] = 0
        return p

    def labels(self, t):
        if len(self.sessions) == 1 and not self.appear_at:
            return self.sessions[0].get_mask(t)
        return argmax0(self.prob(t)).to(torch.uint8).numpy()

    def close(self):
        """Free the sessions' memory and close the flipped one (the caller's session stays
        open, with its masks)."""
        for i, s in enumerate(self.sessions):
            if i > 0:
                s.close()
            else:
                s.release_memory()
        self.sessions = []


class Runner:
    """Propagates given masks through a video with one Session, or two for --flip (the second
    on a horizontally flipped copy; both run the same schedule step by step)."""

    def __init__(self, networks, args):
        self.networks = networks
        working = getattr(args, 'working_frames', DEFAULT_WORKING_FRAMES)
        self.kw = dict(mem_freq=args.mem_freq, top_k=args.top_k,
                       max_memory_frames=args.max_memory_frames,
                       working_frames=working or None,
                       long_term_frames=getattr(args, 'long_term_frames', DEFAULT_LONG_TERM_FRAMES),
                       amp=args.amp, history_bytes=0)
        self.flip = args.flip
        self.adapt = getattr(args, 'adapt', 0) or 0
        self.adapt_seed = getattr(args, 'adapt_seed', 0)

    def open(self, path, resolution, progress=None, should_cancel=None):
        """A Session on a video file or image folder with this run's networks and settings
        (None when cancelled while loading)."""
        from inference_core.session import Session
        return Session.open(path, resolution=resolution, networks=self.networks,
                            progress=progress, should_cancel=should_cancel, **self.kw)

    def from_frames(self, frames, **kwargs):
        """A Session on frames in memory (Session.from_frames) with this run's networks and
        settings."""
        from inference_core.session import Session
        return Session.from_frames(frames, networks=self.networks, **self.kw, **kwargs)

    def _flipped(self, session):
        """A session on the horizontally mirrored frames of `session`."""
        n = session.num_frames
        frames = (np.ascontiguousarray(session.frame(t)[:, ::-1]) for t in range(n))
        return self.from_frames(frames, num_frames=n,
                                orig_size=(session.orig_height, session.orig_width),
                                frame_names=session.frame_names, num_objects=session.num_objects)

    def _adapted_network(self, session, given, mode, progress, should_cancel):
        """(propagation net adapted to this video's given masks, the frames it was adapted to)
        (the first mask with --use-masks first, all of them otherwise); (None, []) when no mask
        holds an object; None when cancelled."""
        from inference_core.adaptation import adapt_propagation
        frames = [min(given)] if mode == 'first' else sorted(given)
        frames = [t for t in frames if given[t].any()]
        if not frames:
            return None, []
        examples = [(np.array(session.frame(t)), given[t]) for t in frames]
        net = adapt_propagation(self.networks.propagation, examples, iters=self.adapt,
                                seed=self.adapt_seed, progress=progress, should_cancel=should_cancel)
        return None if net is None else (net, frames)

    def run(self, session, given, mode, progress=None, should_cancel=None):
        """Propagate in `session` (from `open` / `from_frames`; its objects exist). given:
        {t: labels at processing size}. Returns a Propagation (call .close()), or None when
        cancelled."""
        T = session.num_frames
        steps = plan_steps(given, mode, T)
        done = self.adapt
        total = count_work(steps, T) * (2 if self.flip else 1) + done
        adapted, adapt_s = (None, []), 0.0
        if self.adapt:
            cb = None if progress is None else (lambda d, _t: progress(d, total))
            t0 = time.time()
            adapted = self._adapted_network(session, given, mode, cb, should_cancel)
            adapt_s = time.time() - t0
            if adapted is None:
                return None
        sessions = [session]
        appear_at = {}
        if mode == 'appear':
            for t in sorted(given):
                for k in np.unique(given[t]).tolist():
                    if k:
                        appear_at.setdefault(int(k), t)
        result = Propagation(sessions, appear_at, adapt_s)
        ok = False
        try:
            if self.flip:
                sessions.append(self._flipped(session))
            if adapted[0] is not None:
                for s in sessions:
                    s.use_adapted_network(*adapted)
            first = min(given)
            for t, direction, end in steps:
                labels = given[t]
                if mode == 'appear' and t != first:
                    # keep the prediction; the newly appearing objects come from the annotation
                    pred = result.labels(t)
                    pred[np.isin(pred, np.unique(labels[labels > 0]))] = 0
                    labels = np.where(labels > 0, labels, pred).astype(np.uint8)
                for i, s in enumerate(sessions):
                    s.set_labels(t, labels if i == 0 else np.ascontiguousarray(labels[:, ::-1]))
                    seen = [0]

                    def cb(d, _tot, base=done, seen=seen):
                        seen[0] = d
                        if progress is not None:
                            progress(base + d, total)
                    if not s.propagate(t, direction=direction, end=end, progress=cb,
                                       should_cancel=should_cancel):
                        return None
                    done += seen[0]
            if progress is not None:
                progress(total, total)
            ok = True
            return result
        finally:
            if not ok:
                result.close()


# ---------------------------------------------------------------------------- one sequence
def read_given_masks(session, files, mode):
    """{t: labels at processing size} and {t: labels at original size} of the masks to use
    (the session gets objects up to the largest id).

    Every mask must have the frames' aspect ratio (original or processing size, or any
    resolution with the same shape); missing masks for a sequence are an error."""
    from util.mask_io import MaskNotes
    if not files:
        raise UserError('no mask PNGs given')
    notes = MaskNotes()
    try:
        return _read_given_masks(session, files, mode, notes)
    finally:
        notes.flush()           # how grey masks were read: one line per rule


def _mask_entries(session, files, notes):
    """[(frame, file name, read() -> labels)] for mask PNGs, or for the frames of a COCO /
    YouTube-VIS JSON that hold any object."""
    from util.coco_io import is_annotation_file, read_annotation_file
    from util.mask_io import annotation_frame, match_masks_to_frames, read_label_png
    if len(files) == 1 and is_annotation_file(files[0]):
        ann = read_annotation_file(files[0])
        name = os.path.basename(files[0])
        return [(annotation_frame(k, session, files[0]), f'{name}[{k}]', lambda lab=lab: lab)
                for k, lab in ann.frames.items() if lab.any()]
    targets = match_masks_to_frames(files, session.frame_names)
    return [(t, f, lambda f=f: read_label_png(f, notes)) for f, t in zip(files, targets)]


def _read_given_masks(session, files, mode, notes):
    entries = sorted(_mask_entries(session, files, notes), key=lambda e: e[0])
    order = list(range(len(entries)))
    if mode == 'first':
        order = order[:1]
    oh, ow = session.orig_height, session.orig_width
    given, orig = {}, {}
    seen = set()
    files = [e[1] for e in entries]
    for i in order:
        t, f, read = entries[i]
        lab = np.array(read(), np.uint8)
        mh, mw = lab.shape
        if abs(mh * ow - mw * oh) > max(ow, oh):
            raise UserError(f'mask {os.path.basename(f)} is {mw}x{mh} but the frames are '
                            f'{ow}x{oh}')
        lab[lab == 255] = 0                   # DAVIS "void" is not an object
        if mode == 'appear':
            ids = set(np.unique(lab).tolist()) - {0} - seen
            if not ids:
                continue
            lab = np.where(np.isin(lab, list(ids)), lab, 0).astype(np.uint8)
            seen |= ids
        if not lab.any() and mode != 'all':
            continue
        orig[t] = lab if (mh, mw) == (oh, ow) else resize_labels(lab, oh, ow)
        given[t] = resize_labels(lab, session.height, session.width)
    if not given or not any(g.any() for g in given.values()):
        used = [os.path.basename(files[i]) for i in order]
        what = (f'mask {used[0]} contains' if len(used) == 1 else
                f'the given masks ({len(used)} files, {used[0]} ... {used[-1]}) contain')
        raise UserError(f'{what} no object (all background): nothing to propagate')
    top = max(int(g.max()) for g in given.values())
    session.ensure_objects(max(top, 1))
    return given, orig


def segment_session(session, files, mode, runner, progress=None, should_cancel=None):
    """Propagate the given masks in `session` (from runner.open / runner.from_frames). Returns
    (labels_at(t) -> labels at ORIGINAL size, Propagation) or None when cancelled."""
    given, orig = read_given_masks(session, files, mode)
    run = runner.run(session, dict(given), mode, progress, should_cancel)
    if run is None:
        return None
    oh, ow = session.orig_height, session.orig_width
    first = min(given)

    def labels_at(t):
        if t in orig and mode != 'appear':
            return orig[t]                    # the given mask, untouched
        if mode == 'appear' and t < first:
            return np.zeros((oh, ow), np.uint8)
        p = run.prob(t)
        if p.shape[-2:] != (oh, ow):
            # bilinear upsampling of the soft probabilities (as the STCN evaluation does)
            p = F.interpolate(p[None], size=(oh, ow), mode='bilinear', align_corners=False)[0]
        out = argmax0(p).to(torch.uint8).numpy()
        if mode == 'appear' and t in orig:
            out = np.where(orig[t] > 0, orig[t], out).astype(np.uint8)
        return out
    return labels_at, run


def output_names(session, exports=('png',), coco_images='write', out_dir='.'):
    """The files written for a sequence (one PNG per frame, plus the other --export formats;
    paths relative to the sequence's folder, '/'-separated)."""
    from scripts.propagate_export import export_names
    return export_names(session, exports, coco_images, out_dir)


def write_sequence(session, labels_at, out_dir, progress=None, should_cancel=None,
                   shown_dir=None):
    """Write every frame's PNG into `out_dir`. A write error (disk full, ...) is a UserError
    naming the file as it will be called in `shown_dir` (the final folder; default out_dir)."""
    from util.export import indexed_png_bytes
    with writing_output(shown_dir or out_dir):
        os.makedirs(out_dir, exist_ok=True)
    for t, name in enumerate(output_names(session)):
        if should_cancel is not None and should_cancel():
            return False
        data = indexed_png_bytes(labels_at(t))
        try:
            write_bytes(os.path.join(out_dir, name), data)
        except OSError as e:
            raise write_error(e, os.path.join(shown_dir or out_dir, name)) from None
        if progress is not None:
            progress(t + 1, session.num_frames)
    return True


def process_sequence(frames_path, mask_files, mode, out_dir, runner, resolution, label='',
                     quiet=False, check=None, shown_dir=None, exports=('png',),
                     coco_images='write'):
    """Load, propagate and write one sequence into `out_dir` (a new temp folder): the PNGs
    and the other `exports` formats (scripts/propagate_export.py).
    `check(names)`, when given, sees the output file names once the frames are loaded (before
    the propagation); `shown_dir` is the folder named in write errors. The returned info
    lists the files written ('files')."""
    from scripts.propagate_export import write_exports
    from util.progress import cli_progress
    t0 = time.time()
    with cli_progress(f'{label} load', quiet) as p:
        session = runner.open(frames_path, resolution, progress=p)
    for w in session.load_warnings:
        print(f'{label}: warning: {w}', file=sys.stderr)
    try:
        names = output_names(session, exports, coco_images, shown_dir or out_dir)
        if check is not None:
            check(names)
        t1 = time.time()
        with cli_progress(f'{label} propagate', quiet) as p:
            res = segment_session(session, mask_files, mode, runner, progress=p)
        if res is None:
            return None
        labels_at, run = res
        t2 = time.time()
        adapt_s = run.adapt_s
        try:
            if 'png' in exports:
                with cli_progress(f'{label} write', quiet) as p:
                    write_sequence(session, labels_at, out_dir, progress=p, shown_dir=shown_dir)
            if any(f != 'png' for f in exports):
                with cli_progress(f'{label} export', quiet) as p:
                    write_exports(session, exports, labels_at, run.prob, out_dir, coco_images,
                                  progress=p, shown_dir=shown_dir)
        finally:
            run.close()
        info = {'frames': session.num_frames, 'objects': session.num_objects,
                'size': [session.orig_width, session.orig_height],
                'processing_size': [session.width, session.height],
                'load_s': round(t1 - t0, 3), 'propagate_s': round(t2 - t1 - adapt_s, 3),
                'total_s': round(time.time() - t0, 3)}
        if runner.adapt:
            info['adapt_s'] = round(adapt_s, 3)
        final = output_names(session, exports, coco_images, shown_dir or out_dir)
        if final != names and check is not None:
            check(final)       # the per-object folders are known once the masks were read
        info['files'] = final
        return info
    finally:
        session.close()


# ---------------------------------------------------------------------------- datasets
def discover_dataset(root):
    """(layout, {seq: (frames path, masks folder or None)}, default --use-masks)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f'dataset folder not found: {root}')
    read_folder(root, 'dataset folder')     # unreadable: 'permission denied', not 'not a dataset'

    def subdirs(p):
        return sorted(n for n in read_folder(p) if not n.startswith('.')
                      and os.path.isdir(os.path.join(p, n))) if os.path.isdir(p) else []

    for res in ('480p', 'Full-Resolution'):
        img = os.path.join(root, 'JPEGImages', res)
        if os.path.isdir(img):
            ann = os.path.join(root, 'Annotations', res)
            return 'davis', {s: (os.path.join(img, s), _dir_or_none(os.path.join(ann, s)))
                             for s in subdirs(img)}, 'first'
    img = os.path.join(root, 'JPEGImages')
    if os.path.isdir(img):
        ann = os.path.join(root, 'Annotations')
        return 'youtube', {s: (os.path.join(img, s), _dir_or_none(os.path.join(ann, s)))
                           for s in subdirs(img)}, 'appear'
    vids = os.path.join(root, 'videos')
    if os.path.isdir(vids):
        seqs = {}
        for n in sorted(read_folder(vids)):
            stem, ext = os.path.splitext(n)
            if ext.lower() in VIDEO_EXTS and not n.startswith('.'):
                seqs[stem] = (os.path.join(vids, n), _dir_or_none(os.path.join(root, 'masks', stem)))
        return 'videos', seqs, 'first'
    raise UserError(f'{root} is not a dataset folder: expected JPEGImages/480p + Annotations/480p '
                    f'(DAVIS), JPEGImages + Annotations (YouTube-VOS) or videos + masks')


def _dir_or_none(p):
    return p if os.path.isdir(p) else None


def read_split(path):
    try:
        with open(path, encoding='utf-8') as f:
            names = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith('#')]
    except OSError as e:
        raise UserError(f'cannot read split file {path}: {e.strerror or e}') from None
    if not names:
        raise UserError(f'split file lists no sequences: {path}')
    return names


# ---------------------------------------------------------------------------- output folder
def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_not_inputs(paths, inputs):
    """Refuse, before anything is written, when an output path is an input file or lies inside
    an input folder (both after resolving links): the frames and masks a run reads are never
    written over, with or without --overwrite."""
    srcs = [(p, os.path.realpath(p), os.path.isdir(p)) for p in dict.fromkeys(inputs)
            if p and os.path.lexists(p)]
    for path in paths:
        real = os.path.realpath(path)
        for shown, src, is_dir in srcs:
            if real == src or (is_dir and real.startswith(src.rstrip(os.sep) + os.sep)):
                what = 'into the input folder' if is_dir and real != src else 'over the input'
                raise UserError(f'the output {path} would be written {what} {shown}; inputs '
                                f'are never replaced, not even with --overwrite: choose another '
                                f'output folder (nothing was written)')


def _not_inputs(folder, names, inputs):
    """`names` (under `folder`) without those that are inputs (never removed as old outputs)."""
    keep = set()
    for n in names:
        try:
            check_not_inputs([os.path.join(folder, n)], inputs)
            keep.add(n)
        except UserError:
            pass
    return keep


def _read_marker(out):
    try:
        with open(os.path.join(out, MARKER), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def check_output(out, kind, inputs, overwrite):
    """Validate the output folder; returns the existing marker (resume) or None."""
    for src in inputs:
        if src and os.path.isdir(src) and _inside(out, src):
            raise UserError(f'output folder {out} is inside the input folder {src}; '
                            f'choose a folder outside it')
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f'output path exists and is not a folder: {out}')
    if not os.path.isdir(out):
        return None
    content = [n for n in os.listdir(out) if not n.startswith(PARTIAL)]
    if not content:
        return None
    marker = _read_marker(out)
    if overwrite:
        return marker if marker and marker.get('kind') == kind else None
    if marker is None:
        held = [src for src in inputs if src and os.path.lexists(src) and _inside(src, out)]
        if held:
            raise UserError(f'output folder {out} holds the input {held[0]}; choose another '
                            f'output folder (inputs are never written over)')
        raise UserError(f'output folder {out} is not empty and was not written by this tool '
                        f'(use --overwrite to write into it anyway)')
    if marker.get('kind') != kind:
        raise UserError(f'output folder {out} holds a {marker.get("kind")} run, not a {kind} run '
                        f'(choose another folder or use --overwrite)')
    return marker


def _plain_names(names):
    """File names from a marker that may be touched: paths inside the folder only (a plain
    name, or a '/'-separated relative path of the --export formats, e.g. soft/cat/00000.png;
    nothing absolute, no '..', no backslash or drive, never the marker or a temp folder)."""
    if not isinstance(names, (list, tuple, set)):
        return set()
    return {n for n in names if isinstance(n, str) and n not in ('', MARKER)
            and not n.startswith(PARTIAL) and '\\' not in n and not os.path.isabs(n)
            and not os.path.splitdrive(n)[0]
            and all(part not in ('', '.', '..') for part in n.split('/'))}


def _blocked_parent(dst, name):
    """The first folder of `name` (a '/'-path) under `dst` that is a link or a file, or None:
    outputs are never written through a link or over a file of the user's."""
    parts = name.split('/')[:-1]
    for i in range(1, len(parts) + 1):
        p = os.path.join(dst, *parts[:i])
        if os.path.islink(p) or (os.path.lexists(p) and not os.path.isdir(p)):
            return p
        if not os.path.lexists(p):
            return None
    return None


def _check_clashes(dst, names, owned, overwrite):
    """Without --overwrite, refuse when `dst` holds a file (or folder) of the user's with the
    name of an output: only files this tool wrote (`owned`) are replaced."""
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise UserError(f'{dst} is a file, not a folder; move it away or choose another output '
                        f'folder')
    if not os.path.isdir(dst):
        return
    for n in names:
        blocked = _blocked_parent(dst, n)
        if blocked:
            raise UserError(f'{blocked} is in the way of the output {n} (a link or a file); '
                            f'move it away or choose another output folder (nothing was changed)')
    if overwrite:
        return
    clash = [n for n in names if n not in owned and os.path.lexists(os.path.join(dst, n))]
    if clash:
        more = f' and {len(clash) - 1} more' if len(clash) > 1 else ''
        raise UserError(f'{os.path.join(dst, clash[0])}{more} were not written by this tool; '
                        f'use --overwrite to replace them (nothing was changed)'
                        if more else
                        f'{os.path.join(dst, clash[0])} was not written by this tool; use '
                        f'--overwrite to replace it (nothing was changed)')


def _merge_files(tmp, dst, new, owned):
    """Move the files `new` from `tmp` into the existing folder `dst` (replacing same-named
    ones), then remove the files this tool wrote before (`owned`) that the new run did not.
    Everything else in `dst` stays."""
    for n in new:
        if '/' in n:
            os.makedirs(os.path.dirname(os.path.join(dst, n)), exist_ok=True)
        os.replace(os.path.join(tmp, n), os.path.join(dst, n))
    for n in sorted(_plain_names(owned) - set(new)):
        p = os.path.join(dst, n)
        if os.path.isfile(p) or os.path.islink(p):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass
            _remove_empty_parents(dst, n)


def _remove_empty_parents(dst, name):
    """Remove the folders of `name` under dst that the removal of it left empty."""
    parts = name.split('/')[:-1]
    while parts:
        try:
            os.rmdir(os.path.join(dst, *parts))
        except OSError:                  # not empty (files of the user's or ours) or gone
            return
        parts.pop()


def _install_dir(tmp, dst, new, owned):
    """Put the finished sequence folder `tmp` at `dst`. A new `dst`, or one holding only files
    of this tool (old outputs), is replaced by renaming (atomic); a `dst` with files of the
    user's gets the new files merged in (see _merge_files)."""
    if not os.path.isdir(dst):
        os.replace(tmp, dst)
        return
    ours = set(new) | _plain_names(owned)
    if _only_ours(dst, ours):
        _replace_dir(tmp, dst)
    else:
        _merge_files(tmp, dst, new, owned)


def _only_ours(dst, ours):
    """True when every file under dst is one of `ours` ('/'-paths) and every folder holds
    some of them (no links, nothing of the user's, not even an empty folder)."""
    folders = {'/'.join(n.split('/')[:i]) for n in ours for i in range(1, n.count('/') + 1)}
    for root, dirs, files in os.walk(dst):
        rel = os.path.relpath(root, dst).replace(os.sep, '/')
        prefix = '' if rel == '.' else rel + '/'
        for d in dirs:
            if os.path.islink(os.path.join(root, d)) or prefix + d not in folders:
                return False
        for f in files:
            if os.path.islink(os.path.join(root, f)) or prefix + f not in ours:
                return False
    return True


def _clean_partials(folder, prefix):
    if not os.path.isdir(folder):
        return
    for n in os.listdir(folder):
        if n.startswith(prefix):
            shutil.rmtree(os.path.join(folder, n), ignore_errors=True)


def _replace_dir(tmp, dst):
    """Move the finished folder `tmp` to `dst`; an existing `dst` is replaced (overwrite)."""
    if os.path.isdir(dst):
        old = tempfile.mkdtemp(prefix=PARTIAL + 'old-', dir=os.path.dirname(dst))
        os.rmdir(old)
        os.replace(dst, old)
        os.replace(tmp, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dst)


# ---------------------------------------------------------------------------- CLI
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
                        'propagating (online adaptation: tens of seconds per video on a CPU; best '
                        'together with --flip)')
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
        from inference_core.adaptation import supports_adaptation
        if not supports_adaptation(networks.propagation):
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
        _clean_partials(parent, f'.{base}{PARTIAL}')
        tmp = make_temp_dir(f'.{base}{PARTIAL}', parent)
    old = _read_marker(out) if os.path.isdir(out) else None
    owned = _plain_names(old.get('files')) if old and old.get('kind') == kind else set()
    owned = _not_inputs(out, owned, inputs)

    def check(names):
        check_not_inputs([os.path.join(out, n) for n in [*names, MARKER]], inputs)
        _check_clashes(out, names, owned, args.overwrite)
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
                _merge_files(tmp, out, new, owned)
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
        _clean_partials(out, PARTIAL)
    old = marker or {}
    finished = dict(old.get('sequences') or {})
    writing = {k: sorted(_plain_names(v)) for k, v in (old.get('writing') or {}).items()}
    if args.overwrite and (old.get('settings') != cfg or old.get('source') != source):
        # results of other settings are not finished results of this run (but still ours)
        for k, v in finished.items():
            files = _plain_names(writing.get(k)) | _plain_names((v or {}).get('files'))
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
        owned = _plain_names((finished.get(n) or {}).get('files')) | _plain_names(writing.get(n))
        if n in finished:
            del finished[n]                  # being redone: not finished, its files still ours
            writing[n] = sorted(owned)
            save()
        with writing_output(out):
            tmp = make_temp_dir(f'{PARTIAL}{n}-', out)
        seq_inputs = [args.dataset, frames_path, *mfiles]
        owned = _not_inputs(dst, owned, seq_inputs)

        def check(names, dst=dst, owned=owned, seq_inputs=seq_inputs):
            check_not_inputs([os.path.join(dst, x) for x in names], seq_inputs)
            _check_clashes(dst, names, owned, args.overwrite)
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
                _install_dir(tmp, dst, info['files'], owned)
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
        owned[n] = _plain_names((finished.get(n) or {}).get('files')) | _plain_names(writing.get(n))
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
            _check_clashes(dst, info['files'], owned[n], args.overwrite)
            writing[n] = sorted(owned[n] | set(info['files']))
            save()
            with writing_output(dst):
                _install_dir(tmps[n], dst, info['files'], owned[n])
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
