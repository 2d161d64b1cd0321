"""Read label masks (PNG, or a COCO / YouTube-VIS JSON via util/coco_io.py); loading them into a
FrameStore is inference_core/store_io.load_masks.

How a mask PNG becomes a label map (0 = background, 1..N = object ids), in this order:

1. Palette PNG (mode 'P'): the palette INDEX is the object id (DAVIS, YouTube-VOS); the colours
   are ignored. 1-bit PNGs: 1 = object 1.
2. Colour PNG (RGB/RGBA): every colour must be a DAVIS palette colour and maps to its index
   (fully transparent pixels are background). A colour PNG whose pixels are all grey
   (R == G == B) is read as a grey mask.
3. Grey PNG (8 or 16 bit; "max" below is 255 or 65535 by bit depth):
   a. only 0 and max (0/255, 0/65535): binary, max = object 1 (silently);
   b. every value <= MAX_GREY_LABEL (20): a label map, the value is the object id
      (0/1 binary masks and 0/1/2/3 label maps are read as they are);
   c. 8 bit, values <= 20 plus 255 and nothing in between: a label map with DAVIS "void" (255);
   d. one or two grey levels (0/128, 0/1000 in 16 bit, 10/245 ...): binary, the brighter
      level = object 1;
   e. three or more levels (anti-aliased, resized, JPEG-damaged or soft masks): binary,
      object 1 = brighter than half the max (> 127 for 8 bit, > 32767 for 16 bit); when no
      value reaches that (a dim mask), brighter than midway between the darkest and the
      brightest value.
   Rules c-e log a one-line note naming the file and the rule (MaskNotes groups the notes of
   many files into one line per rule); an ambiguous case logs a warning that says so: few
   levels spread over the range (c-e could be a label map with large ids, e.g. 0/40/80/120)
   and rule c when most of the mask is 255. Save label maps as palette PNGs to be
   unambiguous.
"""
import logging
import os

import numpy as np
from PIL import Image

from util.errors import UserError
from util.frames_io import natural_key, read_folder
from util.palette import davis_palette

log = logging.getLogger(__name__)

MASK_EXTS = ('.png',)
MAX_GREY_LABEL = 20       # grey values up to this are object ids (rule 3b)
FEW_LEVELS = 20           # a thresholded grey mask with this many levels or fewer is ambiguous


class MaskNotes:
    """Collects read_label_png's notes on how grey masks were read, so that reading a folder
    logs one line per rule ('a/00000.png: ... (same for 41 more masks)'), not one per file."""

    def __init__(self):
        self._notes = {}           # key -> [first path, message, ambiguous, count]

    def add(self, path, key, message, ambiguous=False):
        n = self._notes.get(key)
        if n is None:
            self._notes[key] = [path, message, ambiguous, 1]
        else:
            n[3] += 1

    def flush(self):
        """Log the collected notes (one line each) and forget them."""
        for path, message, ambiguous, count in self._notes.values():
            _log_note(path, message, ambiguous, count - 1)
        self._notes = {}


def _short(path):
    parent, name = os.path.split(os.path.normpath(path))
    return os.path.join(os.path.basename(parent), name) if parent else name


def _log_note(path, message, ambiguous, more=0):
    more = f' (same for {more} more mask{"s" if more > 1 else ""})' if more else ''
    log.warning('%s%s: %s%s', 'ambiguous mask ' if ambiguous else '', _short(path), message, more)


def read_label_png(path, notes=None):
    """Decode one mask PNG into a uint8 label map (0 = background, 1..N = object ids).

    Rules: see the module docstring (palette index; DAVIS colours; grey: 0/255 and 0/65535
    binary, small values = label ids, other grey masks thresholded to binary). How a grey mask
    was read is logged (one line), or added to `notes` (a MaskNotes) when given.
    Works with non-ASCII paths. Raises UserError for unreadable files or unknown colours.
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == 'P':
                return np.array(im, dtype=np.uint8)
            if mode == '1':
                return np.array(im, dtype=np.uint8)
            if mode in ('LA', 'PA'):
                im = im.convert('L' if mode == 'LA' else 'P')
                mode = im.mode
                if mode == 'P':
                    return np.array(im, dtype=np.uint8)
            arr = np.array(im)
    except FileNotFoundError:
        raise UserError(f'mask file not found: {path}') from None
    except PermissionError:
        raise UserError(f'cannot read mask file (permission denied): {path}') from None
    except UserError:
        raise
    except Exception as e:
        raise UserError(f'cannot read mask image (corrupt or unsupported): {path}') from e

    if arr.ndim == 3:
        rgb = arr[..., :3]
        alpha = arr[..., 3] if arr.shape[2] == 4 else None
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            arr = rgb[..., 0]
            if alpha is not None:
                arr = np.where(alpha > 0, arr, 0).astype(rgb.dtype)
        else:
            return _rgb_to_labels(rgb, alpha, path)
    return _grey_to_labels(arr, path, notes)


def _grey_to_labels(arr, path, notes=None):
    """Grey values -> labels by rules 3a-3e of the module docstring."""
    top = 255 if arr.dtype.itemsize == 1 else 65535          # the bit depth's max value
    vals = np.unique(arr)
    if not vals.size:
        return arr.astype(np.uint8)
    lo, hi = int(vals[0]), int(vals[-1])
    if lo < 0 or hi > top:
        raise UserError(f'mask {os.path.basename(path)} has grey values {lo}..{hi}, outside '
                        f'the 0..{top} range of its bit depth')
    if hi == 0 or (lo in (0, top) and hi == top and vals.size <= 2):
        return (arr == top).astype(np.uint8)                             # a: 0/255, 0/65535
    if hi <= MAX_GREY_LABEL:
        return arr.astype(np.uint8)                                      # b: label map
    if top == 255 and hi == 255 and int(vals[-2]) <= MAX_GREY_LABEL:     # c: labels + void
        ids = [int(v) for v in vals[:-1] if v]
        void = int(np.count_nonzero(arr == 255))
        ambiguous = void > np.count_nonzero(arr) - void
        _note(notes, path, 'void', f'grey label map read as object ids {_ids(ids)} with 255 = '
              f'void' + (' (or a 0/255 mask with stray dark pixels?)' if ambiguous else ''),
              ambiguous)
        return arr.astype(np.uint8)
    if vals.size <= 2:                                                   # d: two levels
        levels = 'one grey level' if vals.size == 1 else f'2 grey levels ({lo}, {hi})'
        _note(notes, path, f'two:{lo}:{hi}', f'{levels} read as binary ({hi} = object 1)')
        return (arr == hi).astype(np.uint8)
    thr = top // 2                                                       # e: threshold
    how = 'half the max'
    if hi <= thr:
        thr = (lo + hi) // 2
        how = 'midway between the darkest and brightest value'
    ambiguous = vals.size <= FEW_LEVELS
    msg = (f'grey mask with {vals.size} levels ({lo}..{hi}) read as binary (> {thr} = object 1, '
           f'{how})')
    if ambiguous:
        msg += '; if it is a label map, save it as a palette PNG'
    _note(notes, path, f'thr:{thr}:{ambiguous}', msg, ambiguous)
    return (arr > thr).astype(np.uint8)


def _ids(ids):
    return ', '.join(map(str, ids)) if len(ids) <= 5 else f'{ids[0]}..{ids[-1]}'


def _note(notes, path, key, message, ambiguous=False):
    if notes is None:
        _log_note(path, message, ambiguous)
    else:
        notes.add(path, key, message, ambiguous)


def _rgb_to_labels(rgb, alpha, path):
    pal = davis_palette().astype(np.uint32)
    code = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    pal_code = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    uniq, inv = np.unique(code, return_inverse=True)
    lut = np.empty(len(uniq), np.uint8)
    for i, c in enumerate(uniq):
        hit = np.flatnonzero(pal_code == c)
        if hit.size == 0:
            r, g, b = (int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255
            raise UserError(f'mask {os.path.basename(path)} has colour ({r},{g},{b}) that is not '
                            f'in the DAVIS palette; save masks as indexed (palette) or label PNGs')
        lut[i] = hit[0]
    labels = lut[inv.reshape(code.shape)]
    if alpha is not None:
        labels[alpha == 0] = 0
    return labels


def list_mask_files(folder_or_files):
    """Mask PNGs: a folder (natural sorted), a single file, or a list of files."""
    if isinstance(folder_or_files, (list, tuple)):
        files = [os.fspath(f) for f in folder_or_files]
        for f in files:
            if not os.path.isfile(f):
                raise UserError(f'mask file not found: {f}')
    else:
        path = os.fspath(folder_or_files)
        if not os.path.exists(path):
            raise UserError(f'mask path not found: {path}')
        if os.path.isdir(path):
            entries = read_folder(path, 'mask folder')
            names = [n for n in entries if not n.startswith('.')
                     and os.path.splitext(n)[1].lower() in MASK_EXTS]
            names.sort(key=natural_key)
            files = [os.path.join(path, n) for n in names]
        else:
            files = [path]
    if not files:
        raise UserError(f'no mask PNGs found in: {folder_or_files}')
    return files


def match_masks_to_frames(files, frame_names):
    """Map each mask file to a frame index.

    By file stem: equal to a frame name, or numerically equal when both are numbers
    ('7.png' -> frame '00007'). When some stem matches no frame and there is exactly one mask
    per frame, masks are matched by (natural) order instead. Raises UserError otherwise.
    """
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    by_name = {n: i for i, n in enumerate(frame_names)}
    by_num = {}
    for i, n in enumerate(frame_names):
        if n.isdigit():
            by_num.setdefault(int(n), i)
    if len(files) > len(frame_names):
        raise UserError(f'{len(files)} masks given for a video of {len(frame_names)} frames')
    result, unmatched = [], []
    for f, s in zip(files, stems):
        t = by_name.get(s)
        if t is None and s.isdigit():
            t = by_num.get(int(s))
        if t is None:
            unmatched.append(s)
        result.append(t)
    if unmatched:
        if len(files) == len(frame_names):
            return list(range(len(files)))
        raise UserError(f'mask {unmatched[0]!r} matches no frame name (e.g. {frame_names[0]!r}) '
                        f'and there is not one mask per frame ({len(files)} masks, '
                        f'{len(frame_names)} frames)')
    seen = {}
    for f, t in zip(files, result):
        if t in seen:
            raise UserError(f'masks {os.path.basename(seen[t])} and {os.path.basename(f)} are '
                            f'both for frame {frame_names[t]!r}')
        seen[t] = f
    return result


def annotation_frame(key, store, path):
    """Frame index of an annotation file's frame key (an index, or a file stem)."""
    if isinstance(key, int):
        if not 0 <= key < store.num_frames:
            raise UserError(f'{os.path.basename(path)} annotates frame {key} but the video has '
                            f'{store.num_frames} frames')
        return key
    if key not in store.frame_names:
        raise UserError(f'{os.path.basename(path)} annotates frame {key!r}, which is not a '
                        'frame of this video')
    return store.frame_names.index(key)
