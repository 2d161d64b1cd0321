"""Read label masks (PNG) into a FrameStore."""
import os

import numpy as np
from PIL import Image

from inference_core.store import MAX_OBJECTS, resize_labels
from util.errors import UserError
from util.frames_io import natural_key
from util.palette import davis_palette

MASK_EXTS = ('.png',)


def read_label_png(path):
    """Decode one mask PNG into a uint8 label map (0 = background, 1..N = object ids).

    Rules, in order:
      * the PNG has a palette (mode 'P'): the palette INDEX is the object id (DAVIS,
        YouTube-VOS); the colours are ignored;
      * grayscale whose values are only {0, 255}: a binary mask, 255 -> object 1;
      * other grayscale (8 or 16 bit): the grey value is the id (must be <= 255);
      * RGB/RGBA colour: every colour must be a DAVIS palette colour and maps to its index
        (fully transparent pixels are background); a colour PNG whose pixels are all grey
        (R == G == B) follows the grayscale rules.
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
                arr = np.where(alpha > 0, arr, 0)
        else:
            return _rgb_to_labels(rgb, alpha, path)
    return _grey_to_labels(arr, path)


def _grey_to_labels(arr, path):
    vals = np.unique(arr)
    if vals.size and vals.max() > MAX_OBJECTS:
        raise UserError(f'mask {os.path.basename(path)} has label value {int(vals.max())}: '
                        f'at most {MAX_OBJECTS} objects are supported')
    if vals.size and vals.max() == 255 and set(vals.tolist()) <= {0, 255}:
        return (arr == 255).astype(np.uint8)
    return arr.astype(np.uint8)


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
            names = [n for n in os.listdir(path) if not n.startswith('.')
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


def _check_size(mh, mw, store, path):
    oh, ow = store.orig_height, store.orig_width
    # Same aspect ratio as the original frames, allowing one pixel of rounding.
    if abs(mh * ow - mw * oh) > max(ow, oh):
        raise UserError(f'mask {os.path.basename(path)} is {mw}x{mh} but the frames are '
                        f'{ow}x{oh} (different aspect ratio)')


def load_masks(store, folder_or_files, edited=True, progress=None, should_cancel=None,
               before_write=None):
    """Load mask PNGs into `store` and return the sorted frame indices that got a mask.

    `folder_or_files`: a folder, one PNG, or a list of PNGs; any subset of frames. Matching:
    see match_masks_to_frames. Decoding: see read_label_png (palette index wins when the PNG
    has a palette; grayscale with only {0,255} is binary; otherwise grey value = id; RGB
    colours go through the DAVIS palette). Masks must have the aspect ratio of the ORIGINAL
    frames (any resolution, e.g. original or processing size) and are resized to the
    processing size with nearest neighbour. Objects up to the largest id seen are created;
    those frames are marked as person-edited (`edited`). Returns None when cancelled; on
    cancel or error the store's masks and objects are restored to what they were.
    `before_write(t)`, when given, is called just before frame t's mask is replaced (undo
    bookkeeping: capture the frame's current state there).
    """
    files = list_mask_files(folder_or_files)
    targets = match_masks_to_frames(files, store.frame_names)
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
            labels = read_label_png(f)
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
