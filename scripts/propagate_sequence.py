"""One sequence of scripts.propagate: read its given masks, propagate them (Runner), write
the PNGs and the other --export formats into a temp folder (the caller moves it into place)."""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from util.atomic import write_bytes
from util.errors import UserError, write_error, writing_output
from util.labels import resize_labels
from util.tensor_util import argmax0


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
