"""Load a video file or a folder of images into a FrameStore, plus image read/write helpers
that work with non-ASCII paths (cv2.imread/imwrite do not on some platforms)."""
import os
import re

import cv2
import numpy as np

from inference_core.store import DEFAULT_MEMORY_BUDGET, FrameStore
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


MAX_RESOLUTION = 4320     # shorter side in pixels (8K UHD); larger sizes only exhaust memory


def _check_resolution(resolution, name='resolution'):
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


# ---------------------------------------------------------------------------- loading
def open_frames(path, resolution=480, storage='auto', progress=None, should_cancel=None,
                memory_budget=DEFAULT_MEMORY_BUDGET):
    """Load a video file or an image folder into a FrameStore.

    Frames are resized so that the SHORTER side equals `resolution` (MiVOS default 480;
    -1 keeps the original size); the original size is kept in store.orig_height/orig_width.
    A folder is read in natural order (frame2 before frame10); store.frame_names holds the file
    stems (00000, 00001 ... for a video). A single image file loads as a one-frame video.
    Returns None when `should_cancel()` turns True.
    """
    resolution = _check_resolution(resolution)
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
