"""DAVIS region similarity J and boundary accuracy F.

Definitions follow the DAVIS benchmark (davis2017-evaluation, `davisinteractive.metrics`):

* J (region similarity): |A ∩ B| / |A ∪ B| of one object's masks; 1 when both are empty.
  Pixels labelled 255 in the ground truth are "void" and ignored.
* F (boundary accuracy): boundaries are extracted with `seg2bmap` (1-pixel boundaries offset
  half a pixel towards the origin); each boundary is dilated with a disk of radius
  ceil(bound_th * image diagonal) (bound_th = 0.008, i.e. 8 px at 854x480); precision is the
  fraction of predicted boundary pixels within the dilated ground-truth boundary, recall the
  reverse, F = 2PR / (P + R). Empty/empty gives 1; only one empty gives 0.
* Per object per sequence: mean over frames (M), recall = fraction of frames > 0.5 (R), decay =
  mean of the first quarter of frames minus mean of the last quarter (D).
* Semi-supervised evaluation excludes the first and last annotated frames of each sequence (the
  first is given as input); an object counts once per sequence. Dataset-level numbers are means
  over all objects of all sequences (J&F = (J-Mean + F-Mean) / 2), as in the DAVIS tables.

Numbers agree with `davisinteractive.metrics` to float precision (tests/test_metrics.py).
"""
import math
import os
import warnings

import cv2
import numpy as np

from util.errors import UserError

VOID_LABEL = 255
BOUND_TH = 0.008


# ---------------------------------------------------------------------------- per mask
def _mask_pair(gt, pred, void):
    """Boolean gt and pred of the same shape, with the `void` pixels cleared in both."""
    gt = np.asarray(gt, bool)
    pred = np.asarray(pred, bool)
    if gt.shape != pred.shape:
        raise ValueError(f'mask shapes differ: {gt.shape} vs {pred.shape}')
    if void is not None:
        keep = ~np.asarray(void, bool)
        gt, pred = gt & keep, pred & keep
    return gt, pred


def jaccard(gt, pred, void=None):
    """Region similarity of two boolean masks (H, W); `void` marks ignored pixels."""
    gt, pred = _mask_pair(gt, pred, void)
    union = np.count_nonzero(gt | pred)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred) / union


def seg2bmap(seg):
    """Binary boundary map of a mask (D. Martin's seg2bmap, as in the DAVIS code): a pixel is a
    boundary pixel when it differs from its east, south or south-east neighbour."""
    seg = np.asarray(seg, bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


_DISKS = {}


def disk(radius):
    """uint8 disk structuring element, identical to skimage.morphology.disk(radius)."""
    radius = int(radius)
    d = _DISKS.get(radius)
    if d is None:
        r = np.arange(-radius, radius + 1)
        d = ((r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius).astype(np.uint8)
        _DISKS[radius] = d
    return d


def boundary_tolerance(shape, bound_th=BOUND_TH):
    """Dilation radius in pixels: bound_th itself when >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def boundary_f(gt, pred, void=None, bound_th=BOUND_TH, _gt_cache=None):
    """Boundary F-measure of two boolean masks (H, W) (DAVIS `f_measure`)."""
    gt, pred = _mask_pair(gt, pred, void)
    se = disk(boundary_tolerance(gt.shape, bound_th))
    fg_b = seg2bmap(pred)
    gt_b = seg2bmap(gt)
    n_fg = np.count_nonzero(fg_b)
    n_gt = np.count_nonzero(gt_b)
    if n_fg == 0 or n_gt == 0:
        # empty/empty -> P=R=1 -> F=1; one side empty -> P or R is 0 -> F=0
        return 1.0 if n_fg == n_gt else 0.0
    fg_dil = cv2.dilate(fg_b.view(np.uint8), se).view(bool)
    gt_dil = cv2.dilate(gt_b.view(np.uint8), se).view(bool)
    precision = np.count_nonzero(fg_b & gt_dil) / n_fg
    recall = np.count_nonzero(gt_b & fg_dil) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------- per label map
def frame_scores(gt_labels, pred_labels, object_ids, bound_th=BOUND_TH, with_f=True):
    """J and F of each object in one frame. Label maps (H, W); ground-truth 255 is void.
    Returns two float arrays of len(object_ids) (F is all NaN when with_f=False)."""
    gt_labels = np.asarray(gt_labels)
    pred_labels = np.asarray(pred_labels)
    if gt_labels.shape != pred_labels.shape:
        raise ValueError(f'label map shapes differ: {gt_labels.shape} vs {pred_labels.shape}')
    void = gt_labels == VOID_LABEL
    if not void.any():
        void = None
    js = np.empty(len(object_ids))
    fs = np.full(len(object_ids), np.nan)
    for i, k in enumerate(object_ids):
        g, p = gt_labels == k, pred_labels == k
        js[i] = jaccard(g, p, void)
        if with_f:
            fs[i] = boundary_f(g, p, void, bound_th)
    return js, fs


def db_statistics(values):
    """(mean, recall, decay) of per-frame values, as DAVIS `db_statistics` (NaNs ignored).

    Decay: the frames are split into 4 bins at round(linspace(1, n, 5)) - 1; decay = mean of
    the first bin - mean of the last bin."""
    v = np.asarray(values, float)
    if v.size == 0:
        return float('nan'), float('nan'), float('nan')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', category=RuntimeWarning)
        m = np.nanmean(v)
        r = np.nanmean(v > 0.5)
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(int)
        first, last = v[ids[0]:ids[1] + 1], v[ids[3]:ids[4] + 1]
        d = np.nanmean(first) - np.nanmean(last)
    return float(m), float(r), float(d)


def evaluate_sequence(gt, pred, object_ids=None, skip_first_last=True, bound_th=BOUND_TH,
                      name='', with_f=True, progress=None, should_cancel=None):
    """Score one sequence.

    gt, pred: sequences (lists or (T,H,W) arrays) of label maps for the same frames.
    object_ids: objects to score (default: every id 1..254 present in any ground-truth frame).
    skip_first_last: semi-supervised protocol; drops the first and the last frame.
    Returns a dict: name, objects, frames (indices scored), J and F ((n_frames, K) lists),
    and per-object stats {'J': {'mean','recall','decay'}, 'F': {...}} plus the sequence
    'J&F' (mean over its objects). None when cancelled.
    """
    n = len(gt)
    if len(pred) != n:
        raise ValueError(f'{name}: {len(pred)} predicted frames for {n} ground-truth frames')
    frames = list(range(n))
    if skip_first_last:
        frames = frames[1:-1]
    if object_ids is None:
        present = set()
        for g in gt:
            present.update(int(v) for v in np.unique(g))
        object_ids = sorted(v for v in present if 0 < v < VOID_LABEL)
    object_ids = [int(k) for k in object_ids]
    J = np.full((len(frames), len(object_ids)), np.nan)
    F = np.full((len(frames), len(object_ids)), np.nan)
    for i, t in enumerate(frames):
        if should_cancel is not None and should_cancel():
            return None
        J[i], F[i] = frame_scores(gt[t], pred[t], object_ids, bound_th, with_f)
        if progress is not None:
            progress(i + 1, len(frames))
    return summarize_sequence(name, object_ids, frames, J, F)


def summarize_sequence(name, object_ids, frames, J, F):
    """Build the per-sequence result dict from per-frame score arrays (n_frames, K)."""
    J = np.asarray(J, float).reshape(len(frames), len(object_ids))
    F = np.asarray(F, float).reshape(len(frames), len(object_ids))
    objects = []
    for i, k in enumerate(object_ids):
        jm, jr, jd = db_statistics(J[:, i])
        fm, fr, fd = db_statistics(F[:, i])
        objects.append({'id': k,
                        'J': {'mean': jm, 'recall': jr, 'decay': jd},
                        'F': {'mean': fm, 'recall': fr, 'decay': fd}})
    jmean = _nanmean([o['J']['mean'] for o in objects])
    fmean = _nanmean([o['F']['mean'] for o in objects])
    return {'name': name, 'objects': objects, 'frames': list(frames),
            'J_per_frame': J.tolist(), 'F_per_frame': F.tolist(),
            'J': jmean, 'F': fmean, 'J&F': _jf(jmean, fmean)}


def _nanmean(vals):
    vals = [v for v in vals if v is not None and not np.isnan(v)]
    return float(np.mean(vals)) if vals else float('nan')


def _jf(j, f):
    if np.isnan(f):
        return j
    return (j + f) / 2


def summarize(results):
    """Dataset-level numbers over all objects of all sequences (DAVIS global table)."""
    objs = [o for r in results for o in r['objects']]
    out = {}
    for key in ('J', 'F'):
        for stat in ('mean', 'recall', 'decay'):
            out[f'{key}-{stat.capitalize()}'] = _nanmean([o[key][stat] for o in objs])
    out['J&F-Mean'] = _jf(out['J-Mean'], out['F-Mean'])
    out['sequences'] = len(results)
    out['objects'] = len(objs)
    return out


# ---------------------------------------------------------------------------- folders
MASK_EXT = '.png'


def mask_sequence_dirs(root):
    """{sequence name: folder of mask PNGs} for a results or ground-truth folder.

    Accepted layouts: a DAVIS root (Annotations/480p/<seq>), a YouTube-VOS root
    (Annotations/<seq>), ../shared/data/davis2016-train (masks/<seq>), a folder of sequence
    folders (<seq>/*.png), or one sequence folder holding the PNGs itself (named after it)."""
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise UserError(f'folder not found: {root}')
    for sub in (('Annotations', '480p'), ('Annotations', 'Full-Resolution'), ('Annotations',),
                ('masks',)):
        cand = os.path.join(root, *sub)
        if os.path.isdir(cand) and _subdirs_with_pngs(cand):
            return _subdirs_with_pngs(cand)
    if _pngs(root):
        return {os.path.basename(root): root}
    seqs = _subdirs_with_pngs(root)
    if not seqs:
        raise UserError(f'no mask PNGs found in {root} (expected <seq>/*.png, '
                        f'Annotations/480p/<seq>/*.png or *.png)')
    return seqs


def _pngs(folder):
    """The mask PNGs in `folder` ([] when it is not there); a folder that cannot be read is a
    one-line UserError (an unreadable sequence folder used to look like one without masks)."""
    from util.frames_io import read_folder
    if not os.path.lexists(folder) or (os.path.exists(folder) and not os.path.isdir(folder)):
        return []
    names = read_folder(folder)
    return [n for n in names if n.lower().endswith(MASK_EXT) and not n.startswith('.')]


def _subdirs_with_pngs(folder):
    from util.frames_io import read_folder
    out = {}
    for n in sorted(read_folder(folder)):
        p = os.path.join(folder, n)
        if not n.startswith('.') and os.path.isdir(p) and _pngs(p):
            out[n] = p
    return out


def _stem_map(folder):
    from util.frames_io import natural_key
    names = sorted(_pngs(folder), key=natural_key)
    return {os.path.splitext(n)[0]: os.path.join(folder, n) for n in names}


def evaluate_folders(pred_root, gt_root, sequences=None, skip_first_last=True,
                     bound_th=BOUND_TH, progress=None, should_cancel=None):
    """Score every ground-truth sequence (or `sequences`) against the prediction folder.

    Frames are matched by file name; every ground-truth frame needs a prediction of the same
    size. Objects are the ids in the ground truth; predicted ids absent from the ground truth
    are an error (as in the DAVIS benchmark). progress(done, total) counts frames.
    Returns (per-sequence results, summary) or None when cancelled.
    """
    from util.mask_io import MaskNotes
    notes = MaskNotes()
    try:
        return _evaluate_folders(pred_root, gt_root, sequences, skip_first_last, bound_th,
                                 progress, should_cancel, notes)
    finally:
        notes.flush()        # how grey masks were read: one line per rule


def _evaluate_folders(pred_root, gt_root, sequences, skip_first_last, bound_th, progress,
                      should_cancel, notes):
    from util.mask_io import read_label_png
    gt_seqs = mask_sequence_dirs(gt_root)
    pred_seqs = mask_sequence_dirs(pred_root)
    if sequences:
        missing = [s for s in sequences if s not in gt_seqs]
        if missing:
            raise UserError(f'sequence {missing[0]!r} has no ground truth in {gt_root}')
        names = list(dict.fromkeys(sequences))
    else:
        names = list(gt_seqs)
    if _pngs(gt_root) and _pngs(pred_root):
        # two single-sequence folders of PNGs: compare them whatever their names
        pred_seqs = {names[0]: next(iter(pred_seqs.values()))}
    missing = [s for s in names if s not in pred_seqs]
    if missing:
        raise UserError(f'no predictions for sequence {missing[0]!r} in {pred_root}'
                        + (f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''))

    plan = []
    for s in names:
        gt_files = _stem_map(gt_seqs[s])
        pred_files = _stem_map(pred_seqs[s])
        lost = [k for k in gt_files if k not in pred_files]
        if lost:
            raise UserError(f'{s}: no predicted mask for frame {lost[0]!r} '
                            f'({len(lost)} of {len(gt_files)} frames missing)')
        plan.append((s, gt_files, pred_files))
    total = sum(max(len(g) - (2 if skip_first_last else 0), 0) for _, g, _ in plan)
    done = 0
    results = []
    for s, gt_files, pred_files in plan:
        stems = list(gt_files)
        gts = [read_label_png(gt_files[k], notes) for k in stems]
        obj_ids = sorted({int(v) for g in gts for v in np.unique(g)} - {0, VOID_LABEL})
        frames = list(range(len(stems)))[1:-1] if skip_first_last else list(range(len(stems)))
        J = np.full((len(frames), len(obj_ids)), np.nan)
        F = np.full((len(frames), len(obj_ids)), np.nan)
        for i, t in enumerate(frames):
            if should_cancel is not None and should_cancel():
                return None
            g = gts[t]
            p = read_label_png(pred_files[stems[t]], notes)
            if p.shape != g.shape:
                raise UserError(f'{s}/{stems[t]}: prediction is {p.shape[1]}x{p.shape[0]} but the '
                                f'ground truth is {g.shape[1]}x{g.shape[0]}')
            extra = set(np.unique(p).tolist()) - set(obj_ids) - {0}
            if extra:
                raise UserError(f'{s}/{stems[t]}: predicted object id {min(extra)} is not in the '
                                f'ground truth (objects {obj_ids or "none"})')
            J[i], F[i] = frame_scores(g, p, obj_ids, bound_th)
            done += 1
            if progress is not None:
                progress(done, total)
        r = summarize_sequence(s, obj_ids, frames, J, F)
        r['frame_names'] = [stems[t] for t in frames]
        results.append(r)
    return results, summarize(results)
