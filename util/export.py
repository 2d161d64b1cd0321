"""Export masks of a FrameStore at the ORIGINAL resolution. Every file is written atomically
(temp file in the same folder + os.replace), so a crash or cancel never leaves a half-written
file; files already exported stay complete.

Formats (names for `export(..., formats=[...])`):
  'png'      indexed PNGs with the DAVIS palette, <out>/masks/<frame>.png (index = object id;
             what DAVIS / YouTube-VOS tools read)
  'objects'  per-object binary PNGs 0/255, <out>/objects/<object name or id>/<frame>.png
  'mp4'      colour overlay video for review, <out>/overlay.mp4 (mp4v)
  'rle'      COCO-style RLE JSON per frame, <out>/rle/<frame>.json
"""
import io
import json
import os
import re

import cv2
import numpy as np
from PIL import Image

from util import rle as rle_mod
from util.atomic import atomic_path, ensure_writable_dir, write_bytes, write_json
from util.errors import UserError
from util.palette import davis_palette_flat, overlay

FORMATS = ('png', 'objects', 'mp4', 'rle')
_ALIASES = {'indexed': 'png', 'palette': 'png', 'binary': 'objects', 'per-object': 'objects',
            'video': 'mp4', 'overlay': 'mp4', 'coco': 'rle', 'json': 'rle'}


def _frames_arg(store, frames):
    if frames is None:
        return list(range(store.num_frames))
    out = sorted({int(t) for t in frames})
    for t in out:
        if not 0 <= t < store.num_frames:
            raise UserError(f'frame {t} out of range 0..{store.num_frames - 1}')
    return out


class _Steps:
    """Shared progress/cancel bookkeeping over several exporters."""

    def __init__(self, total, progress, should_cancel):
        self.done, self.total = 0, total
        self.progress, self.should_cancel = progress, should_cancel

    def cancelled(self):
        return self.should_cancel is not None and bool(self.should_cancel())

    def step(self):
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def indexed_png_bytes(labels):
    """uint8 label map -> PNG bytes, palette mode with the DAVIS palette."""
    im = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), mode='P')
    im.putpalette(davis_palette_flat())
    buf = io.BytesIO()
    im.save(buf, format='PNG', optimize=False)
    return buf.getvalue()


def binary_png_bytes(mask):
    im = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode='L')
    buf = io.BytesIO()
    im.save(buf, format='PNG')
    return buf.getvalue()


def _per_frame(frames, steps, write_frame):
    """Call write_frame(t) for each frame, checking for cancel between frames (False if cancelled)."""
    for t in frames:
        if steps.cancelled():
            return False
        write_frame(t)
        steps.step()
    return True


def export_indexed_pngs(store, out_dir, frames=None, progress=None, should_cancel=None, _steps=None):
    """<out_dir>/<frame name>.png, DAVIS palette. Returns False when cancelled."""
    frames = _frames_arg(store, frames)
    ensure_writable_dir(out_dir)
    steps = _steps or _Steps(len(frames), progress, should_cancel)
    return _per_frame(frames, steps, lambda t: write_bytes(
        os.path.join(out_dir, f'{store.frame_names[t]}.png'), indexed_png_bytes(store.mask_at_original(t))))


def object_dir_names(store):
    """{id: folder name}: the object's name made file-system safe, or its id when the name is
    empty or taken by another object."""
    names, used = {}, set()
    for o in store.objects:
        n = re.sub(r'[<>:"/\\|?*\x00-\x1f]', '_', o.name).strip().strip('.')
        if not n or n.lower() in used or n.upper() in ('CON', 'PRN', 'AUX', 'NUL'):
            n = str(o.id)
        if n.lower() in used:
            n = f'{o.id}_{n}'
        used.add(n.lower())
        names[o.id] = n
    return names


def export_object_pngs(store, out_dir, frames=None, progress=None, should_cancel=None, _steps=None):
    """<out_dir>/<object name or id>/<frame name>.png, 0/255 per object. False if cancelled."""
    frames = _frames_arg(store, frames)
    dirs = object_dir_names(store)
    ensure_writable_dir(out_dir)
    for d in dirs.values():
        ensure_writable_dir(os.path.join(out_dir, d))
    steps = _steps or _Steps(len(frames), progress, should_cancel)

    def write_frame(t):
        labels = store.mask_at_original(t)
        for obj_id, d in dirs.items():
            write_bytes(os.path.join(out_dir, d, f'{store.frame_names[t]}.png'),
                        binary_png_bytes(labels == obj_id))
    return _per_frame(frames, steps, write_frame)


def frame_rle(store, t, labels=None):
    """COCO-style record of frame t at the original resolution (objects present only)."""
    labels = store.mask_at_original(t) if labels is None else labels
    present = set(np.unique(labels).tolist()) - {0}
    objs = []
    for o in store.objects:
        if o.id not in present:
            continue
        m = labels == o.id
        enc = rle_mod.encode(m)
        objs.append({'id': o.id, 'name': o.name, 'color': list(o.color),
                     'area': int(m.sum()), 'bbox': rle_mod.bbox(m), 'segmentation': enc})
    return {'frame': store.frame_names[t], 'index': int(t), 'height': store.orig_height,
            'width': store.orig_width, 'objects': objs}


def labels_from_rle_record(record):
    """Inverse of frame_rle: (H,W) uint8 label map."""
    labels = np.zeros((record['height'], record['width']), np.uint8)
    for o in record['objects']:
        labels[rle_mod.decode(o['segmentation']).astype(bool)] = o['id']
    return labels


def export_rle_json(store, out_dir, frames=None, progress=None, should_cancel=None, _steps=None):
    """<out_dir>/<frame name>.json with COCO compressed RLE per object. False if cancelled."""
    frames = _frames_arg(store, frames)
    ensure_writable_dir(out_dir)
    steps = _steps or _Steps(len(frames), progress, should_cancel)
    return _per_frame(frames, steps, lambda t: write_json(
        os.path.join(out_dir, f'{store.frame_names[t]}.json'), frame_rle(store, t)))


def _source_frames(store):
    """Original-resolution frames from store.source when it can be re-read frame for frame,
    else None (then processing frames are upscaled)."""
    src = store.source
    if not src or not os.path.exists(src):
        return None
    from util.frames_io import IMAGE_EXTS, list_image_files, read_image
    oh, ow = store.orig_height, store.orig_width
    if os.path.isdir(src) or os.path.splitext(src)[1].lower() in IMAGE_EXTS:
        files = list_image_files(src) if os.path.isdir(src) else [src]
        if [os.path.splitext(os.path.basename(f))[0] for f in files] != store.frame_names:
            return None

        def gen_files(t_list):
            for t in t_list:
                img = read_image(files[t])
                yield img if img.shape[:2] == (oh, ow) else None
        return gen_files

    def gen_video(t_list):
        cap = cv2.VideoCapture(src)
        try:
            want = set(t_list)
            t = 0
            last = max(t_list) if t_list else -1
            while t <= last:
                ok, bgr = cap.read()
                if not ok:
                    break
                if t in want:
                    yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.shape[:2] == (oh, ow) else None
                t += 1
        finally:
            cap.release()
    if os.name == 'nt' and not src.isascii():
        return None
    return gen_video


def export_overlay_mp4(store, path, frames=None, fps=None, alpha=0.5, progress=None,
                       should_cancel=None, _steps=None):
    """Colour-overlay review video at the original resolution (mp4v). Object colours and
    visibility come from the store. False if cancelled (no file is left behind)."""
    frames = _frames_arg(store, frames)
    path = os.fspath(path)
    ensure_writable_dir(os.path.dirname(os.path.abspath(path)))
    fps = float(fps or store.fps or 24.0)
    oh, ow = store.orig_height, store.orig_width
    # yuv420p needs even sizes: pad by one pixel row/column when odd.
    vh, vw = oh + (oh % 2), ow + (ow % 2)
    colors = store.colors()
    visible = [o.id for o in store.objects if o.visible]
    steps = _steps or _Steps(len(frames), progress, should_cancel)
    src = _source_frames(store)
    src_iter = src(frames) if src is not None else None

    tmp_dir = os.path.dirname(os.path.abspath(path))
    # cv2.VideoWriter may not open non-ASCII paths on Windows: render next to the output under
    # an ASCII temp name (the folder name is the only remaining risk there).
    try:
        with atomic_path(path, suffix='.mp4') as tmp:
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), fps, (vw, vh))
            if not writer.isOpened():
                raise UserError('cannot write video (mp4v encoder unavailable or folder not '
                                f'writable): {tmp_dir}')
            try:
                for t in frames:
                    if steps.cancelled():
                        raise _Cancel   # atomic_path removes the partial temp file
                    img = next(src_iter, None) if src_iter is not None else None
                    if img is None:
                        img = cv2.resize(np.asarray(store.frame(t)), (ow, oh),
                                         interpolation=cv2.INTER_CUBIC)
                    vis = overlay(img, store.mask_at_original(t), colors, alpha=alpha,
                                  visible=visible)
                    if (vh, vw) != (oh, ow):
                        vis = cv2.copyMakeBorder(vis, 0, vh - oh, 0, vw - ow, cv2.BORDER_REPLICATE)
                    writer.write(cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
                    steps.step()
            finally:
                writer.release()
                if src_iter is not None:
                    src_iter.close()
    except _Cancel:
        return False
    return True


class _Cancel(Exception):
    pass


def export(store, out_dir, formats=('png',), frames=None, fps=None, alpha=0.5, progress=None,
           should_cancel=None):
    """Export in several formats under `out_dir` (layout in the module docstring).
    Returns True when complete, False when cancelled (files written so far are complete)."""
    if isinstance(formats, str):
        formats = [formats]
    fmts = []
    for f in formats:
        f = _ALIASES.get(str(f).lower(), str(f).lower())
        if f not in FORMATS:
            raise UserError(f'unknown export format {f!r} (choose from {", ".join(FORMATS)})')
        if f not in fmts:
            fmts.append(f)
    if not fmts:
        raise UserError('no export format given')
    frames = _frames_arg(store, frames)
    out_dir = ensure_writable_dir(out_dir)
    steps = _Steps(len(frames) * len(fmts), progress, should_cancel)
    for f in fmts:
        if f == 'png':
            ok = export_indexed_pngs(store, os.path.join(out_dir, 'masks'), frames, _steps=steps)
        elif f == 'objects':
            ok = export_object_pngs(store, os.path.join(out_dir, 'objects'), frames, _steps=steps)
        elif f == 'rle':
            ok = export_rle_json(store, os.path.join(out_dir, 'rle'), frames, _steps=steps)
        else:
            ok = export_overlay_mp4(store, os.path.join(out_dir, 'overlay.mp4'), frames,
                                    fps=fps, alpha=alpha, _steps=steps)
        if not ok:
            return False
    return True


def read_rle_json(path):
    """Load one exported RLE JSON and return (record, labels)."""
    with open(path, encoding='utf-8') as f:
        rec = json.load(f)
    return rec, labels_from_rle_record(rec)
