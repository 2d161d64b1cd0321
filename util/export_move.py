"""The last step of an export: staged files moved into the output folder, all or nothing.

An export writes every file into a hidden staging folder inside the output folder first
(util/export.py). Moving them into place used to stop half-way when one destination could not
take its file (out/masks read-only, out/masks a link to another file system, a file of the
user's named `objects` where a folder was needed): some files were new, others old, and the
message said that nothing was replaced. Here:

1. prepare: every destination folder is created (or found to be a folder), each one is checked
   to be writable, and files for a folder on another file system are copied next to it first;
   a problem here changes nothing (the folders this step made are removed again);
2. move: each file replaces its destination (os.replace); a file it replaces is kept as a hard
   link (or, where links are impossible, renamed) in the staging area first;
3. on a failure while moving, everything moved is put back (old files restored, new ones
   removed) and the message says so; if something cannot be put back, the message names it and
   the folder where the previous versions are kept.

Staging folders are named `.ivos-export-<host>-<pid>-<start>-<random>`: a later export removes
those of processes that no longer run on this host (an export killed with kill -9).
"""
import errno
import hashlib
import os
import shutil
import tempfile

from util.errors import UserError, os_reason
from util.owner import current_owner, hostname, owner_alive

STAGING_PREFIX = '.ivos-export-'


def _host_tag(host=None):
    return hashlib.sha1((host or hostname()).encode('utf-8', 'surrogateescape')).hexdigest()[:8]


def staging_prefix():
    me = current_owner()
    return f'{STAGING_PREFIX}{_host_tag(me["host"])}-{me["pid"]}-{me["start"] or 0}-'


def _staging_owner(name):
    """The owner a staging folder name records ({'pid', 'host', 'start'}), or None for names
    this process cannot judge (another host, an older naming)."""
    parts = name[len(STAGING_PREFIX):].split('-')
    if len(parts) < 4 or parts[0] != _host_tag():
        return None
    try:
        pid, start = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    return {'pid': pid, 'host': hostname(), 'start': start or None}


def clean_stale_staging(folder):
    """Remove the staging folders in `folder` left by exports whose process no longer runs on
    this host. Returns the names removed."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    gone = []
    for n in names:
        if not n.startswith(STAGING_PREFIX):
            continue
        owner = _staging_owner(n)
        if owner is None or owner_alive(owner):
            continue
        shutil.rmtree(os.path.join(folder, n), ignore_errors=True)
        if not os.path.lexists(os.path.join(folder, n)):
            gone.append(n)
    return gone


def make_staging(out_dir):
    """A new staging folder in out_dir (stale ones of dead processes are removed first)."""
    clean_stale_staging(out_dir)
    return tempfile.mkdtemp(prefix=staging_prefix(), dir=out_dir)


def blocked_paths(out_dir, rels):
    """The first path under out_dir that keeps an export of `rels` from being put in place: a
    file where a folder is needed, or a folder where a file goes. None when there is none."""
    seen = set()
    for rel in rels:
        parts = rel.replace(os.sep, '/').split('/')
        for i in range(1, len(parts)):
            d = os.path.join(out_dir, *parts[:i])
            if d in seen:
                continue
            seen.add(d)
            if os.path.lexists(d) and not os.path.isdir(d):
                return d, 'is a file, not a folder'
            if not os.path.lexists(d):
                break
        p = os.path.join(out_dir, rel)
        if os.path.isdir(p) and not os.path.islink(p):
            return p, 'is a folder, not a file'
    return None


class _Move:
    def __init__(self, stage, out_dir):
        self.stage, self.out_dir = stage, out_dir
        self.made_dirs = []          # folders created in out_dir (removed on rollback)
        self.sides = {}              # destination folder -> staging folder on its file system
        self.moved = []              # (dst, backup or None)
        self.src = {}                # rel -> file to move (in the stage or a side staging)

    # ------------------------------------------------------------------ prepare
    def files(self):
        out = []
        for root, dirs, names in os.walk(self.stage):
            if root == self.stage and '.backup' in dirs:
                dirs.remove('.backup')
            for n in names:
                out.append(os.path.relpath(os.path.join(root, n), self.stage))
        return sorted(out)

    def prepare(self, rels):
        found = blocked_paths(self.out_dir, rels)
        if found:
            raise _Blocked(found[0], found[1])
        stage_dev = os.stat(self.stage).st_dev
        for d in sorted({os.path.dirname(os.path.join(self.out_dir, r)) for r in rels}):
            self._make_dirs(d)
            if os.stat(d).st_dev != stage_dev:
                self._side(d)                      # also proves the folder is writable
            else:
                fd, probe = tempfile.mkstemp(prefix=staging_prefix(), suffix='.probe', dir=d)
                os.close(fd)
                os.remove(probe)
        for r in rels:
            src = os.path.join(self.stage, r)
            d = os.path.dirname(os.path.join(self.out_dir, r))
            if d in self.sides:                    # another file system: copy there first
                side = os.path.join(self.sides[d], os.path.basename(r))
                shutil.copyfile(src, side)
                shutil.copymode(src, side)
                src = side
            self.src[r] = src

    def _make_dirs(self, d):
        missing = []
        p = d
        while not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        for p in reversed(missing):
            os.mkdir(p)
            self.made_dirs.append(p)

    def _side(self, d):
        if d not in self.sides:
            self.sides[d] = tempfile.mkdtemp(prefix=staging_prefix(), dir=d)
        return self.sides[d]

    # ------------------------------------------------------------------ move
    def move(self, rels):
        for r in rels:
            dst = os.path.join(self.out_dir, r)
            backup = self._keep_old(dst, r) if os.path.lexists(dst) else None
            self.moved.append((dst, backup))
            try:
                os.replace(self.src[r], dst)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                # a link to another file system the folder check did not see (a bind mount)
                side = os.path.join(self._side(os.path.dirname(dst)), os.path.basename(r))
                shutil.copyfile(self.src[r], side)
                shutil.copymode(self.src[r], side)
                os.replace(side, dst)

    def _keep_old(self, dst, rel):
        """Keep the file `dst` is about to replace (a hard link, else moved aside) on the
        destination's own file system; returns where."""
        d = os.path.dirname(dst)
        if d in self.sides:
            folder = os.path.join(self.sides[d], '.backup')
        else:
            folder = os.path.join(self.stage, '.backup', os.path.dirname(rel))
        try:
            return self._keep_in(dst, folder)
        except OSError as e:
            if e.errno != errno.EXDEV or d in self.sides:
                raise
            return self._keep_in(dst, os.path.join(self._side(d), '.backup'))

    @staticmethod
    def _keep_in(dst, folder):
        os.makedirs(folder, exist_ok=True)
        backup = os.path.join(folder, os.path.basename(dst))
        try:
            os.link(dst, backup, follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.EXDEV:
                raise
            os.rename(dst, backup)        # no hard links here: moved aside, put back below
        return backup

    def rollback(self):
        """Undo the moves; returns the destinations that could not be put back."""
        failed = []
        for dst, backup in reversed(self.moved):
            try:
                if backup is not None:
                    os.replace(backup, dst)
                elif os.path.lexists(dst):
                    os.remove(dst)
            except OSError:
                failed.append(dst)
        self.moved = []
        for d in reversed(self.made_dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.made_dirs = []
        return failed

    def cleanup(self):
        for side in self.sides.values():
            shutil.rmtree(side, ignore_errors=True)


class _Blocked(Exception):
    def __init__(self, path, what):
        super().__init__(path, what)
        self.path, self.what = path, what


def move_into_place(stage, out_dir):
    """Move every file staged in `stage` to the same relative path under out_dir, all or
    nothing (see the module docstring). Raises UserError saying exactly what is in out_dir
    afterwards; `keep_stage` is set on it when the staging folder holds previous versions that
    could not be put back (then it must not be removed)."""
    mv = _Move(stage, out_dir)
    rels = mv.files()
    try:
        try:
            mv.prepare(rels)
        except _Blocked as e:
            mv.rollback()
            raise UserError(f'cannot export to {out_dir}: {e.path} {e.what} (move it away or '
                            f'choose another folder); nothing was written or replaced') from None
        except OSError as e:
            mv.rollback()
            where = e.filename if isinstance(e.filename, str) else out_dir
            raise UserError(f'cannot export to {out_dir}: {_folder_of(where, out_dir)}: '
                            f'{os_reason(e)}; nothing was written or replaced') from None
        try:
            mv.move(rels)
        except OSError as e:
            n = len(mv.moved) - 1
            failed = mv.rollback()
            where = _folder_of(e.filename if isinstance(e.filename, str) else out_dir, out_dir)
            if not failed:
                raise UserError(f'cannot export to {out_dir}: {where}: {os_reason(e)}; the '
                                f'{n} file(s) already moved were put back: nothing was written '
                                f'or replaced') from None
            err = UserError(f'export to {out_dir} failed part-way ({where}: {os_reason(e)}) and '
                            f'{len(failed)} file(s) could not be put back (e.g. {failed[0]}); '
                            f'their previous versions are kept in {stage} and in hidden '
                            f'{STAGING_PREFIX}* folders next to them')
            err.keep_stage = True
            mv.sides = {}                 # keep the side stagings (previous versions) too
            raise err from None
    finally:
        mv.cleanup()


def _folder_of(path, out_dir):
    """The path to name in a message: never a hidden staging path, its destination instead."""
    parts = os.path.normpath(path).split(os.sep)
    for i, p in enumerate(parts):
        if p.startswith(STAGING_PREFIX):
            return os.sep.join(parts[:i]) or out_dir
    return path
