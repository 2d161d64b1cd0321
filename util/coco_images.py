"""The images a COCO / YouTube-VIS export names, so that the JSON opens as-is.

Both formats name each frame's image (`file_name`, `file_names`) relative to an image root;
consumers (pycocotools users, FiftyOne's COCO importer, detectron2-style loaders) are given the
folder that holds the JSON as that root. Two modes (`coco_images=` of util.export.export):

  'write'  (default) the frames are written next to the JSON as <out>/<video>/<frame>.<ext>:
           an image folder's files are copied byte for byte (same extension); a video's
           frames are decoded at the original size and written as JPEG (quality 95); frames
           without a readable source (a store built in memory) are the processing frames
           upscaled to the original size.
  'source' for an image-folder (or single image) source only: nothing is written and each
           file_name is the path of the source image relative to the export folder (absolute
           when no relative path exists, e.g. another drive). Any other source is written
           as with 'write': a video has no image files to point at.
"""
import os
import shutil

import cv2
import numpy as np

from util.errors import UserError

MODES = ('write', 'source')
JPEG_QUALITY = 95


def check_mode(mode):
    if mode not in MODES:
        raise UserError(f'unknown COCO image mode {mode!r} (choose from {", ".join(MODES)})')
    return mode


def video_name(store):
    """The video's name in annotation files: the source's file or folder name."""
    return os.path.splitext(os.path.basename(store.source.rstrip(os.sep)))[0] or 'video'


def source_image_files(store):
    """Full paths of the source's image files, one per frame, or None when the source is not
    a folder of images (or a single image) that matches the store's frames."""
    from util.frames_io import IMAGE_EXTS, list_image_files
    src = store.source
    if not src or not os.path.exists(src):
        return None
    if os.path.isdir(src):
        try:
            files = list_image_files(src)
        except UserError:
            return None
    elif os.path.splitext(src)[1].lower() in IMAGE_EXTS:
        files = [src]
    else:
        return None
    if [os.path.splitext(os.path.basename(f))[0] for f in files] != list(store.frame_names):
        return None
    return files


class ImagePlan:
    """file_name of each frame (`names[t]`, '/'-separated) and the files to write:
    `writes` = [(t, path relative to the export folder, source file to copy or None)]."""

    def __init__(self, names, writes):
        self.names, self.writes = names, writes


def plan_images(store, frames, out_dir, mode='write'):
    """The ImagePlan for `frames` of an export into `out_dir` (nothing is read or written)."""
    check_mode(mode)
    video = video_name(store)
    files = source_image_files(store)
    names, writes = {}, []
    for t in frames:
        if files is not None and mode == 'source':
            try:
                rel = os.path.relpath(files[t], out_dir)
            except ValueError:                 # another drive (Windows): no relative path
                rel = os.path.abspath(files[t])
            names[t] = rel.replace(os.sep, '/')
            continue
        if files is not None:
            rel = f'{video}/{os.path.basename(files[t])}'
            writes.append((t, rel, files[t]))
        else:
            rel = f'{video}/{store.frame_names[t]}.jpg'
            writes.append((t, rel, None))
        names[t] = rel
    return ImagePlan(names, writes)


def write_images(store, plan, path_of, check=None, step=None):
    """Write the plan's images; path_of(rel) gives the path to write `rel` to (a staging
    folder). check() is called before and step() after each image."""
    from util.atomic import write_bytes
    from util.frames_io import encode_image, source_frames
    decoded = [t for t, _rel, src in plan.writes if src is None]
    frames = source_frames(store, decoded) if decoded else iter(())
    oh, ow = store.orig_height, store.orig_width
    try:
        for t, rel, src in plan.writes:
            if check is not None:
                check()
            if src is not None:
                shutil.copyfile(src, path_of(rel))
            else:
                img = next(frames, None)
                if img is None:
                    img = cv2.resize(np.asarray(store.frame(t)), (ow, oh),
                                     interpolation=cv2.INTER_CUBIC)
                write_bytes(path_of(rel), encode_image(
                    img, '.jpg', [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]))
            if step is not None:
                step()
    finally:
        if hasattr(frames, 'close'):
            frames.close()
