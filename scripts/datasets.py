"""Dataset layouts that scripts.propagate and the evaluators read: discovery and split files.

    DAVIS        JPEGImages/480p/<seq>/*.jpg + Annotations/480p/<seq>/*.png
    YouTube-VOS  JPEGImages/<seq>/*.jpg      + Annotations/<seq>/*.png
    DAVIS16 mp4  videos/<seq>.mp4            + masks/<seq>/*.png (0/255)
"""
import os

from util.errors import UserError
from util.frames_io import read_folder

VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v')


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
