"""File systems that fail under the tool, for the never-lose-work tests.

`failing_fs(root, kind)` gives a folder whose file system can be made to fail on demand:
kind 'full' (ENOSPC: no space left) or 'readonly' (EROFS: remounted read-only while in use).
As root with mount rights it is a real 256 KiB tmpfs (filled up with a file, or remounted
read-only); elsewhere, or with IVOS_TEST_NO_MOUNT=1, a fault-injecting layer: os.open, open()
for writing, mkdir, rename, replace, link and remove under the folder raise the same OSError
the kernel would. Either way the code under test sees a real OSError with the real errno.
"""
import builtins
import contextlib
import errno
import os
import subprocess

import pytest


def _mount_tmpfs(root):
    if os.environ.get('IVOS_TEST_NO_MOUNT') or not hasattr(os, 'geteuid') or os.geteuid() != 0:
        return False
    try:
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', str(root)],
                           capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


class FailingFS:
    def __init__(self, root, kind):
        self.root, self.kind, self.mp = os.path.abspath(os.fspath(root)), kind, pytest.MonkeyPatch()
        self.real = _mount_tmpfs(self.root)
        self.broken = False

    def __repr__(self):
        return f'FailingFS({self.kind}, {"tmpfs" if self.real else "injected"})'

    def break_(self):
        """From now on writes fail (a full disk / a read-only file system)."""
        self.broken = True
        if self.real:
            if self.kind == 'readonly':
                subprocess.run(['mount', '-o', 'remount,ro', self.root], check=True, timeout=20)
            else:
                chunk = b'\0' * 4096
                with builtins.open(os.path.join(self.root, 'filler.bin'), 'wb', buffering=0) as f:
                    try:
                        while True:
                            f.write(chunk)
                    except OSError as e:
                        assert e.errno == errno.ENOSPC
            return
        code = errno.EROFS if self.kind == 'readonly' else errno.ENOSPC
        under = self._under

        def fail(path):
            raise OSError(code, os.strerror(code), os.fspath(path))

        real_open, real_osopen = builtins.open, os.open

        def fake_open(file, mode='r', *a, **k):
            if isinstance(file, (str, bytes, os.PathLike)) and under(file) and \
                    any(c in mode for c in 'wax+'):
                fail(file)
            return real_open(file, mode, *a, **k)

        def fake_osopen(path, flags, *a, **k):
            if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                fail(path)
            return real_osopen(path, flags, *a, **k)
        self.mp.setattr(builtins, 'open', fake_open)
        self.mp.setattr(os, 'open', fake_osopen)
        names = ['mkdir'] + (['rename', 'replace', 'link', 'remove', 'unlink', 'rmdir']
                             if self.kind == 'readonly' else [])
        for name in names:
            real = getattr(os, name)

            def wrapper(*args, _real=real, **kw):
                if any(under(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))):
                    fail(args[0])
                return _real(*args, **kw)
            self.mp.setattr(os, name, wrapper)

    def _under(self, path):
        try:
            p = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return p == self.root or p.startswith(self.root.rstrip(os.sep) + os.sep)

    def repair(self):
        """Writes work again (space freed / remounted read-write)."""
        if self.real:
            if self.kind == 'readonly':
                subprocess.run(['mount', '-o', 'remount,rw', self.root], check=True, timeout=20)
            else:
                os.remove(os.path.join(self.root, 'filler.bin'))
        else:
            self.mp.undo()
        self.broken = False

    def close(self):
        self.mp.undo()
        if self.real:
            subprocess.run(['umount', '-l', self.root], capture_output=True, timeout=20)


@contextlib.contextmanager
def failing_fs(root, kind):
    os.makedirs(root, exist_ok=True)
    fs = FailingFS(root, kind)
    try:
        yield fs
    finally:
        fs.close()
