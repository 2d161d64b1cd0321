"""One window per workspace: a lock file inside the workspace folder.

Two windows autosaving into one workspace overwrite each other's workspace.json and mask PNGs
(the last write wins, and the other window's objects and frames are gone at the next resume).
So the window that opens a workspace first holds `<workspace>/workspace.lock` (JSON: pid, host,
process start time, a token, since when) until it closes the video. A second window is told
who holds it; a lock whose process no longer runs on this host (a crash, kill -9) is stale and
taken over. A lock held on another host is never taken over (its process cannot be checked).
No Qt here: the window turns WorkspaceLocked into its dialog, scripts get the one-line message.
"""
import errno
import json
import os
import time
import uuid

from util.errors import UserError
from util.owner import current_owner, describe_owner, owner_alive

LOCK_FILE = 'workspace.lock'
_HELD = set()           # tokens of the locks this process holds (two windows in one process)


class WorkspaceLocked(UserError):
    """Another live window (or process) holds the workspace. `owner` is the lock's content."""

    def __init__(self, path, owner):
        self.path, self.owner = path, owner
        since = owner.get('since') if isinstance(owner, dict) else None
        when = time.strftime(' since %Y-%m-%d %H:%M', time.localtime(since)) \
            if isinstance(since, (int, float)) else ''
        self.short = (f'workspace {path} is in use by another window '
                      f'({describe_owner(owner)}{when})')
        super().__init__(f'{self.short}; close that window first, or open the video with '
                         f'another --workspace folder')


def _read(path):
    """The lock's content, {} when it is unreadable or half written."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(owner, lock_path):
    if not owner:
        # empty or half-written: a process is writing it right now, or died doing so
        try:
            return time.time() - os.path.getmtime(lock_path) < 5
        except OSError:
            return False
    if owner.get('pid') == os.getpid() and owner.get('host') == current_owner()['host']:
        return owner.get('token') in _HELD
    return owner_alive(owner)


class WorkspaceLock:
    """The lock of the workspace folder `folder` (held after acquire() until release())."""

    def __init__(self, folder):
        self.folder = os.path.abspath(os.fspath(folder))
        self.path = os.path.join(self.folder, LOCK_FILE)
        self.token = None
        self.created_folder = False
        self.taken_over = None          # the stale owner whose lock was taken over

    @property
    def held(self):
        return self.token is not None

    def acquire(self):
        """Take the lock; raises WorkspaceLocked when a live process holds it, UserError when
        the folder cannot be written (the caller decides whether to go on unlocked)."""
        if self.held:
            return self
        if not os.path.isdir(self.folder):
            try:
                os.makedirs(self.folder)
                self.created_folder = True
            except FileExistsError:
                pass
            except OSError as e:
                raise UserError(f'cannot lock the workspace {self.folder}: {e.strerror or e}') from None
        for _ in range(5):
            token = uuid.uuid4().hex
            info = dict(current_owner(), token=token, since=time.time())
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                owner = _read(self.path)
                if _alive(owner, self.path):
                    raise WorkspaceLocked(self.folder, owner) from None
                self._remove_stale(owner)
                continue
            except OSError as e:
                raise UserError(f'cannot lock the workspace {self.folder}: {e.strerror or e}') from None
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(info, f)
            self.token = token
            _HELD.add(token)
            return self
        raise WorkspaceLocked(self.folder, _read(self.path))

    def _remove_stale(self, owner):
        """Move a dead process's lock out of the way; if another process took it over in the
        meantime (its content changed), put that one back."""
        aside = f'{self.path}.stale-{uuid.uuid4().hex[:8]}'
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        except OSError as e:
            raise UserError(f'cannot take over the stale lock {self.path}: {e.strerror or e}') from None
        if _read(aside) != owner:
            try:
                os.link(aside, self.path)         # never over a newer lock
            except OSError:
                pass
        else:
            self.taken_over = owner
        try:
            os.remove(aside)
        except OSError:
            pass

    def move_to(self, folder):
        """The workspace folder (with this lock in it) was renamed to `folder` (start_fresh):
        move the lock file back into a new, empty folder at self.folder."""
        old = os.path.join(folder, LOCK_FILE)
        try:
            os.makedirs(self.folder, exist_ok=True)
            os.link(old, self.path)
        except FileExistsError:
            raise WorkspaceLocked(self.folder, _read(self.path)) from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                raise UserError(f'cannot lock the workspace {self.folder}: {e.strerror or e}') from None
            # no hard links here: write a new lock file with the same token
            with open(old, encoding='utf-8') as f:
                data = f.read()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                f.write(data)
        try:
            os.remove(old)
        except OSError:
            pass

    def release(self):
        """Remove the lock file when it is still ours (and the folder when the lock was all
        that was in it and it was made for the lock)."""
        if not self.held:
            return
        _HELD.discard(self.token)
        if _read(self.path).get('token') == self.token:
            try:
                os.remove(self.path)
            except OSError:
                pass
        self.token = None
        if self.created_folder:
            try:
                if not os.listdir(self.folder):
                    os.rmdir(self.folder)
            except OSError:
                pass
