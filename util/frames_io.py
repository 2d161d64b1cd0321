"""Frame files: image folders (natural order), image read/write helpers that work with non-ASCII
paths (cv2.imread/imwrite do not on some platforms), the processing size and its check.
Opening a video or a folder into a FrameStore is inference_core/store_io.py."""
import os
import re

import cv2
import numpy as np

from util.errors import UserError

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def natural_key(name):
    """Sort key that orders 'frame2' before 'frame10' (case-insensitive)."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r'(\d+)', str(name))]


def read_folder(folder, what='folder'):
    """os.listdir with a one-line UserError ('cannot read <what> ...') instead of an OSError."""
    try:
        return os.listdir(folder)
    except PermissionError:
        raise UserError(f'cannot read {what} (permission denied): {folder}') from None
    except OSError as e:
        raise UserError(f'cannot read {what} {folder}: {e.strerror or e}') from None


def list_image_files(folder):
    """Image files (jpg/jpeg/png/bmp/webp, any case) in `folder`, natural-sorted full paths.
    Hidden files (dot-files such as macOS '._x.jpg') are skipped."""
    folder = str(folder)
    if not os.path.exists(folder):
        raise UserError(f'folder not found: {folder}')
    if not os.path.isdir(folder):
        raise UserError(f'not a folder: {folder}')
    entries = read_folder(folder)
    names = [n for n in entries
             if not n.startswith('.') and os.path.splitext(n)[1].lower() in IMAGE_EXTS
             and os.path.isfile(os.path.join(folder, n))]
    names.sort(key=natural_key)
    return [os.path.join(folder, n) for n in names]


# ---------------------------------------------------------------------------- image I/O
def read_image(path, flags=cv2.IMREAD_COLOR):
    """Decode an image file (any path, including non-ASCII). With the default flags returns
    RGB uint8 (H,W,3); with IMREAD_UNCHANGED returns what cv2 decodes (BGR order for colour).
    Raises UserError when the file is missing or cannot be decoded."""
    path = str(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f'file not found: {path}') from None
    except OSError as e:
        raise UserError(f'cannot read {path}: {e.strerror or e}') from None
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise UserError(f'cannot decode image (corrupt or unsupported): {path}')
    if flags == cv2.IMREAD_COLOR:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def encode_image(img_rgb, ext='.png', params=()):
    """Encode an RGB (H,W,3) or single-channel uint8 image to bytes."""
    img = img_rgb
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, img, list(params))
    if not ok:
        raise UserError(f'cannot encode image as {ext}')
    return buf.tobytes()


# ---------------------------------------------------------------------------- resizing
def processing_size(h, w, resolution):
    """(h, w) after resizing so the shorter side equals `resolution` (-1: unchanged)."""
    if resolution is None or resolution == -1:
        return h, w
    s = resolution / min(h, w)
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def resize_frame(frame, h, w):
    """Resize an RGB frame: area interpolation when shrinking, bicubic when enlarging."""
    if frame.shape[:2] == (h, w):
        return frame
    shrink = h * w < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def cover(src_hw, size):
    """How an image of src_hw = (H, W) is fitted to size (h, w) keeping its aspect ratio: scaled
    by s to cover it (to (nh, nw)), the middle kept from (y0, x0). Returns s, (nh, nw), (y0, x0)."""
    (H, W), (h, w) = src_hw, size
    s = max(h / H, w / W)
    nh, nw = max(h, int(round(H * s))), max(w, int(round(W * s)))
    return s, (nh, nw), ((nh - h) // 2, (nw - w) // 2)


MAX_RESOLUTION = 4320     # shorter side in pixels (8K UHD); larger sizes only exhaust memory


def check_resolution(resolution, name='resolution'):
    """The processing size as an int: -1 (original size) or MAX_RESOLUTION >= r >= 16 (the
    shorter side in pixels). Shared by the CLIs, the GUI and the API. Raises UserError."""
    if isinstance(resolution, bool):
        resolution = str(resolution)                    # True is not a size
    try:
        r = int(resolution)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f'{name} must be an integer (-1 keeps the original size), got {resolution!r}') from None
    if r != -1 and not 16 <= r <= MAX_RESOLUTION:
        raise UserError(f'{name} must be -1 (original size) or 16..{MAX_RESOLUTION} (the shorter '
                        f'side in pixels), got {resolution}')
    return r


# ---------------------------------------------------------------------------- re-reading
def source_frames(store, frames):
    """Original-resolution RGB frames of `frames` (ascending) re-read from store.source (a
    FrameStore or anything with its source, orig_height, orig_width and frame_names), or None
    per frame where that is not possible (exports then upscale the processing frame)."""
    src = store.source
    oh, ow = store.orig_height, store.orig_width
    if not src or not os.path.exists(src):
        return iter([None] * len(frames))
    if os.path.isdir(src) or os.path.splitext(src)[1].lower() in IMAGE_EXTS:
        files = list_image_files(src) if os.path.isdir(src) else [src]
        if [os.path.splitext(os.path.basename(f))[0] for f in files] != store.frame_names:
            return iter([None] * len(frames))
        return (img if img.shape[:2] == (oh, ow) else None
                for img in (read_image(files[t]) for t in frames))

    def gen_video():
        from util.video_io import read_frames
        want, it = iter(frames), None
        nxt = next(want, None)
        try:
            it = read_frames(src, warnings=[])
            for t, fr in enumerate(it):
                if nxt is None:
                    break
                if t == nxt:
                    yield fr.rgb if fr.rgb.shape[:2] == (oh, ow) else None
                    nxt = next(want, None)
        except UserError:
            pass
        finally:
            if it is not None:
                it.close()
        while nxt is not None:        # the source changed: upscale the processing frames
            yield None
            nxt = next(want, None)
    return gen_video()
