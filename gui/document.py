"""The document: the open video's Session, its workspace (resume, autosave) and exports.

No Qt here. Questions for the person (resume or start over, replace files, a workspace another
window holds) are callbacks the window provides; tests pass plain functions. The Session owns
frames, masks and objects; the document decides when it is opened, saved and closed.

Never losing work: the document holds its workspace's lock (one window per workspace; a second
one is read-only, gets a fresh workspace beside it, or does not open the video), keeps track of
whether autosave works (`autosave_error`, `unsaved_work()`: the window warns and asks before
closing), can move the work to another folder (`save_elsewhere`), and remembers in the
workspace where masks were loaded from (never an export target).
"""
import contextlib
import logging
import os
from dataclasses import dataclass

import numpy as np

from gui.workspace import Workspace, WorkspaceTooNew, archive_name, invalid_entry
from gui.workspace_lock import WorkspaceLocked
from util.errors import UserError

# Settings saved in the workspace and restored on resume ('resolution', 'mem_freq' and 'model'
# when the video is opened, the others by the window).
SETTINGS = ('resolution', 'mem_freq', 'model', 'overlay', 'mode', 'brushes', 'object',
            'current_frame')


@dataclass
class Options:
    resolution: int = 480
    num_objects: int = 1
    mem_freq: int = 5
    device: str = 'auto'
    model: str = 'auto'
    workspace: str = None
    resume: bool = None          # None = ask, True/False = scripted answer
    top_k: int = 20
    max_memory_frames: int = None
    saves_dir: str = 'saves'


class OpenCancelled(UserError):
    """The person chose Cancel in the resume dialog."""


def saved_settings(path, options, log=None):
    """The settings saved in `path`'s workspace ({} when there is none or it is unreadable).
    A processing size or memory frequency that cannot be used is dropped with a warning that
    names the workspace (the command line's value is used instead)."""
    try:
        ws = Workspace.for_source(path, explicit=options.workspace)
        if not ws.exists():
            return {}
        meta = ws.read_meta()
    except UserError:
        return {}
    saved = meta.get('settings')
    if not isinstance(saved, dict) or invalid_entry(meta) == 'settings':
        return {}
    saved = dict(saved)
    from util.frames_io import check_resolution
    checks = {'resolution': check_resolution,
              'mem_freq': lambda v: v if isinstance(v, int) and not isinstance(v, bool)
              and v >= 1 else _raise(UserError(f'must be a positive integer, got {v!r}'))}
    for key, check in checks.items():
        if key in saved:
            try:
                check(saved[key])
            except UserError as e:
                if log is not None:
                    log(f'the workspace {ws.path} saved {key} {saved[key]!r}, which cannot be '
                        f'used ({e}); using {getattr(options, key)}', 'warning')
                del saved[key]
    return saved


def _raise(e):
    raise e


class Document:
    """One open video at a time. `log(text, level)`; `ask_resume(path, description)` ->
    'resume' | 'fresh' | 'cancel'; `ask_mismatch(path, reason, archive)` -> 'fresh' | 'cancel'."""

    def __init__(self, options, networks=None, log=None, ask_resume=None, ask_mismatch=None,
                 ask_locked=None):
        self.opts = options
        self.networks = networks
        self.log = log or (lambda text, level='info': None)
        self.ask_resume = ask_resume or (lambda path, desc: 'resume')
        self.ask_mismatch = ask_mismatch or (lambda path, reason, archive: 'cancel')
        # ask_locked(path, message, beside) -> 'readonly' | 'fresh' | 'cancel'; without it a
        # workspace held by another window is the one-line WorkspaceLocked error
        self.ask_locked = ask_locked
        self.readonly = False        # another window holds the workspace: never write it
        self.session = None
        self.workspace = None
        self.settings = {}           # restored on resume, for the window
        self.open_settings = {}      # resolution and mem_freq the open video was loaded with
        self._opening = {}
        self._opened_networks = None  # what the last open_job's session runs on
        self.mask_inputs = []        # mask files/folders loaded: never export over them
        self.export_dir = ''
        self._autosave_error = None

    # ------------------------------------------------------------------ opening
    def open_job(self, path, resume=None):
        """A job fn(progress, should_cancel) -> Session (None when cancelled) that loads
        `path` with the settings its workspace saved (processing size, memory frequency,
        networks) or the options'. With resume=False (--no-resume) the saved settings are not
        used: starting over always opens the video. Runs in a worker thread; `install` it
        afterwards."""
        choice = self.opts.resume if resume is None else resume
        saved = {} if choice is False else saved_settings(path, self.opts, self.log)
        chosen = {'resolution': saved.get('resolution', self.opts.resolution),
                  'mem_freq': saved.get('mem_freq', self.opts.mem_freq)}
        self._opening = chosen

        def job(progress, should_cancel):
            networks = self._networks_for(saved.get('model'))
            return self._open_session(path, chosen, networks, progress, should_cancel)
        return job

    def _open_session(self, path, chosen, networks, progress, should_cancel):
        from inference_core.session import Session
        if networks is None:            # the ones Session.open would load, kept for the next video
            from inference_core.networks import load_networks
            networks = load_networks(self.opts.model, saves_dir=self.opts.saves_dir,
                                     device=self.opts.device)
        self._opened_networks = networks
        return Session.open(path, resolution=chosen['resolution'], networks=networks,
                            mem_freq=chosen['mem_freq'],
                            top_k=self.opts.top_k,
                            max_memory_frames=self.opts.max_memory_frames,
                            num_objects=self.opts.num_objects, progress=progress, should_cancel=should_cancel)

    def _networks_for(self, kind):
        """The networks the workspace was made with when they differ from the loaded ones and
        can be loaded; else the loaded ones (with a warning)."""
        if kind not in ('official', 'bundled') or self.networks is None \
                or self.networks.kind == kind:
            return self.networks
        from inference_core.networks import load_networks
        try:
            return load_networks(kind, saves_dir=self.opts.saves_dir, device=self.opts.device,
                                 top_k=self.opts.top_k)
        except UserError as e:
            self.log(f'the workspace was made with the {kind} networks, which cannot be loaded '
                     f'({e}); using the {self.networks.kind} ones', 'warning')
            return self.networks

    def install(self, session, masks=None, resume=None):
        """Make `session` the open video: workspace (lock, resume / start over), initial masks.
        Raises UserError (OpenCancelled on Cancel, WorkspaceLocked when another window holds
        the workspace and there is nobody to ask) without changing the current video. Returns
        the frame to show."""
        ws = Workspace.for_source(session.source or 'untitled', explicit=self.opts.workspace) \
            if (session.source or self.opts.workspace) else None
        readonly = False
        old = self.workspace
        if ws is not None and old is not None and old.path == ws.path and old.lock is not None:
            ws.lock = old.lock              # reopening the video this window holds
        elif ws is not None:
            ws, readonly = self._lock(ws)
        try:
            return self._install(session, ws, readonly, masks, resume)
        except BaseException:
            if ws is not None and (old is None or ws.lock is not old.lock):
                ws.release_lock()
            raise

    def _lock(self, ws):
        """(workspace, read-only) for this window: `ws` locked; or, when another window holds
        it, what the person chose: read-only, a fresh workspace beside it, or cancel."""
        try:
            ws.acquire_lock()
        except WorkspaceLocked as e:
            if self.ask_locked is None:
                raise
            beside = archive_name(ws.path)
            choice = self.ask_locked(ws.path, str(e), beside)
            if choice == 'readonly':
                self.log(f'{e.short}: opened read-only, nothing is saved (File \u25b8 Save workspace '
                         f'as\u2026 keeps this window\'s work)', 'warning')
                return ws, True
            if choice != 'fresh':
                raise OpenCancelled('opening cancelled') from None
            ws = Workspace(beside)
            ws.acquire_lock()
            self.log(f'{e.short}: this window saves its work in {beside} (open it later with '
                     f'--workspace {beside})', 'warning')
            return ws, False
        except UserError as e:        # the folder cannot be written: autosave will say so
            self.log(f'{e}; the workspace is not locked against a second window', 'warning')
        if ws.lock is not None and ws.lock.taken_over:
            self.log(f'took over the lock of {ws.path} left by a process that no longer runs')
        return ws, False

    def _install(self, session, ws, readonly, masks, resume):
        # Decide first, change the workspace folder last: a failure below (bad --masks, ...)
        # must leave the saved work untouched.
        meta, resumed, fresh = None, False, False
        choice_given = self.opts.resume if resume is None else resume
        if ws is not None and ws.exists():
            try:
                meta = ws.check_matches(session)
            except WorkspaceTooNew:
                raise
            except UserError as e:
                if readonly:                 # never move a workspace another window holds
                    self.log(f'{e}: its work is not shown', 'warning')
                else:
                    # Never reset silently: ask (or follow --no-resume); the old work is kept whole.
                    choice = 'fresh' if choice_given is False else \
                        self.ask_mismatch(ws.path, str(e), archive_name(ws.path))
                    if choice != 'fresh':
                        raise OpenCancelled('opening cancelled') from None
                    self.log(str(e), 'warning')
                    fresh = True
            if meta is not None and (meta.get('edited_frames') or ws.mask_frames()):
                if readonly:
                    choice = 'resume'
                elif choice_given is None:
                    choice = self.ask_resume(ws.path, ws.describe(meta))
                else:
                    choice = 'resume' if choice_given else 'fresh'
                if choice == 'cancel':
                    raise OpenCancelled('opening cancelled')
                if choice == 'resume':
                    meta = ws.load_into(session)
                    resumed = True
                else:
                    fresh = True
        with self.mask_notes():
            if masks and not resumed:
                done = session.load_masks(masks)
                self.log(f'Loaded {len(done)} mask(s) from {masks}')
            elif masks:
                self.log('Resumed the workspace; --masks ignored', 'warning')
        for w in session.load_warnings:
            self.log(w, 'warning')
        earlier_inputs = _saved_mask_inputs(ws)
        if fresh:
            kept = ws.start_fresh()
            if kept:
                self.log(f'Started a new workspace; the previous work is kept in {kept}',
                         'warning')
        if ws is not None and self.workspace is not None and ws.lock is self.workspace.lock:
            self.workspace.lock = None          # handed over to the new workspace object
        self.close()
        self.session, self.workspace, self.readonly = session, ws, readonly
        self._autosave_error = None
        self.open_settings, self._opening = self._opening, {}
        if self._opened_networks is not None:
            self.networks, self._opened_networks = self._opened_networks, None
        self.mask_inputs = list(dict.fromkeys(
            earlier_inputs + ([os.path.abspath(masks)] if masks else [])))
        self.settings = dict(meta.get('settings') or {}) if resumed else {}
        if resumed:
            self.settings['current_frame'] = meta.get('current_frame', 0)
            self.log(f'Resumed workspace {ws.path}' + (' (read-only)' if readonly else ''))
            for note in ws.notes:
                self.log(note, 'warning')
        if ws is not None:
            session.subscribe(self._on_event)
            if not readonly and (session.edited_frames or masks):
                ws.mark_dirty((set(session.edited_frames) |
                               set(np.flatnonzero(session.frames_with_masks()).tolist()))
                              - set(ws.unreadable), meta=True)
        first = self.settings.get('current_frame', 0)
        if masks and not resumed and session.edited_frames:
            first = session.edited_frames[0]
        return min(max(int(first), 0), session.num_frames - 1)

    @contextlib.contextmanager
    def mask_notes(self):
        """How grey masks were read (util.mask_io's one-line notes and ambiguity warnings)
        goes to the window's messages, not only to the terminal."""
        logger = logging.getLogger('util.mask_io')
        doc = self

        class ToLog(logging.Handler):
            def emit(self, record):
                text = record.getMessage()
                doc.log(text, 'warning' if text.startswith('ambiguous') else 'info')
        handler = ToLog()
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)

    def _on_event(self, event):
        # any thread: the workspace bookkeeping is thread-safe
        if self.workspace is not None:
            if event.kind == 'frames':
                self.workspace.mark_dirty(event.frames)
            elif event.kind == 'objects':
                self.workspace.mark_dirty((), meta=True)

    def close(self, settings=None):
        """Save and close the open video (if any); the workspace's lock is released."""
        if self.session is None:
            return
        if settings and self.workspace is not None and self.workspace.exists():
            self.workspace.mark_dirty((), settings=True)   # where the person was, how they worked
        self.flush(settings)
        self.session.unsubscribe(self._on_event)
        self.session.close()
        if self.workspace is not None:
            self.workspace.release_lock()
        self.session = self.workspace = None
        self.readonly = False

    # ------------------------------------------------------------------ autosave
    @property
    def autosave_error(self):
        """Why the last autosave failed (one line), or None while autosave works."""
        return self._autosave_error

    def unsaved_work(self):
        """True when masks or objects changed since they were last saved: autosave fails, or
        the workspace is read-only (another window holds it)."""
        ws = self.workspace
        return self.session is not None and ws is not None and ws.has_unsaved_work()

    def flush(self, settings=None):
        """Write what changed to the workspace. Never raises: a problem is logged once (it is
        retried on the next call, `autosave_error` says what is wrong) and work goes on.
        A read-only workspace is never written."""
        ws, s = self.workspace, self.session
        if ws is None or s is None or self.readonly or not ws.has_dirty():
            return
        try:
            ws.flush(s, self._meta_extra(settings))
        except UserError as e:
            if str(e) != self._autosave_error:
                self._autosave_error = str(e)
                self.log(f'{e}: your work is NOT being saved (autosave will retry; File '
                         f'\u25b8 Save workspace as\u2026 saves it elsewhere)', 'error')
        else:
            if self._autosave_error:
                self.log('Autosave works again: everything is saved.')
            self._autosave_error = None

    def _meta_extra(self, settings):
        extra = settings_meta(settings) or {}
        extra['mask_inputs'] = list(self.mask_inputs)
        return extra

    def save_elsewhere(self, folder, settings=None):
        """Save the whole work (objects, every mask, settings) into a new workspace `folder`
        (it must be empty or not exist) and go on autosaving there. On failure (UserError) the
        current workspace stays as it was. Returns the folder."""
        s = self.session
        if s is None:
            raise UserError('no video is open')
        folder = os.path.abspath(os.fspath(folder))
        if os.path.exists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
            raise UserError(f'{folder} is not an empty folder: choose an empty or a new folder')
        new = Workspace(folder)
        new.acquire_lock()
        try:
            new.mark_dirty(set(np.flatnonzero(s.frames_with_masks()).tolist()) |
                           set(s.edited_frames), meta=True)
            new.flush(s, self._meta_extra(settings))
        except BaseException:
            new.release_lock()
            raise
        old = self.workspace
        self.workspace, self.readonly, self._autosave_error = new, False, None
        if old is not None:
            old.release_lock()
        self.log(f'Saved the work in {folder}; autosave goes on there (open it later with '
                 f'--workspace {folder})')
        return folder

    def mark_settings_dirty(self):
        if self.workspace is not None:
            self.workspace.mark_dirty((), settings=True)

    # ------------------------------------------------------------------ masks and exports
    def load_masks(self, path):
        with self.mask_notes():
            done = self.session.load_masks(path)
        path = os.path.abspath(path)
        if path not in self.mask_inputs:
            self.mask_inputs.append(path)
            if self.workspace is not None:
                self.workspace.mark_dirty((), meta=True)
        return done

    def default_export_dir(self):
        s = self.session
        if self.export_dir:
            return self.export_dir
        if s is not None and s.source:
            return os.path.splitext(s.source.rstrip(os.sep))[0] + '_masks'
        return os.path.expanduser('~/ivos_export')

    def existing_outputs(self, out_dir, formats):
        """Files an export would replace. Raises UserError, before anything is created, when
        the folder is an input (the video's frames, masks loaded now or in an earlier run of
        this workspace) or cannot be written."""
        from util.atomic import check_creatable_dir
        found = self.session.existing_outputs(out_dir, formats, inputs=self.mask_inputs)
        check_creatable_dir(out_dir)
        return found

    def export_job(self, out_dir, formats, alpha=0.5, overwrite=False):
        s, inputs = self.session, list(self.mask_inputs)
        self.export_dir = out_dir
        return lambda progress, should_cancel: s.export(
            out_dir, formats=formats, alpha=alpha, progress=progress,
            should_cancel=should_cancel, overwrite=bool(overwrite), inputs=inputs)


def settings_meta(settings):
    """The workspace.json entries for the window's settings dict."""
    if not settings:
        return None
    settings = dict(settings)
    return {'current_frame': settings.pop('current_frame', 0), 'settings': settings}


def _saved_mask_inputs(ws):
    """The mask folders / files an earlier run of this workspace loaded (kept across starting
    over: they stay off limits as export targets)."""
    if ws is None or not ws.exists():
        return []
    try:
        saved = ws.read_meta().get('mask_inputs')
    except UserError:
        return []
    return [p for p in saved if isinstance(p, str) and p] if isinstance(saved, list) else []
