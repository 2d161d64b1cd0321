"""Atomic file writes: write a temp file in the same folder, then os.replace it over the target.

A crash (or an exception, or a cancel) part-way never leaves a half-written file at the target
path: readers see the old file or the complete new one. Temp names end in '.part' (git-ignored).
"""
import contextlib
import json
import os
import tempfile

from util.errors import UserError


def _current_umask():
    mask = os.umask(0o022)     # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _tmp_name(path, suffix='.part'):
    d, base = os.path.split(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(prefix=f'.{base}.', suffix=suffix, dir=d)
    os.close(fd)
    # mkstemp creates 0600; the final file gets the permissions a plain open() would give.
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
    except OSError:
        pass
    return tmp


@contextlib.contextmanager
def atomic_path(path, suffix='.part'):
    """Yield a temp path next to `path`; on normal exit it replaces `path`, on error it is
    removed. Use for writers that need a file name (cv2.VideoWriter); pass e.g. suffix='.mp4'
    when the writer picks the format from the extension."""
    path = os.fspath(path)
    try:
        tmp = _tmp_name(path, suffix)
    except PermissionError:
        raise UserError(f'output folder is not writable: {os.path.dirname(os.path.abspath(path))}') from None
    except FileNotFoundError:
        raise UserError(f'output folder does not exist: {os.path.dirname(os.path.abspath(path))}') from None
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode='wb', fsync=False, **kwargs):
    """open() lookalike for writing; the file appears at `path` only when the block succeeds.
    fsync=True also flushes to the disk before the rename (survives power loss, slower)."""
    if not any(c in mode for c in 'wx'):
        raise ValueError('atomic_open is for writing (mode w/wb)')
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def write_bytes(path, data, fsync=False):
    with atomic_open(path, 'wb', fsync=fsync) as f:
        f.write(data)


def write_text(path, text, encoding='utf-8', fsync=False):
    with atomic_open(path, 'w', fsync=fsync, encoding=encoding, newline='\n') as f:
        f.write(text)


def write_json(path, obj, fsync=False, **dump_kwargs):
    dump_kwargs.setdefault('ensure_ascii', False)
    write_text(path, json.dumps(obj, **dump_kwargs), fsync=fsync)


def make_temp_dir(prefix, parent):
    """tempfile.mkdtemp(prefix=, dir=parent) with the permissions a plain os.mkdir would give
    (mkdtemp makes 0700): a temp folder renamed into place as an output folder follows the
    umask, as files do."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        os.chmod(path, 0o777 & ~_UMASK)
    except OSError:
        pass
    return path


def check_creatable_dir(path):
    """Raise UserError unless `path` is a writable folder or could be created as one (nothing
    is created). Returns the path."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UserError(f'output path exists and is not a folder: {path}')
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        parent = os.path.dirname(probe)
        if os.path.lexists(probe) or parent == probe:
            raise UserError(f'output folder is not writable: {path} ({probe} is a file, not a '
                            'folder)')
        probe = parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f'output folder is not writable: {path} (permission denied in {probe})')
    return path


def ensure_writable_dir(path):
    """Create `path` (and parents) if needed and check a file can be written there.
    Raises UserError with a one-line message otherwise. Returns the path."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f'output path exists and is not a folder: {path}')
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write_test.', suffix='.part', dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UserError(f'output folder is not writable: {path} ({e.strerror or e})') from None
    return path
