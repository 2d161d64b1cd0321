"""The FrameStore's files: open a video or an image folder into a store, load mask files into
one, and export one (through util/export.py, which reads a store only through its attributes).
util/ holds the format code (image, mask, COCO and video files) and never imports the store.
"""
import os

import numpy as np
from PIL import Image

from inference_core.store import DEFAULT_MEMORY_BUDGET, FrameStore
from util.coco_io import is_annotation_file, read_annotation_file
from util.errors import UserError
from util.frames_io import (IMAGE_EXTS, check_resolution, list_image_files, processing_size,
                            read_image, resize_frame)
from util.labels import resize_labels
from util.mask_io import (MaskNotes, annotation_frame, list_mask_files, match_masks_to_frames,
                          read_label_png)


# ---------------------------------------------------------------------------- opening
def open_frames(path, resolution=480, storage='auto', progress=None, should_cancel=None,
                memory_budget=DEFAULT_MEMORY_BUDGET):
    """Load a video file or an image folder into a FrameStore.

    Frames are resized so that the SHORTER side equals `resolution` (MiVOS default 480;
    -1 keeps the original size); the original size is kept in store.orig_height/orig_width.
    A folder is read in natural order (frame2 before frame10); store.frame_names holds the file
    stems (00000, 00001 ... for a video). A single image file loads as a one-frame video.
    Returns None when `should_cancel()` turns True.
    """
    resolution = check_resolution(resolution)
    if storage not in ('auto', 'memory', 'disk'):
        raise UserError(f"storage must be 'auto', 'memory' or 'disk', got {storage!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f'path not found: {path}')
    if os.path.isdir(path):
        files = list_image_files(path)
        if not files:
            raise UserError(f'no images ({", ".join(e[1:] for e in IMAGE_EXTS)}) in folder: {path}')
        return _open_image_files(files, path, resolution, storage, progress, should_cancel,
                                 memory_budget)
    if os.path.splitext(path)[1].lower() in IMAGE_EXTS:
        return _open_image_files([path], path, resolution, storage, progress, should_cancel,
                                 memory_budget)
    return _open_video(path, resolution, storage, progress, should_cancel, memory_budget)


def _open_image_files(files, source, resolution, storage, progress, should_cancel, budget):
    names = [os.path.splitext(os.path.basename(f))[0] for f in files]
    seen = {}
    for f, n in zip(files, names):
        if n in seen:
            raise UserError(f'two images share the name {n!r} ({os.path.basename(seen[n])}, '
                            f'{os.path.basename(f)}): exports would overwrite each other')
        seen[n] = f
    first = read_image(files[0])
    oh, ow = first.shape[:2]
    ph, pw = processing_size(oh, ow, resolution)

    def frames():
        for i, f in enumerate(files):
            img = first if i == 0 else read_image(f)
            if img.shape[:2] != (oh, ow):
                raise UserError(f'frames have different sizes: {os.path.basename(f)} is '
                                f'{img.shape[1]}x{img.shape[0]}, {os.path.basename(files[0])} '
                                f'is {ow}x{oh}')
            yield resize_frame(img, ph, pw)

    return FrameStore.from_frame_iter(frames(), num_frames=len(files), orig_size=(oh, ow),
                                      storage=storage, source=source, frame_names=names,
                                      memory_budget=budget, progress=progress,
                                      should_cancel=should_cancel)


def _open_video(path, resolution, storage, progress, should_cancel, budget):
    """Decode every frame with PyAV (util.video_io): the frame count is what decodes (a
    mismatch with the container's count is a load warning), timestamps are kept per frame."""
    from util.video_io import probe, read_frames
    if not os.access(path, os.R_OK):
        raise UserError(f'cannot read video (permission denied): {path}')
    info = probe(path)
    ph, pw = processing_size(info.height, info.width, resolution)
    warnings, timestamps = [], []

    def frames():
        for fr in read_frames(path, info, warnings=warnings):
            timestamps.append(fr.timestamp)
            yield resize_frame(fr.rgb, ph, pw)

    store = FrameStore.from_frame_iter(
        frames(), num_frames=info.declared_frames or None, orig_size=(info.height, info.width),
        storage=storage, source=path, frame_names=None, memory_budget=budget,
        progress=progress, should_cancel=should_cancel)
    if store is None:
        return None
    store.fps = info.fps
    if len(timestamps) == store.num_frames and all(t is not None for t in timestamps):
        store.timestamps = timestamps
    store.load_warnings = warnings
    return store


# ---------------------------------------------------------------------------- masks
def _check_size(mh, mw, store, path):
    oh, ow = store.orig_height, store.orig_width
    # Same aspect ratio as the original frames, allowing one pixel of rounding.
    if abs(mh * ow - mw * oh) > max(ow, oh):
        raise UserError(f'mask {os.path.basename(path)} is {mw}x{mh} but the frames are '
                        f'{ow}x{oh} (different aspect ratio)')


def load_masks(store, folder_or_files, edited=True, progress=None, should_cancel=None,
               before_write=None):
    """Load masks into `store` and return the sorted frame indices that got a mask.

    `folder_or_files`: a folder, one PNG, or a list of PNGs (any subset of frames; matching:
    see match_masks_to_frames; decoding: the rules in the module docstring), or one COCO /
    YouTube-VIS JSON (util/coco_io.py: its frames holding any object; objects this load creates
    take the file's category names). Masks must have the aspect ratio of the ORIGINAL
    frames (any resolution, e.g. original or processing size) and are resized to the
    processing size with nearest neighbour. Objects up to the largest id seen are created;
    those frames are marked as person-edited (`edited`). Returns None when cancelled; on
    cancel or error the store's masks and objects are restored to what they were.
    `before_write(t)`, when given, is called just before frame t's mask is replaced (undo
    bookkeeping: capture the frame's current state there).
    """
    names, notes = {}, None
    if is_annotation_file(folder_or_files):
        # A COCO / YouTube-VIS JSON (util/coco_io.py): its frames with any object, and names.
        ann = read_annotation_file(folder_or_files)
        _check_size(*ann.size, store, os.fspath(folder_or_files))
        keyed = [(annotation_frame(k, store, folder_or_files), lab)
                 for k, lab in ann.frames.items() if lab.any()]
        files = [lab for _, lab in sorted(keyed, key=lambda x: x[0])]
        targets = sorted(t for t, _ in keyed)
        read = np.asarray
        names = ann.names
    else:
        files = list_mask_files(folder_or_files)
        targets = match_masks_to_frames(files, store.frame_names)
        notes = MaskNotes()                 # one log line per grey-mask rule, not per file
        read = lambda f: read_label_png(f, notes)  # noqa: E731
        # Check every header before touching the store (cheap: no pixel decoding).
        for f in files:
            try:
                with Image.open(f) as im:
                    mw, mh = im.size
            except FileNotFoundError:
                raise UserError(f'mask file not found: {f}') from None
            except Exception:
                raise UserError(f'cannot read mask image (corrupt or unsupported): {f}') from None
            _check_size(mh, mw, store, f)

    old_n = store.num_objects
    old_edited = set(store.edited_frames)
    saved = {}        # frame -> previous mask (None when it was empty), for rollback
    done = []
    try:
        for i, (f, t) in enumerate(zip(files, targets)):
            if should_cancel is not None and should_cancel():
                _rollback(store, saved, old_n, old_edited)
                return None
            labels = read(f)
            labels = resize_labels(labels, store.height, store.width)
            top = int(labels.max()) if labels.size else 0
            if top > store.num_objects:
                store.ensure_objects(top)
            if before_write is not None:
                before_write(t)
            prev = store.get_mask(t)
            saved[t] = prev if prev.any() else None
            store.set_mask(t, labels, edited=True if edited else None)
            done.append(t)
            if progress is not None:
                progress(i + 1, len(files))
    except BaseException:
        _rollback(store, saved, old_n, old_edited)
        raise
    finally:
        if notes is not None:
            notes.flush()
    for obj_id, name in names.items():       # objects this load created get the file's names
        if old_n < obj_id <= store.num_objects and name:
            store.rename_object(obj_id, name)
    return sorted(done)


def _rollback(store, saved, old_n, old_edited):
    zero = None
    for t, prev in saved.items():
        if prev is None:
            if zero is None:
                zero = np.zeros((store.height, store.width), np.uint8)
            prev = zero
        store.set_mask(t, prev)
    if store.num_objects > old_n:
        store.ensure_objects(old_n, shrink=True)
    store.edited_frames.clear()
    store.edited_frames.update(old_edited)


# ---------------------------------------------------------------------------- exporting
class LabelView:
    """A FrameStore seen through other label maps: labels computed elsewhere (scripts.propagate
    computes each frame's labels at the original resolution from the upsampled probabilities,
    sharper than the store's processing-size labels resized by nearest neighbour) go through the
    same export code as the store's own. util.export reads labels only through
    `mask_at_original(t)`, so this view replaces that one method and passes everything else
    (frames, objects, names, timestamps, source) through to the store."""

    def __init__(self, store, labels_at):
        self._store = store
        self._labels_at = labels_at

    def mask_at_original(self, t):
        labels = np.asarray(self._labels_at(t))
        want = (self._store.orig_height, self._store.orig_width)
        if labels.shape != want or labels.dtype != np.uint8:
            raise ValueError(f'labels of frame {t} are {labels.dtype} {labels.shape}, '
                             f'expected uint8 {want}')
        return labels

    def __getattr__(self, name):
        return getattr(self._store, name)


def export_store(store, out_dir, formats=('png',), *, soft, labels=None, **kwargs):
    """util.export.export of `store`, or of its LabelView when `labels(t)` gives other label maps
    at the original size; `soft(t)` gives the soft masks."""
    from util.export import export
    if labels is not None:
        store = LabelView(store, labels)
    return export(store, out_dir, formats=formats, soft=soft, **kwargs)


def export_paths(store, formats=('png',), coco_images='write', out_dir='.'):
    """The files an export of `formats` writes, relative to its folder."""
    from util.export import output_paths
    return output_paths(store, out_dir, formats, coco_images)


def existing_outputs(store, out_dir, formats=('png',), inputs=()):
    """The files an export to out_dir would replace; UserError first, creating nothing, when it
    would write into or over the video's frames or one of `inputs`."""
    from util.export import check_not_input, existing_outputs as existing, output_paths
    out_dir = os.path.abspath(os.fspath(out_dir))
    check_not_input(out_dir, output_paths(store, out_dir, formats), [store.source, *inputs])
    return existing(store, out_dir, formats)
