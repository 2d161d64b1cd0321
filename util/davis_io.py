"""DAVIS-style annotated video folders, read for training and evaluation: `videos/<seq>.mp4`
and `masks/<seq>/%05d.png`, binary (0/255, ../shared/data/davis2016-train) or object ids (0
background, 1..N objects, ../shared/data/video-extra, at other resolutions): `load_labels` reads
both kinds and fits them to one size. Which sequences a run may read is util/davis_split.py."""
from pathlib import Path

import cv2
import numpy as np

from util.errors import UserError
from util.frames_io import cover


def list_sequences(root):
    root = Path(root)
    if not (root / 'videos').is_dir() or not (root / 'masks').is_dir():
        raise UserError(f'{root}: not a DAVIS-style folder (needs videos/ and masks/)')
    return sorted(p.stem for p in (root / 'videos').glob('*.mp4') if (root / 'masks' / p.stem).is_dir())


def read_video(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise UserError(f'{path}: could not decode any frame')
    return np.stack(frames)


def read_labels(mask_files):
    """Object-id labels (T,H,W) uint8 of a sequence's mask PNGs: 0/255 masks (davis2016-train)
    become 0/1, object-id masks (video-extra) are kept as they are."""
    masks = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in mask_files])
    values = np.unique(masks)
    if values.max() == 255 and set(values.tolist()) <= {0, 255}:
        return (masks > 127).astype(np.uint8)
    return masks


def fit_clip(frames, labels, size):
    """Resize frames (T,H,W,3) and labels (T,H,W) to size=(h, w) keeping the aspect ratio: scaled
    to cover it, the middle kept (sources come at 854x480, 720x480, 432x240, 320x180, ...)."""
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames, labels
    s, (nh, nw), (y0, x0) = cover(frames.shape[1:3], size)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    frames = np.stack([cv2.resize(f, (nw, nh), interpolation=interp)[y0:y0 + h, x0:x0 + w] for f in frames])
    if labels.max() <= 1:       # one object: area-averaged and thresholded, as before ids existed
        labels = np.stack([cv2.resize(m * 255, (nw, nh), interpolation=cv2.INTER_AREA)[y0:y0 + h, x0:x0 + w]
                           for m in labels.astype(np.uint8)]) > 127
    else:
        labels = np.stack([cv2.resize(m, (nw, nh), interpolation=cv2.INTER_NEAREST)[y0:y0 + h, x0:x0 + w]
                           for m in labels])
    return frames, labels.astype(np.uint8)


def load_labels(root, seq, size=None):
    """Frames (T,H,W,3) uint8 and object-id labels (T,H,W) uint8 of one sequence of a
    davis2016-train-style folder (binary or object-id masks); fitted to size=(h, w) if given."""
    root = Path(root)
    frames = read_video(root / 'videos' / f'{seq}.mp4')
    mask_files = sorted((root / 'masks' / seq).glob('*.png'))
    n = min(len(frames), len(mask_files))
    if n == 0:
        raise UserError(f'{root / "masks" / seq}: no mask PNGs')
    labels = read_labels(mask_files[:n])
    frames = frames[:n]
    if labels.shape[1:] != frames.shape[1:3]:
        raise UserError(f'{root / "masks" / seq}: masks are {labels.shape[2]}x{labels.shape[1]}, '
                        f'frames {frames.shape[2]}x{frames.shape[1]}')
    if size is not None:
        frames, labels = fit_clip(frames, labels, size)
    return frames, labels


def load_sequence(root, seq, size=None):
    """Frames (T,H,W,3) uint8 and masks (T,H,W) bool (any object) of one sequence; fitted to
    size=(h, w) if given."""
    frames, labels = load_labels(root, seq, size)
    return frames, labels > 0
