"""The --export option of scripts.propagate: the formats the GUI exports, for every propagated
video, written through the same code (Session.export -> util/export.py).

    png      <out>/<frame>.png, DAVIS palette (the layout scripts.metrics and DAVIS tools read)
    objects  <out>/objects/<object>/<frame>.png   binary 0/255
    soft     <out>/soft/<object>/<frame>.png      probability x 255
    coco     <out>/annotations.json + the images it names (<out>/<video>/<frame>.jpg, or the
             source images with --coco-images source)
    ytvis    <out>/ytvis.json (+ the same images)
    mp4      <out>/overlay.mp4                    H.264 review video

Every format shows the same labels as the PNGs (the argmax of the propagation's probabilities
upsampled to the original size); the soft masks are those probabilities (averaged over both
runs with --flip), consistent with the labels (util.export.soft_maps).
"""
import os

import numpy as np
from PIL import Image

from util.errors import UserError

DEFAULT = 'png'
COCO_IMAGES = ('write', 'source')


def parse_exports(text):
    """'png,coco' -> ['png', 'coco'] (util.export's names and aliases); a UserError otherwise."""
    from util.export import FORMATS, normalize_formats
    items = [s.strip() for s in str(text).split(',')]
    if not any(items) or not all(items):
        raise UserError(f'--export needs a comma-separated list of formats, got {text!r} '
                        f'(choose from {",".join(FORMATS)})')
    try:
        return normalize_formats(items)
    except UserError as e:
        raise UserError(f'--export: {e}') from None


def export_names(session, exports, coco_images='write', out_dir='.'):
    """The files written for a video, relative to its output folder ('/'-separated), in
    write order: the PNGs, then what Session.export writes for the other formats."""
    names = [f'{n}.png' for n in session.frame_names] if 'png' in exports else []
    others = [f for f in exports if f != 'png']
    if others:
        names += [p.replace(os.sep, '/') for p in
                  session.export_paths(others, coco_images=coco_images, out_dir=out_dir)]
    return names


def write_exports(session, exports, labels_at, prob, out_dir, coco_images='write',
                  progress=None, shown_dir=None):
    """Write the formats other than 'png' into `out_dir` (a new temp folder that already holds
    the PNGs when 'png' is among them: the labels are then read back from them, so every
    format shows exactly the PNGs, without recomputing them). prob(t): the probabilities
    (K+1, h, w) torch tensor. `shown_dir` replaces out_dir in error messages."""
    others = [f for f in exports if f != 'png']
    if not others:
        return True
    if 'png' in exports:
        names = session.frame_names

        def labels(t):
            with Image.open(os.path.join(out_dir, f'{names[t]}.png')) as im:
                return np.array(im, dtype=np.uint8)
    else:
        labels = labels_at
    try:
        return session.export(out_dir, others, labels=labels, soft=lambda t: prob(t).numpy(),
                              progress=progress, coco_images=coco_images)
    except UserError as e:
        msg = str(e).replace(os.path.abspath(out_dir), shown_dir or out_dir)
        raise UserError(msg) from None
