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
"""
import hashlib
import json
import os
import threading
import time

import numpy as np
from PIL import Image

from util.labels import resize_labels
from util.atomic import write_bytes, write_json
from util.errors import UserError
from util.export import indexed_png_bytes

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
        self._meta_dirty = False      # objects or settings changed: workspace.json to rewrite
        self._lock = threading.Lock()
        self.last_save = None

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
        """Raise UserError when the workspace was made for a different video."""
        meta = meta or self.read_meta()
        if int(meta.get('num_frames', -1)) != session.num_frames:
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
        if not os.path.isdir(self.masks_dir):
            return {}
        out = {}
        for n in os.listdir(self.masks_dir):
            stem, ext = os.path.splitext(n)
            if ext == '.png' and stem.isdigit():
                out[int(stem)] = os.path.join(self.masks_dir, n)
        return out

    def load_into(self, session):
        """Restore objects, masks and edited marks into a freshly opened `session`
        (Session.restore_work). Returns the metadata dict. Masks saved at another processing
        size are resized."""
        meta = self.check_matches(session)
        objects = []
        for i, o in enumerate(meta.get('objects', [])):
            color = o.get('color')
            if not (isinstance(color, (list, tuple)) and len(color) == 3):
                color = session.colors()[i + 1] if i + 1 <= session.num_objects else (255, 255, 255)
            objects.append((o.get('name') or f'object {i + 1}', tuple(int(c) for c in color),
                            bool(o.get('visible', True))))
        masks = {}
        for t, path in sorted(self.mask_frames().items()):
            if not 0 <= t < session.num_frames:
                continue
            try:
                with Image.open(path) as im:
                    labels = np.array(im, dtype=np.uint8)
            except Exception:
                continue          # an unreadable file loses one frame, not the workspace
            if labels.ndim == 2:
                masks[t] = resize_labels(labels, session.height, session.width)
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
        if os.path.isdir(self.path) and os.listdir(self.path):
            kept = archive_name(self.path)
            try:
                os.rename(self.path, kept)
            except OSError as e:
                raise UserError(f'cannot keep the old workspace {self.path} as {kept}: '
                                f'{e.strerror or e}; nothing was changed') from None
        os.makedirs(self.masks_dir, exist_ok=True)
        with self._lock:
            self._dirty.clear()
        return kept

    def mark_dirty(self, frames, meta=False):
        """Frames (and with meta=True the objects / settings) to save: may be called from
        the propagation thread."""
        with self._lock:
            self._dirty.update(int(t) for t in frames)
            self._meta_dirty = self._meta_dirty or bool(meta)

    def has_dirty(self):
        with self._lock:
            return bool(self._dirty) or self._meta_dirty

    def flush(self, session, meta_extra=None):
        """Write the label PNG of every changed frame (or remove it when the frame is empty)
        and the metadata. Returns the number of frames written."""
        with self._lock:
            dirty, self._dirty = sorted(self._dirty), set()
            self._meta_dirty = False
        try:
            os.makedirs(self.masks_dir, exist_ok=True)
            for t in dirty:
                if not 0 <= t < session.num_frames:
                    continue
                labels = session.get_mask(t)
                path = os.path.join(self.masks_dir, f'{t:05d}.png')
                if labels.any():
                    write_bytes(path, indexed_png_bytes(labels))
                elif os.path.exists(path):
                    os.remove(path)
            self.save_meta(session, meta_extra)
        except OSError as e:
            with self._lock:     # try again next time
                self._dirty.update(dirty)
                self._meta_dirty = True
            raise UserError(f'cannot write the workspace {self.path}: {e.strerror or e}') from None
        self.last_save = time.time()
        return len(dirty)

    def save_meta(self, session, extra=None):
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
