"""Workspace autosave: the work on a video survives closing, a crash or kill -9.

Layout of a workspace folder (default `<video>.ivos/` next to the video or image folder):
  workspace.json     objects, edited frames, the propagation's per-frame confidence and
                     source, current frame, settings (written atomically)
  masks/00012.png    label map of frame 12 at processing resolution, indexed PNG with the DAVIS
                     palette (index = object id); one file per frame that has any mask,
                     written atomically after every committed change

Starting over (the person's choice, or a workspace that no longer matches its video) never
deletes anything: the whole folder is renamed to `<workspace>.<YYYYmmdd-HHMMSS>` beside it and a
new one is started. To go back to it, close the tool and rename it back to `<video>.ivos`.

workspace.json carries a `version`; older versions are migrated when read (the next save
writes the current one), a newer version is refused with a message and left untouched.
Only frames that changed since the last save are written, so a stroke costs one PNG.

One window at a time: the window that opens a workspace holds its lock (workspace_lock.py).
A workspace.json with entries of the wrong type is treated like one made for another video
(the person is asked, the file is kept). A mask PNG the tool cannot read (edited by hand into
an unknown format, corrupt) is kept as it is, named in a warning, and never deleted: when that
frame is saved again, the unreadable file is kept beside it as `NNNNN.unreadable.png`. Hand
edits it can read are read like imported masks (util/mask_io.py: RGB by DAVIS colour, grey
levels), and ids above the object count get objects of their own.
"""
import hashlib
import json
import os
import threading
import time

import numpy as np
from PIL import Image

from gui.workspace_lock import LOCK_FILE, WorkspaceLock
from util.labels import resize_labels
from util.atomic import write_bytes, write_json
from util.errors import UserError, os_reason
from util.export import indexed_png_bytes
from util.palette import davis_palette

VERSION = 2          # 2: frame_names (an image folder whose files changed no longer matches)
META = 'workspace.json'


def default_workspace_path(source):
    """`<video>.ivos` next to a video file, `<folder>.ivos` next to an image folder."""
    src = os.path.abspath(os.fspath(source)).rstrip(os.sep)
    return src + '.ivos'


def fallback_workspace_path(source):
    """Per-user location used when the folder next to the video is not writable."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    src = os.path.abspath(os.fspath(source)).rstrip(os.sep)
    h = hashlib.sha1(src.encode('utf-8', 'surrogateescape')).hexdigest()[:12]
    name = os.path.basename(src) or 'video'
    return os.path.join(base, 'ivos', 'workspaces', f'{name}-{h}.ivos')


def _can_create(path):
    """True when `path` is a writable folder or could be created (nothing is created)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


class WorkspaceTooNew(UserError):
    """The workspace was written by a newer version: never reset or move it."""


def migrate(meta):
    """Bring a workspace.json of an older format up to VERSION (in memory)."""
    meta = dict(meta)
    if meta['version'] < 2:
        meta.setdefault('frame_names', None)        # unknown: not checked
    meta['version'] = VERSION
    return meta


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(v):
    return isinstance(v, list) and all(_is_int(x) for x in v)


def invalid_entry(meta):
    """The first entry of a workspace.json (migrated) with a value of the wrong type, as
    'name (what it is)', or None when every entry the tool reads has the type it writes.
    A file that fails this was not written by this tool as it is (edited by hand, damaged)."""
    def bad(name):
        return f'{name} ({type(meta.get(name)).__name__} {str(meta.get(name))[:30]!r})'
    if not _is_int(meta.get('num_frames')) or meta['num_frames'] < 1:
        return bad('num_frames')
    size = meta.get('orig_size')
    if not (_int_list(size) and len(size) == 2 and min(size) > 0):
        return bad('orig_size')
    names = meta.get('frame_names')
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        return bad('frame_names')
    objects = meta.get('objects', [])
    if not isinstance(objects, list) or len(objects) > 255 or not all(
            isinstance(o, dict) and isinstance(o.get('name', ''), (str, type(None)))
            and (o.get('color') is None or (_int_list(o['color']) and len(o['color']) == 3
                                            and all(0 <= c <= 255 for c in o['color'])))
            for o in objects):
        return bad('objects')
    if not _int_list(meta.get('edited_frames', [])):
        return bad('edited_frames')
    for key in ('propagation', 'settings'):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            return bad(key)
    if meta.get('current_frame') is not None and not _is_int(meta['current_frame']):
        return bad('current_frame')
    if meta.get('mask_inputs') is not None and not (
            isinstance(meta['mask_inputs'], list) and all(isinstance(p, str) for p in meta['mask_inputs'])):
        return bad('mask_inputs')
    return None


def archive_name(path):
    """`<path>.<YYYYmmdd-HHMMSS>` (with -2, -3 ... when taken): where an old workspace is kept."""
    base = f'{path}.{time.strftime("%Y%m%d-%H%M%S")}'
    name, i = base, 1
    while os.path.exists(name):
        i += 1
        name = f'{base}-{i}'
    return name


class Workspace:
    """One workspace folder bound to one video's Session."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.masks_dir = os.path.join(self.path, 'masks')
        self._dirty = set()
        self._meta_dirty = False      # objects changed: workspace.json to rewrite
        self._settings_dirty = False  # only the window's settings changed (not work)
        self._lock = threading.Lock()
        self.last_save = None
        self.lock = None              # WorkspaceLock while this window holds the workspace
        self.unreadable = {}          # frame -> why its mask PNG could not be read (kept)
        self.notes = []               # what load_into had to say (the window shows them)

    @classmethod
    def for_source(cls, source, explicit=None):
        """Workspace for a video: `explicit` (--workspace) or next to the video, falling back
        to the per-user cache folder when that is not writable. Nothing is created until the
        first save. Raises UserError when an explicit folder cannot be used."""
        if explicit:
            ws = cls(explicit)
            if os.path.exists(ws.path) and not os.path.isdir(ws.path):
                raise UserError(f'workspace path exists and is not a folder: {ws.path}')
            if not _can_create(ws.path):
                raise UserError(f'workspace folder is not writable: {ws.path}')
            return ws
        ws = cls(default_workspace_path(source))
        if _can_create(ws.path) and not os.path.isfile(ws.path):
            return ws
        ws = cls(fallback_workspace_path(source))
        if not _can_create(ws.path):
            raise UserError(f'cannot create a workspace folder (tried next to the video and {ws.path})')
        return ws

    # ------------------------------------------------------------------ lock
    def acquire_lock(self):
        """Hold the workspace for this window (raises WorkspaceLocked when another live
        window holds it, UserError when the folder cannot be written)."""
        if self.lock is None or not self.lock.held:
            self.lock = WorkspaceLock(self.path).acquire()
        return self.lock

    def release_lock(self):
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # ------------------------------------------------------------------ reading
    def exists(self):
        return os.path.isfile(os.path.join(self.path, META))

    def read_meta(self):
        try:
            with open(os.path.join(self.path, META), encoding='utf-8') as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise UserError(f'no workspace in {self.path}') from None
        except (OSError, ValueError) as e:
            raise UserError(f'workspace file is unreadable: {os.path.join(self.path, META)} ({e})') from None
        if not isinstance(meta, dict) or not isinstance(meta.get('version'), int):
            raise UserError(f'workspace file is not a workspace: {os.path.join(self.path, META)}')
        if meta['version'] > VERSION:
            raise WorkspaceTooNew(f'workspace {self.path} was saved by a newer version of this tool '
                            f'(format {meta["version"]}, this one reads up to {VERSION}); '
                            'it was left untouched')
        return migrate(meta)

    def check_matches(self, session, meta=None):
        """Raise UserError when the workspace was made for a different video (or its
        workspace.json holds entries of the wrong type: it cannot be resumed either)."""
        meta = meta or self.read_meta()
        wrong = invalid_entry(meta)
        if wrong is not None:
            raise UserError(f'workspace file {os.path.join(self.path, META)} has an entry of '
                            f'the wrong type: {wrong}')
        if meta['num_frames'] != session.num_frames:
            raise UserError(f'workspace {self.path} is for a video of {meta.get("num_frames")} '
                            f'frames, this one has {session.num_frames}')
        if tuple(meta.get('orig_size', ())) != (session.orig_height, session.orig_width):
            raise UserError(f'workspace {self.path} is for frames of another size')
        names = meta.get('frame_names')
        if names is not None and list(names) != list(session.frame_names):
            raise UserError(f'workspace {self.path} is for other frame files')
        return meta

    def describe(self, meta=None):
        """One line for the resume dialog."""
        meta = meta or self.read_meta()
        n_edit = len(meta.get('edited_frames', []))
        n_mask = len(self.mask_frames())
        when = meta.get('saved_at')
        stamp = time.strftime('%Y-%m-%d %H:%M', time.localtime(when)) if when else 'unknown time'
        return (f'{len(meta.get("objects", []))} object(s), {n_edit} edited frame(s), '
                f'{n_mask} frame(s) with masks, saved {stamp}')

    def mask_frames(self):
        try:
            names = os.listdir(self.masks_dir)
        except OSError:
            return {}
        out = {}
        for n in names:
            stem, ext = os.path.splitext(n)
            if ext == '.png' and stem.isdigit():
                out[int(stem)] = os.path.join(self.masks_dir, n)
        return out

    def load_into(self, session):
        """Restore objects, masks and edited marks into a freshly opened `session`
        (Session.restore_work). Returns the metadata dict. Masks saved at another processing
        size are resized; masks edited by hand are read like imported masks (palette index,
        DAVIS colours, grey levels), ids above the saved objects get new objects, and a file
        that cannot be read is kept untouched and named in `notes`."""
        from util.mask_io import read_label_png
        meta = self.check_matches(session)
        objects = []
        for i, o in enumerate(meta.get('objects', [])):
            color = o.get('color')
            if not (isinstance(color, (list, tuple)) and len(color) == 3):
                color = session.colors()[i + 1] if i + 1 <= session.num_objects else (255, 255, 255)
            objects.append((o.get('name') or f'object {i + 1}', tuple(int(c) for c in color),
                            bool(o.get('visible', True))))
        masks, self.unreadable, self.notes = {}, {}, []
        for t, path in sorted(self.mask_frames().items()):
            if not 0 <= t < session.num_frames:
                continue
            try:
                labels = read_label_png(path)
            except UserError as e:
                # an unreadable file loses one frame for now, never the file or the workspace
                self.unreadable[t] = str(e)
                continue
            masks[t] = resize_labels(labels, session.height, session.width)
        top = max((int(m.max()) for m in masks.values()), default=0)
        if top > len(objects):
            added = range(len(objects) + 1, top + 1)
            pal = davis_palette()
            objects += [(f'object {k}', tuple(int(c) for c in pal[k]), True) for k in added]
            self.notes.append(f'the workspace masks hold object id(s) up to {top} but the '
                              f'workspace lists {top - len(added)} object(s): object(s) '
                              f'{added[0]}..{top} were added for them')
        if self.unreadable:
            frames = sorted(self.unreadable)
            self.notes.append(
                f'could not read the workspace mask of frame(s) {", ".join(map(str, frames))} '
                f'({self.unreadable[frames[0]]}); the file(s) are kept untouched in '
                f'{self.masks_dir} (a new mask for such a frame is saved beside it, the old '
                f'file kept as NNNNN.unreadable.png)')
        # An edited frame whose PNG is missing was cleared to background by the person.
        record = meta.get('propagation')
        session.restore_work(objects, masks, edited=meta.get('edited_frames', []),
                             record=record if isinstance(record, dict) else None)
        return meta

    # ------------------------------------------------------------------ writing
    def start_fresh(self):
        """Keep the whole previous workspace under a dated name beside it and start empty.
        Returns the folder the old work was moved to (None when there was nothing to keep)."""
        kept = None
        if os.path.isdir(self.path) and set(os.listdir(self.path)) - {LOCK_FILE}:
            kept = archive_name(self.path)
            try:
                os.rename(self.path, kept)
            except OSError as e:
                raise UserError(f'cannot keep the old workspace {self.path} as {kept}: '
                                f'{e.strerror or e}; nothing was changed') from None
            if self.lock is not None and self.lock.held:
                self.lock.move_to(kept)          # the lock stays with this window
        os.makedirs(self.masks_dir, exist_ok=True)
        with self._lock:
            self._dirty.clear()
        self.unreadable = {}
        return kept

    def mark_dirty(self, frames, meta=False, settings=False):
        """Frames (with meta=True the objects, with settings=True only the window's settings)
        to save: may be called from the propagation thread."""
        with self._lock:
            self._dirty.update(int(t) for t in frames)
            self._meta_dirty = self._meta_dirty or bool(meta)
            self._settings_dirty = self._settings_dirty or bool(settings)

    def has_dirty(self):
        with self._lock:
            return bool(self._dirty) or self._meta_dirty or self._settings_dirty

    def has_unsaved_work(self):
        """Masks or objects changed since the last successful save (settings aside)."""
        with self._lock:
            return bool(self._dirty) or self._meta_dirty

    def flush(self, session, meta_extra=None):
        """Write the label PNG of every changed frame (or remove it when the frame is empty)
        and the metadata. Returns the number of frames written."""
        with self._lock:
            dirty, self._dirty = sorted(self._dirty), set()
            meta_dirty, settings_dirty = self._meta_dirty, self._settings_dirty
            self._meta_dirty = self._settings_dirty = False
        done = set()
        try:
            os.makedirs(self.masks_dir, exist_ok=True)
            for t in dirty:
                if not 0 <= t < session.num_frames:
                    done.add(t)
                    continue
                labels = session.get_mask(t)
                path = os.path.join(self.masks_dir, f'{t:05d}.png')
                if t in self.unreadable and os.path.lexists(path):
                    # never overwrite or delete a file the tool could not read
                    os.rename(path, _free_name(os.path.join(self.masks_dir, f'{t:05d}.unreadable'),
                                               '.png'))
                if labels.any():
                    write_bytes(path, indexed_png_bytes(labels))
                elif os.path.exists(path):
                    os.remove(path)
                self.unreadable.pop(t, None)
                done.add(t)
            self.save_meta(session, meta_extra)
        except OSError as e:
            with self._lock:     # try again next time
                self._dirty.update(set(dirty) - done)
                self._meta_dirty = self._meta_dirty or meta_dirty or bool(dirty)
                self._settings_dirty = self._settings_dirty or settings_dirty
            raise UserError(f'cannot write the workspace {self.path}: '
                            f'{os_reason(e)}') from None
        self.last_save = time.time()
        return len(dirty)

    def save_meta(self, session, extra=None):
        """Write workspace.json (objects, edited frames, propagation record; `extra`: the
        window's settings, the mask inputs)."""
        meta = {
            'version': VERSION,
            'source': os.path.abspath(session.source) if session.source else '',
            'num_frames': session.num_frames,
            'size': [session.height, session.width],
            'orig_size': [session.orig_height, session.orig_width],
            'frame_names': list(session.frame_names),
            'objects': [{'id': o.id, 'name': o.name, 'color': list(o.color), 'visible': o.visible}
                        for o in session.objects],
            'edited_frames': [int(t) for t in session.edited_frames],
            # per-frame confidence and source of the propagated frames: the timeline strip,
            # `N` and the next correction's combination carry on after a restart
            'propagation': {k: {str(t): v for t, v in d.items()}
                            for k, d in session.propagation_record().items()},
            'saved_at': time.time(),
        }
        if extra:
            meta.update(extra)
        write_json(os.path.join(self.path, META), meta, indent=1)


def _free_name(base, ext):
    """`base + ext`, or `base-2 + ext` ... when taken."""
    name, i = base + ext, 1
    while os.path.lexists(name):
        i += 1
        name = f'{base}-{i}{ext}'
    return name
