"""Where a FrameStore's frames live on disk or in memory while they are read: collecting an
iterable of frames (a decoding video) into an array or a temp file, and the file helpers."""
import os
import shutil
import tempfile

import numpy as np


def collect_frames(frames, num_frames, storage, memory_budget, progress=None,
                   should_cancel=None):
    """Read an iterable of (H,W,3) uint8 frames into memory or, for 'disk' storage (or 'auto'
    over `memory_budget` bytes, decided from the announced `num_frames` and again when the
    frames outnumber it), into a file in a private temp dir. Returns None when should_cancel()
    turns True (checked between frames), else (n, h, w, buf, path): buf the (n,H,W,3) array
    in memory and path None, or buf None and path the closed frames file."""
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError('no frames')
    h, w = first.shape[:2]
    _check_frame(first, h, w, 0)
    fbytes = h * w * 3
    est = max(int(num_frames or 1), 1)
    auto = storage == 'auto'
    if auto:
        storage = 'disk' if est * fbytes > memory_budget else 'memory'
    total = num_frames or 0
    buf = np.empty((est, h, w, 3), np.uint8) if storage == 'memory' else None
    tmpdir = fpath = f = None
    n = 0
    try:
        if storage == 'disk':
            tmpdir = tempfile.mkdtemp(prefix='ivos_store_')
            fpath = os.path.join(tmpdir, 'frames.u8')
            f = open(fpath, 'wb')
        for frame in _chain(first, it):
            if n and should_cancel is not None and should_cancel():
                raise _Cancelled
            _check_frame(frame, h, w, n)
            if buf is not None and n == len(buf):
                grow = max(len(buf) // 4, 1)     # header under-counted: grow by 25%
                if auto and (n + grow) * fbytes > memory_budget:
                    # Longer than announced and over budget: move to disk.
                    tmpdir = tempfile.mkdtemp(prefix='ivos_store_')
                    fpath = os.path.join(tmpdir, 'frames.u8')
                    f = open(fpath, 'wb')
                    f.write(buf[:n].tobytes())
                    buf = None
                else:
                    grown = np.empty((n + grow, h, w, 3), np.uint8)
                    grown[:n] = buf
                    buf = grown
            if buf is not None:
                buf[n] = frame
            else:
                f.write(np.ascontiguousarray(frame).tobytes())
            n += 1
            if progress is not None:
                progress(n, max(total, n))
    except _Cancelled:
        if f is not None:
            f.close()
        if tmpdir is not None:
            cleanup_dir(tmpdir)
        return None
    except BaseException:
        if f is not None:
            f.close()
        if tmpdir is not None:
            cleanup_dir(tmpdir)
        raise
    if buf is None:
        f.close()
        return n, h, w, None, fpath
    if n < len(buf):
        # A view keeps the whole buffer alive; copy when that would waste a lot.
        buf = buf[:n].copy() if n < len(buf) * 3 // 4 else buf[:n]
    return n, h, w, buf, None


def cleanup_dir(path, files=()):
    for f in files:
        try:
            f.close()
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def _check_frame(frame, h, w, t):
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (h, w, 3):
        got = getattr(frame, 'shape', type(frame).__name__)
        raise ValueError(f'frame {t}: expected uint8 array of shape {(h, w, 3)}, got {got} '
                         f'{getattr(frame, "dtype", "")}')


class _Cancelled(Exception):
    pass


def read_into(f, arr):
    view = memoryview(arr).cast('B')
    while view:
        n = f.readinto(view)
        if not n:
            raise IOError('frame store file is truncated')
        view = view[n:]


def _chain(first, it):
    yield first
    yield from it
