"""Export the masks of a FrameStore at the ORIGINAL resolution, for the GUI and the CLIs alike.

Formats (names for `export(..., formats=[...])`, with the tools that read them):
  'png'      indexed PNGs with the DAVIS palette, <out>/masks/<frame>.png (index = object id):
             DAVIS / YouTube-VOS evaluation code, most VOS training code
  'objects'  per-object binary PNGs 0/255, <out>/objects/<object name or id>/<frame>.png:
             any image tool, matting and compositing software
  'soft'     per-object probabilities 0..255, <out>/soft/<object name or id>/<frame>.png
             (see soft_maps): matting, training with soft labels
  'coco'     one COCO instance file for the video, <out>/annotations.json (RLE via pycocotools,
             bbox, area, track_id; util/coco_io.py): pycocotools, CVAT, FiftyOne, Label Studio
  'ytvis'    YouTube-VIS file, <out>/ytvis.json: YouTube-VIS / OVIS video-instance tooling
  'mp4'      colour-overlay review video, <out>/overlay.mp4: H.264 (yuv420p, +faststart) at
             the source's frame rate and timestamps; plays in web browsers and chat apps

An export is all-or-nothing: every file is first written into a hidden staging folder inside
<out>, the overlay video is re-opened and its frames counted, and only then are the files moved
into place (util/export_move.py: every destination folder is prepared and checked first, files
for a folder on another file system are copied next to it first, and a failure while moving
puts back what had moved). A failure (full disk, a read-only folder, cancel, anything) leaves
the previous export untouched, removes the staging folder, and its message says so. Staging
folders left by an export that was killed are removed by the next export into that folder.
Existing files are only replaced with overwrite=True, and an output
inside an input folder (the frames, the masks that were loaded) is refused.
"""
import io
import os
import re
import shutil

import cv2
import numpy as np
from PIL import Image

from util.atomic import ensure_writable_dir, write_bytes, write_json
from util.errors import UserError, os_reason
from util.export_move import STAGING_PREFIX, blocked_paths, make_staging, move_into_place  # noqa: F401 (public)
from util.palette import davis_palette_flat, overlay

FORMATS = ('png', 'objects', 'soft', 'coco', 'ytvis', 'mp4')
_ALIASES = {'indexed': 'png', 'palette': 'png', 'binary': 'objects', 'per-object': 'objects',
            'video': 'mp4', 'overlay': 'mp4', 'rle': 'coco', 'json': 'coco',
            'youtube-vis': 'ytvis', 'vis': 'ytvis', 'probabilities': 'soft', 'prob': 'soft'}
COCO_FILE, YTVIS_FILE, MP4_FILE = 'annotations.json', 'ytvis.json', 'overlay.mp4'


def normalize_formats(formats):
    if isinstance(formats, str):
        formats = [formats]
    out = []
    for f in formats:
        f = _ALIASES.get(str(f).lower(), str(f).lower())
        if f not in FORMATS:
            raise UserError(f'unknown export format {f!r} (choose from {", ".join(FORMATS)})')
        if f not in out:
            out.append(f)
    if not out:
        raise UserError('no export format given')
    return out


def _frames_arg(store, frames):
    if frames is None:
        return list(range(store.num_frames))
    out = sorted({int(t) for t in frames})
    for t in out:
        if not 0 <= t < store.num_frames:
            raise UserError(f'frame {t} out of range 0..{store.num_frames - 1}')
    return out


class _Steps:
    """Progress/cancel bookkeeping over several exporters."""

    def __init__(self, total, progress, should_cancel):
        self.done, self.total = 0, total
        self.progress, self.should_cancel = progress, should_cancel

    def check(self):
        if self.should_cancel is not None and self.should_cancel():
            raise _Cancel

    def step(self):
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


class _Cancel(Exception):
    pass


# ---------------------------------------------------------------------------- encoders
def indexed_png_bytes(labels):
    """uint8 label map -> PNG bytes, palette mode with the DAVIS palette."""
    im = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), mode='P')
    im.putpalette(davis_palette_flat())
    buf = io.BytesIO()
    im.save(buf, format='PNG', optimize=False)
    return buf.getvalue()


def grey_png_bytes(values):
    """uint8 (H, W) -> 8-bit greyscale PNG bytes."""
    im = Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8), mode='L')
    buf = io.BytesIO()
    im.save(buf, format='PNG')
    return buf.getvalue()


def binary_png_bytes(mask):
    return grey_png_bytes(np.where(mask, 255, 0).astype(np.uint8))


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


def soft_maps(labels, prob, object_ids):
    """Per-object soft masks (len(object_ids), H, W) uint8 at the size of `labels`.

    `prob` is the engine's probability (K+1, h, w) float, background first, at any size (it is
    resized bilinearly), or None. Fallback where only labels exist (prob None: a frame set by
    painting or loading, or evicted from the probability cache): 255 inside the object's label,
    0 elsewhere.

    The soft masks always agree with `labels` under the rule a consumer applies to the files
    (soft_labels): label = argmax over [255 - sum of the objects' soft values, soft_1 ..
    soft_n], ties going to the lower index (background first). Wherever the rounded, resized
    probabilities give another label under that rule (a thin band at object edges, or where
    the labels were edited after the network ran), the hard values (255 for the labelled
    object, 0 for the others) are written instead."""
    h, w = labels.shape
    ids = [int(i) for i in object_ids]
    k = max(ids, default=0)
    hard = (labels[None] == np.asarray(ids, np.uint8)[:, None, None])
    if prob is None or prob.shape[0] < k + 1:
        return np.where(hard, 255, 0).astype(np.uint8)
    p = np.asarray(prob, np.float32)
    if p.shape[1:] != (h, w):
        p = np.stack([cv2.resize(p[i], (w, h), interpolation=cv2.INTER_LINEAR) for i in ids])
    else:
        p = p[ids]
    q = np.clip(np.round(p * 255), 0, 255).astype(np.uint8)
    wrong = soft_labels(q, ids) != labels
    if wrong.any():
        q[:, wrong] = np.where(hard[:, wrong], 255, 0)
    return q


def soft_labels(soft, object_ids):
    """The label map a consumer reads from soft masks (n, H, W) uint8 of `object_ids`: argmax
    over [255 - sum, soft_1 .. soft_n], ties to the lower index (background first)."""
    soft = np.asarray(soft)
    if not len(soft):
        return np.zeros(soft.shape[1:], np.uint8)
    bg = 255 - soft.sum(0, dtype=np.int32)
    best = np.argmax(soft, axis=0)                  # first maximum: the lower index on ties
    top = np.take_along_axis(soft, best[None], 0)[0].astype(np.int32)
    ids = np.asarray(object_ids, np.uint8)
    return np.where(bg >= top, 0, ids[best]).astype(np.uint8)


# ---------------------------------------------------------------------------- writers
def _write_pngs(store, frames, steps, path_of, encode):
    for t in frames:
        steps.check()
        for rel, data in encode(t):
            write_bytes(path_of(rel), data)
        steps.step()


def _write_overlay_mp4(store, frames, path, fps, alpha, steps):
    from util.frames_io import source_frames
    from util.video_io import H264Writer, count_frames
    oh, ow = store.orig_height, store.orig_width
    fps = float(fps or store.fps or 24.0)
    colors = store.colors()
    visible = [o.id for o in store.objects if o.visible]
    ts = store.timestamps if fps == (store.fps or fps) else None
    src = source_frames(store, frames)
    try:
        with H264Writer(path, (oh, ow), fps) as writer:
            t0 = ts[frames[0]] if ts else None
            for t in frames:
                steps.check()
                img = next(src, None)
                if img is None:
                    img = cv2.resize(np.asarray(store.frame(t)), (ow, oh), interpolation=cv2.INTER_CUBIC)
                vis = overlay(img, store.mask_at_original(t), colors, alpha=alpha, visible=visible)
                writer.write(vis, timestamp=None if ts is None else ts[t] - t0)
                steps.step()
    finally:
        if hasattr(src, 'close'):
            src.close()
    codec, n = count_frames(path)
    if codec != 'h264' or n != len(frames):
        raise UserError(f'the overlay video did not verify ({codec}, {n} of {len(frames)} '
                        'frames decoded): nothing was replaced')


def _annotation_json(store, frames, builder_cls, steps, images):
    """The COCO / YouTube-VIS dict; images: the ImagePlan naming each frame's image file."""
    from util.coco_images import video_name
    b = builder_cls(video_name(store), (store.orig_height, store.orig_width), store.objects,
                    fps=store.fps)
    ts = store.timestamps
    for t in frames:
        steps.check()
        b.add_frame(t, store.frame_names[t], images.names[t], store.mask_at_original(t),
                    timestamp=None if ts is None else round(float(ts[t]), 6))
        steps.step()
    return b.to_dict()


def _image_plan(store, fmts, frames, out_dir, coco_images):
    """The ImagePlan of an export (None without COCO / YouTube-VIS)."""
    if not any(f in ('coco', 'ytvis') for f in fmts):
        return None
    from util.coco_images import plan_images
    return plan_images(store, frames, out_dir, coco_images)


# ---------------------------------------------------------------------------- planning
def output_paths(store, out_dir, formats, coco_images='write'):
    """Final paths an export of `formats` writes (relative to out_dir), in write order."""
    dirs = object_dir_names(store)
    rels = []
    fmts = normalize_formats(formats)
    plan = _image_plan(store, fmts, range(store.num_frames), os.path.abspath(os.fspath(out_dir)),
                       coco_images)
    for f in fmts:
        if plan is not None and f in ('coco', 'ytvis'):
            rels += [os.path.join(*rel.split('/')) for _t, rel, _src in plan.writes]
            plan = None                      # written once for both JSON files
        if f == 'png':
            rels += [os.path.join('masks', f'{n}.png') for n in store.frame_names]
        elif f in ('objects', 'soft'):
            for d in dirs.values():
                rels += [os.path.join(f, d, f'{n}.png') for n in store.frame_names]
        elif f == 'coco':
            rels.append(COCO_FILE)
        elif f == 'ytvis':
            rels.append(YTVIS_FILE)
        else:
            rels.append(MP4_FILE)
    return rels


def existing_outputs(store, out_dir, formats, coco_images='write'):
    """The files an export would replace (absolute paths): ask before replacing them."""
    out_dir = os.fspath(out_dir)
    return [os.path.join(out_dir, r) for r in output_paths(store, out_dir, formats, coco_images)
            if os.path.lexists(os.path.join(out_dir, r))]


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_not_input(out_dir, rels, inputs):
    """Refuse an export that would write into an input folder or over an input file."""
    for src in inputs:
        if not src or not os.path.exists(src):
            continue
        if os.path.isdir(src):
            if _inside(out_dir, src):
                raise UserError(f'the export folder is inside an input folder ({src}): '
                                'choose another folder')
            for r in rels:
                if _inside(os.path.join(out_dir, r), src):
                    raise UserError(f'exporting to {out_dir} would write into the input folder '
                                    f'{src}: choose another folder')
        elif any(os.path.realpath(os.path.join(out_dir, r)) == os.path.realpath(src) for r in rels):
            raise UserError(f'exporting to {out_dir} would replace the input file {src}: '
                            'choose another folder')


# ---------------------------------------------------------------------------- export
def export(store, out_dir, formats=('png',), frames=None, fps=None, alpha=0.5, progress=None,
           should_cancel=None, soft=None, overwrite=False, inputs=(), coco_images='write'):
    """Export `formats` (see the module docstring) of `frames` (default: all) under `out_dir`.

    soft(t) -> probabilities (K+1, h, w) or None, for 'soft' (the Session's soft probabilities).
    overwrite: replace existing files (False: a UserError lists how many would be replaced).
    inputs: paths never to write into or over, besides store.source (e.g. the masks folder).
    coco_images: 'write' the frames the COCO / YouTube-VIS files name next to them, or point
    at the 'source' images (an image folder only; util/coco_images.py).
    Returns True when complete, False when cancelled; cancel and errors leave `out_dir` as it
    was (a UserError says why in one line)."""
    fmts = normalize_formats(formats)
    frames = _frames_arg(store, frames)
    out_dir = os.path.abspath(os.fspath(out_dir))
    rels = output_paths(store, out_dir, fmts, coco_images)
    check_not_input(out_dir, rels, [store.source, *inputs])
    if not overwrite:
        existing = existing_outputs(store, out_dir, fmts, coco_images)
        if existing:
            raise UserError(f'{len(existing)} files would be replaced in {out_dir} (e.g. '
                            f'{os.path.relpath(existing[0], out_dir)}): allow overwriting')
    found = blocked_paths(out_dir, rels)         # before the work: a file where a folder goes
    if found:
        raise UserError(f'cannot export to {out_dir}: {found[0]} {found[1]} (move it away or '
                        f'choose another folder); nothing was written or replaced')
    ensure_writable_dir(out_dir)
    images = _image_plan(store, fmts, frames, out_dir, coco_images)
    steps = _Steps(len(frames) * len(fmts) + (len(images.writes) if images else 0),
                   progress, should_cancel)
    stage = make_staging(out_dir)
    keep_stage = False
    try:
        _write_all(store, fmts, frames, stage, fps, alpha, soft, steps, images)
        steps.check()
        move_into_place(stage, out_dir)       # all or nothing, its message says what is on disk
    except _Cancel:
        return False
    except UserError as e:
        keep_stage = getattr(e, 'keep_stage', False)
        raise
    except OSError as e:      # full disk, I/O error (PyAV's errors are OSErrors too)
        raise UserError(f'export failed, nothing was replaced in {out_dir}: '
                        f'{e.strerror or os_reason(e)}') from None
    finally:
        if not keep_stage:
            shutil.rmtree(stage, ignore_errors=True)
    return True


def _write_all(store, fmts, frames, stage, fps, alpha, soft, steps, images=None):
    dirs = object_dir_names(store)
    names = store.frame_names
    written_images = False

    def staged(rel):
        p = os.path.join(stage, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    for f in fmts:
        if f == 'png':
            _write_pngs(store, frames, steps, staged, lambda t: [
                (os.path.join('masks', f'{names[t]}.png'), indexed_png_bytes(store.mask_at_original(t)))])
        elif f == 'objects':
            def enc(t):
                labels = store.mask_at_original(t)
                return [(os.path.join('objects', d, f'{names[t]}.png'), binary_png_bytes(labels == i))
                        for i, d in dirs.items()]
            _write_pngs(store, frames, steps, staged, enc)
        elif f == 'soft':
            def enc_soft(t):
                ids = list(dirs)
                maps = soft_maps(store.mask_at_original(t), None if soft is None else soft(t), ids)
                return [(os.path.join('soft', dirs[i], f'{names[t]}.png'), grey_png_bytes(m))
                        for i, m in zip(ids, maps)]
            _write_pngs(store, frames, steps, staged, enc_soft)
        elif f in ('coco', 'ytvis'):
            from util.coco_images import write_images
            from util.coco_io import CocoBuilder, YtvisBuilder
            if images.writes and not written_images:
                write_images(store, images, staged, steps.check, steps.step)
                written_images = True
            builder = CocoBuilder if f == 'coco' else YtvisBuilder
            write_json(staged(COCO_FILE if f == 'coco' else YTVIS_FILE),
                       _annotation_json(store, frames, builder, steps, images))
        else:
            _write_overlay_mp4(store, frames, staged(MP4_FILE), fps, alpha, steps)
