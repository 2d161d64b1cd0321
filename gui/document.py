"""The document: the open video's Session, its workspace (resume, autosave) and exports.

No Qt here. Questions for the person (resume or start over, replace files) are callbacks the
window provides; tests pass plain functions. The Session owns frames, masks and objects; the
document decides when it is opened, saved and closed.
"""
import os
from dataclasses import dataclass

import numpy as np

from gui.workspace import Workspace, WorkspaceTooNew, archive_name
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


def saved_settings(path, options):
    """The settings saved in `path`'s workspace ({} when there is none or it is unreadable)."""
    try:
        ws = Workspace.for_source(path, explicit=options.workspace)
        if not ws.exists():
            return {}
        return dict(ws.read_meta().get('settings') or {})
    except UserError:
        return {}


class Document:
    """One open video at a time. `log(text, level)`; `ask_resume(path, description)` ->
    'resume' | 'fresh' | 'cancel'; `ask_mismatch(path, reason, archive)` -> 'fresh' | 'cancel'."""

    def __init__(self, options, networks=None, log=None, ask_resume=None, ask_mismatch=None):
        self.opts = options
        self.networks = networks
        self.log = log or (lambda text, level='info': None)
        self.ask_resume = ask_resume or (lambda path, desc: 'resume')
        self.ask_mismatch = ask_mismatch or (lambda path, reason, archive: 'cancel')
        self.session = None
        self.workspace = None
        self.settings = {}           # restored on resume, for the window
        self.open_settings = {}      # resolution and mem_freq the open video was loaded with
        self._opening = {}
        self.mask_inputs = []        # mask files/folders loaded: never export over them
        self.export_dir = ''
        self._autosave_error = None

    # ------------------------------------------------------------------ opening
    def open_job(self, path):
        """A job fn(progress, should_cancel) -> Session (None when cancelled) that loads
        `path` with the settings its workspace saved (processing size, memory frequency,
        networks) or the options'. Runs in a worker thread; `install` it afterwards."""
        saved = saved_settings(path, self.opts)
        chosen = {'resolution': saved.get('resolution', self.opts.resolution),
                  'mem_freq': saved.get('mem_freq', self.opts.mem_freq)}
        self._opening = chosen

        def job(progress, should_cancel):
            networks = self._networks_for(saved.get('model'))
            return self._open_session(path, chosen, networks, progress, should_cancel)
        return job

    def _open_session(self, path, chosen, networks, progress, should_cancel):
        from inference_core.session import Session
        return Session.open(path, resolution=chosen['resolution'], networks=networks,
                            device=self.opts.device, model=self.opts.model,
                            saves_dir=self.opts.saves_dir, mem_freq=chosen['mem_freq'],
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
        """Make `session` the open video: workspace (resume / start over), initial masks.
        Raises UserError (OpenCancelled on Cancel) without changing the current video. Returns
        the frame to show."""
        ws = Workspace.for_source(session.source or 'untitled', explicit=self.opts.workspace) \
            if (session.source or self.opts.workspace) else None
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
                # Never reset silently: ask (or follow --no-resume); the old work is kept whole.
                choice = 'fresh' if choice_given is False else \
                    self.ask_mismatch(ws.path, str(e), archive_name(ws.path))
                if choice != 'fresh':
                    raise OpenCancelled('opening cancelled') from None
                self.log(str(e), 'warning')
                fresh = True
            if meta is not None and (meta.get('edited_frames') or ws.mask_frames()):
                if choice_given is None:
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
        if masks and not resumed:
            done = session.load_masks(masks)
            self.log(f'Loaded {len(done)} mask(s) from {masks}')
        elif masks:
            self.log('Resumed the workspace; --masks ignored', 'warning')
        for w in session.load_warnings:
            self.log(w, 'warning')
        if fresh:
            kept = ws.start_fresh()
            if kept:
                self.log(f'Started a new workspace; the previous work is kept in {kept}',
                         'warning')
        self.close()
        self.session, self.workspace = session, ws
        self.open_settings, self._opening = self._opening, {}
        if session.networks is not None:
            self.networks = session.networks
        self.mask_inputs = [masks] if masks else []
        self.settings = dict(meta.get('settings') or {}) if resumed else {}
        if resumed:
            self.settings['current_frame'] = meta.get('current_frame', 0)
            self.log(f'Resumed workspace {ws.path}')
        if ws is not None:
            session.subscribe(self._on_event)
            if session.edited_frames or masks:
                ws.mark_dirty(set(session.edited_frames) |
                              set(np.flatnonzero(session.frames_with_masks()).tolist()), meta=True)
        first = self.settings.get('current_frame', 0)
        if masks and not resumed and session.edited_frames:
            first = session.edited_frames[0]
        return min(max(int(first), 0), session.num_frames - 1)

    def _on_event(self, event):
        # any thread: the workspace bookkeeping is thread-safe
        if self.workspace is not None:
            if event.kind == 'frames':
                self.workspace.mark_dirty(event.frames)
            elif event.kind == 'objects':
                self.workspace.mark_dirty((), meta=True)

    def close(self, settings=None):
        """Save and close the open video (if any)."""
        if self.session is None:
            return
        if settings and self.workspace is not None and self.workspace.exists():
            self.workspace.mark_dirty((), meta=True)     # where the person was, how they worked
        self.flush(settings)
        self.session.unsubscribe(self._on_event)
        self.session.close()
        self.session = self.workspace = None

    # ------------------------------------------------------------------ autosave
    def flush(self, settings=None):
        """Write what changed to the workspace. Never raises: a problem is logged once (it is
        retried on the next call) and work goes on."""
        ws, s = self.workspace, self.session
        if ws is None or s is None or not ws.has_dirty():
            return
        try:
            ws.flush(s, settings_meta(settings))
        except UserError as e:
            if str(e) != self._autosave_error:
                self._autosave_error = str(e)
                self.log(f'{e} (autosave will retry)', 'warning')
        else:
            if self._autosave_error:
                self.log('Autosave works again.')
            self._autosave_error = None

    def mark_settings_dirty(self):
        if self.workspace is not None:
            self.workspace.mark_dirty((), meta=True)

    # ------------------------------------------------------------------ masks and exports
    def load_masks(self, path):
        done = self.session.load_masks(path)
        self.mask_inputs.append(path)
        return done

    def default_export_dir(self):
        s = self.session
        if self.export_dir:
            return self.export_dir
        if s is not None and s.source:
            return os.path.splitext(s.source.rstrip(os.sep))[0] + '_masks'
        return os.path.expanduser('~/ivos_export')

    def existing_outputs(self, out_dir, formats):
        """Files an export would replace (raises UserError when the folder is unusable)."""
        from util.atomic import ensure_writable_dir
        ensure_writable_dir(out_dir)
        return self.session.existing_outputs(out_dir, formats)

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
