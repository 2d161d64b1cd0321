"""Never lose work, without a window: the workspace lock across processes, workspaces edited or
damaged by hand, settings a workspace saved that cannot be used, and inputs that are never
export targets. (The window's dialogs and the failing-disk cases are in tests/test_gui.py.)"""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from gui.document import Document, OpenCancelled, Options
from gui.workspace_lock import LOCK_FILE, WorkspaceLock, WorkspaceLocked
from tests.conftest import REPO
from tests.test_engine import make_clip
from util.errors import UserError
from util.export import indexed_png_bytes
from util.owner import current_owner
from util.palette import davis_palette

T = 4


@pytest.fixture
def folder(tmp_path):
    """A 4-frame image folder; its default workspace is <folder>.ivos."""
    frames, gt = make_clip(num_frames=T)
    d = tmp_path / 'clip'
    d.mkdir()
    for t, f in enumerate(frames):
        cv2.imwrite(str(d / f'{t:05d}.png'), f[..., ::-1])
    gt = gt.copy()
    gt[:, 2:12, 2:12] = 2                   # a second object in a corner
    return d, gt


def open_doc(folder, nets, logs=None, resume=True, **kw):
    opts = Options(resolution=kw.pop('resolution', -1), num_objects=2, resume=resume)
    doc = Document(opts, nets, log=(lambda text, level='info': logs.append((level, text)))
                   if logs is not None else None, **kw)
    s = doc.open_job(str(folder))(None, None)
    try:
        doc.install(s)
    except BaseException:
        s.close()
        raise
    return doc


def saved_work(folder, nets, gt):
    doc = open_doc(folder, nets, resume=False)
    for t in range(T):
        doc.session.set_labels(t, gt[t])
    doc.close()
    return folder.parent / (folder.name + '.ivos')


# ---------------------------------------------------------------------------- lock
def test_second_instance_lock_across_processes_and_kill_9(tmp_path):
    """A lock held by another live process refuses; after that process is killed with -9
    its lock is recognised as stale and taken over."""
    ws = tmp_path / 'v.ivos'
    code = ('import sys; sys.path.insert(0, sys.argv[2]); from gui.workspace_lock import '
            'WorkspaceLock; WorkspaceLock(sys.argv[1]).acquire(); print("held", flush=True); '
            'sys.stdin.read()')
    p = subprocess.Popen([sys.executable, '-c', code, str(ws), str(REPO)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'held'
        with pytest.raises(WorkspaceLocked, match=f'process {p.pid} on '):
            WorkspaceLock(ws).acquire()
    finally:
        p.kill()
        p.wait()
    lock = WorkspaceLock(ws).acquire()
    assert lock.taken_over['pid'] == p.pid
    assert json.loads((ws / LOCK_FILE).read_text())['pid'] == os.getpid()
    lock.release()
    assert not (ws / LOCK_FILE).exists()


def test_lock_of_another_host_is_kept_and_a_reused_pid_is_stale(tmp_path):
    ws = tmp_path / 'v.ivos'
    ws.mkdir()
    (ws / LOCK_FILE).write_text(json.dumps({'pid': 1, 'host': 'elsewhere.example', 'token': 'x'}))
    with pytest.raises(WorkspaceLocked, match='elsewhere.example'):
        WorkspaceLock(ws).acquire()
    # pid 1 runs, but it is not the process that wrote the lock (another start time)
    me = current_owner()
    (ws / LOCK_FILE).write_text(json.dumps({'pid': 1, 'host': me['host'], 'start': -5,
                                            'token': 'x'}))
    if me['start'] is None:
        pytest.skip('no /proc: process start times unknown')
    lock = WorkspaceLock(ws).acquire()
    assert lock.taken_over['pid'] == 1
    lock.release()
    assert ws.is_dir()                         # not made for the lock: stays


def test_second_instance_headless_is_one_line_and_changes_nothing(folder, lite):
    d, gt = folder
    a = open_doc(d, lite, resume=False)
    a.session.set_labels(1, gt[1])
    a.flush()
    ws = d.parent / 'clip.ivos'
    before = (ws / 'workspace.json').read_bytes()
    with pytest.raises(WorkspaceLocked) as e:
        open_doc(d, lite, resume=False)            # --no-resume would have moved A's work away
    assert '\n' not in str(e.value) and 'in use by another window' in str(e.value)
    assert (ws / 'workspace.json').read_bytes() == before
    a.close()
    b = open_doc(d, lite)
    assert np.array_equal(b.session.get_mask(1), gt[1])
    b.close()


# ---------------------------------------------------------------------------- hand-edited masks
def test_hand_edited_workspace_masks_are_read_or_kept(folder, lite):
    d, gt = folder
    ws = saved_work(d, lite, gt)
    masks = ws / 'masks'
    # frame 0 re-saved by an image editor as RGB, frame 1 damaged, frame 2 with an object 3
    Image.fromarray(davis_palette()[gt[0]]).convert('RGB').save(masks / '00000.png')
    broken = b'\x89PNG\r\n\x1a\n' + b'not really a png'
    (masks / '00001.png').write_bytes(broken)
    three = gt[2].copy()
    three[-10:, -10:] = 3
    (masks / '00002.png').write_bytes(indexed_png_bytes(three))
    logs = []
    doc = open_doc(d, lite, logs)
    s = doc.session
    assert np.array_equal(s.get_mask(0), gt[0])
    assert np.array_equal(s.get_mask(2), three) and s.num_objects == 3
    text = '\n'.join(t for _l, t in logs)
    assert 'frame(s) 1 ' in text and 'kept untouched' in text and 'object(s) 3..3 were added' in text
    doc.close()
    assert (masks / '00001.png').read_bytes() == broken           # never deleted
    # A new mask for that frame is saved; the file the tool could not read is kept beside it.
    doc = open_doc(d, lite, [])
    doc.session.set_labels(1, gt[1])
    doc.close()
    assert (masks / '00001.unreadable.png').read_bytes() == broken
    assert np.array_equal(np.array(Image.open(masks / '00001.png')), gt[1])


# ---------------------------------------------------------------------------- wrong types
@pytest.mark.parametrize('entry', [{'objects': 'x'}, {'num_frames': 'abc'}, {'orig_size': 5},
                                   {'edited_frames': {'a': 1}}, {'objects': [{'color': 'red'}]},
                                   {'settings': 'x'}, {'propagation': [1]}])
def test_workspace_json_with_wrong_types_is_a_mismatch(folder, lite, entry):
    d, gt = folder
    ws = saved_work(d, lite, gt)
    meta = json.loads((ws / 'workspace.json').read_text())
    meta.update(entry)
    (ws / 'workspace.json').write_text(json.dumps(meta))
    damaged = (ws / 'workspace.json').read_bytes()
    asked = []

    def ask(choice):
        return lambda path, reason, keep: asked.append((reason, keep)) or choice
    with pytest.raises(OpenCancelled):
        open_doc(d, lite, resume=None, ask_mismatch=ask('cancel'))
    assert asked and 'wrong type' in asked[0][0] and next(iter(entry)) in asked[0][0]
    assert (ws / 'workspace.json').read_bytes() == damaged
    doc = open_doc(d, lite, resume=None, ask_mismatch=ask('fresh'))
    assert (open(os.path.join(asked[-1][1], 'workspace.json'), 'rb').read() == damaged)
    doc.close()


# ---------------------------------------------------------------------------- saved settings
def test_unusable_saved_resolution_never_blocks_opening(folder, lite):
    d, gt = folder
    ws = saved_work(d, lite, gt)
    meta = json.loads((ws / 'workspace.json').read_text())
    meta['settings'] = {'resolution': 8, 'mem_freq': 0}
    (ws / 'workspace.json').write_text(json.dumps(meta))
    # --no-resume --resolution 32: the saved settings are not used at all
    doc = open_doc(d, lite, resume=False, resolution=32)
    assert min(doc.session.height, doc.session.width) == 32
    doc.close()
    (ws / 'workspace.json').write_text(json.dumps(meta))
    # resuming: the unusable values are dropped with a warning that names the workspace
    logs = []
    doc = open_doc(d, lite, logs, resume=True, resolution=48)
    assert min(doc.session.height, doc.session.width) == 48
    warn = [t for lvl, t in logs if lvl == 'warning' and 'resolution 8' in t]
    assert warn and str(ws) in warn[0]
    doc.close()


# ---------------------------------------------------------------------------- export targets
def test_mask_folder_stays_off_limits_for_exports_across_runs(folder, lite, tmp_path):
    d, gt = folder
    project = tmp_path / 'project'
    (project / 'masks').mkdir(parents=True)
    for t in range(T):
        (project / 'masks' / f'{t:05d}.png').write_bytes(indexed_png_bytes(gt[t]))
    doc = open_doc(d, lite, resume=False)
    doc.load_masks(str(project / 'masks'))
    doc.close()
    doc = open_doc(d, lite)                        # a later run of the same workspace
    for target in (project / 'masks' / 'sub', project):
        with pytest.raises(UserError, match='input folder'):
            doc.existing_outputs(str(target), ['png'])
    assert not (project / 'masks' / 'sub').exists()
    assert doc.existing_outputs(str(tmp_path / 'elsewhere'), ['png']) == []
    assert not (tmp_path / 'elsewhere').exists()   # asking creates nothing
    doc.close()


# ---------------------------------------------------------------------------- propagate inputs
def _propagate(lite, *args):
    from scripts import propagate
    return propagate.main([str(a) for a in args] + ['--quiet'], networks=lite)


@pytest.mark.parametrize('overwrite', [True, False])
def test_propagate_never_writes_over_an_input_mask(folder, lite, tmp_path, overwrite):
    """--masks proj/ann/00000.png --output proj/ann --overwrite turned the user's mask into
    the tool's palette PNG."""
    d, gt = folder
    ann = tmp_path / 'proj' / 'ann'
    ann.mkdir(parents=True)
    cv2.imwrite(str(ann / '00000.png'), (gt[0] == 1).astype(np.uint8) * 255)   # grey 0/255
    (tmp_path / 'link.png').symlink_to(ann / '00000.png')
    before = (ann / '00000.png').read_bytes()
    for masks in (ann / '00000.png', tmp_path / 'link.png', ann):
        with pytest.raises(UserError) as e:
            _propagate(lite, '--input', d, '--masks', masks, '--output', ann,
                       *(['--overwrite'] if overwrite else []))
        assert '\n' not in str(e.value)
        assert (ann / '00000.png').read_bytes() == before
        assert os.listdir(ann) == ['00000.png']
        assert not [n for n in os.listdir(tmp_path / 'proj') if n != 'ann']   # no temp left


@pytest.mark.parametrize('overwrite', [True, False])
def test_propagate_never_writes_over_the_input_photo(folder, lite, tmp_path, overwrite):
    """--input photo/photo.png --masks m.png --output photo --overwrite wrote the mask over
    the photo."""
    d, gt = folder
    photo = tmp_path / 'photo'
    photo.mkdir()
    cv2.imwrite(str(photo / 'photo.png'), cv2.imread(str(d / '00000.png')))
    before = (photo / 'photo.png').read_bytes()
    (tmp_path / 'm.png').write_bytes(indexed_png_bytes(gt[0]))
    with pytest.raises(UserError, match='photo.png') as e:
        _propagate(lite, '--input', photo / 'photo.png', '--masks', tmp_path / 'm.png',
                   '--output', photo, *(['--overwrite'] if overwrite else []))
    assert '\n' not in str(e.value)
    assert (photo / 'photo.png').read_bytes() == before and os.listdir(photo) == ['photo.png']


def test_propagate_output_folders_follow_the_umask(folder, lite, tmp_path):
    from util.atomic import _UMASK
    d, gt = folder
    (tmp_path / '00000.png').write_bytes(indexed_png_bytes(gt[0]))
    out = tmp_path / 'out'
    assert _propagate(lite, '--input', d, '--masks', tmp_path / '00000.png', '--output', out,
                      '--resolution', -1) == 0
    assert sorted(os.listdir(out))[:2] == ['00000.png', '00001.png']
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~_UMASK


# ---------------------------------------------------------------------------- exports
def _store(t=3, h=24, w=32):
    from inference_core.store import FrameStore
    rng = np.random.default_rng(0)
    s = FrameStore(rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8))
    s.add_object('cup')
    for i in range(t):
        m = np.zeros((h, w), np.uint8)
        m[4 + i:14 + i, 4:20] = 1
        s.set_mask(i, m)
    return s


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob('*'))
            if p.is_file()}


def _staging_left(*folders):
    return [os.path.join(f, n) for f in folders for n in os.listdir(f) if n.startswith('.ivos-export')]


def _second_export(store):
    for i in range(store.num_frames):
        m = store.get_mask(i)
        m[:, :2] = 1
        store.set_mask(i, m)


def test_export_into_a_read_only_masks_folder_changes_nothing(tmp_path):
    from tests.fs_faults import failing_fs
    from util.export import export
    store = _store()
    out = tmp_path / 'out'
    (out / 'masks').mkdir(parents=True)
    with failing_fs(out / 'masks', 'readonly') as fs:
        assert export(store, out, ['coco', 'png', 'objects'])
        before = _tree(out)
        fs.break_()
        _second_export(store)
        with pytest.raises(UserError) as e:
            export(store, out, ['coco', 'png', 'objects'], overwrite=True)
        assert 'read-only file system' in str(e.value), fs
        assert 'nothing was written or replaced' in str(e.value)
        assert '.ivos-export' not in str(e.value)
        assert _tree(out) == before
        assert not _staging_left(out, out / 'masks')


def test_export_fails_while_moving_and_puts_everything_back(tmp_path, monkeypatch):
    from util.export import export
    store = _store()
    out = tmp_path / 'out'
    assert export(store, out, ['coco', 'png'])
    before = _tree(out)
    _second_export(store)
    real, calls = os.replace, []

    def replace(src, dst, *a, **k):
        if os.fspath(dst).startswith(str(out / 'masks')):
            calls.append(dst)
            if len(calls) == 2:
                raise OSError(errno.EIO, 'Input/output error', os.fspath(dst))
        return real(src, dst, *a, **k)
    monkeypatch.setattr(os, 'replace', replace)
    with pytest.raises(UserError, match='were put back: nothing was written or replaced'):
        export(store, out, ['coco', 'png'], overwrite=True)
    monkeypatch.undo()
    assert _tree(out) == before and not _staging_left(out, out / 'masks')


def test_export_through_a_link_to_another_file_system(tmp_path, monkeypatch):
    """out/masks a symlink to another file system: os.replace raised EXDEV half-way."""
    from tests.fs_faults import _mount_tmpfs
    from util.export import export
    other = tmp_path / 'other'
    other.mkdir()
    real_fs = _mount_tmpfs(other)
    try:
        if not real_fs:                 # the kernel's EXDEV, injected: renames across roots fail
            def cross(fn):
                def wrapped(src, dst, *a, **k):
                    inside = [os.path.realpath(p).startswith(str(other)) for p in (src, dst)]
                    if inside[0] != inside[1]:
                        raise OSError(errno.EXDEV, 'Invalid cross-device link', os.fspath(src))
                    return fn(src, dst, *a, **k)
                return wrapped
            for name in ('replace', 'rename', 'link'):
                monkeypatch.setattr(os, name, cross(getattr(os, name)))
        (other / 'masks').mkdir()
        out = tmp_path / 'out'
        out.mkdir()
        (out / 'masks').symlink_to(other / 'masks')
        store = _store()
        assert export(store, out, ['coco', 'png'])
        _second_export(store)
        assert export(store, out, ['coco', 'png'], overwrite=True)
        for t in range(store.num_frames):
            got = np.array(Image.open(other / 'masks' / f'{t:05d}.png'))
            assert np.array_equal(got, store.mask_at_original(t))
        assert not _staging_left(out, other / 'masks')
    finally:
        monkeypatch.undo()
        if real_fs:
            subprocess.run(['umount', '-l', str(other)], capture_output=True)


def test_export_with_a_file_named_objects_changes_nothing(tmp_path):
    from util.export import export
    store = _store()
    out = tmp_path / 'out'
    assert export(store, out, ['png', 'coco'])
    (out / 'objects').write_text('my notes')
    before = _tree(out)
    _second_export(store)
    with pytest.raises(UserError) as e:
        export(store, out, ['png', 'coco', 'objects'], overwrite=True)
    assert f'{out / "objects"} is a file, not a folder' in str(e.value)
    assert 'nothing was written or replaced' in str(e.value)
    assert _tree(out) == before and not _staging_left(out)


def test_staging_folder_of_a_killed_export_is_cleaned(tmp_path):
    from util.export import export
    out = tmp_path / 'out'
    out.mkdir()
    code = ('import sys, os; sys.path.insert(0, sys.argv[2]); from util.export_move import '
            'make_staging; d = make_staging(sys.argv[1]); open(os.path.join(d, "x.png"), "wb")'
            '.write(b"half"); print(d, flush=True); sys.stdin.read()')
    p = subprocess.Popen([sys.executable, '-c', code, str(out), str(REPO)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        left = p.stdout.readline().strip()
        assert os.path.isdir(left)
        assert export(_store(), out, ['png'])
        assert os.path.isdir(left)               # its process still runs: not touched
    finally:
        p.kill()                                 # kill -9 in the middle of its export
        p.wait()
    assert export(_store(), out, ['png'], overwrite=True)
    assert not os.path.exists(left) and not _staging_left(out)


# ---------------------------------------------------------------------------- Session input checks
def test_session_refuses_export_after_close_and_absurd_strokes(lite, tmp_path):
    import warnings
    from inference_core.session import Session
    frames, gt = make_clip(num_frames=2)
    s = Session.from_frames(frames, num_objects=1, networks=lite)
    before = s.get_mask(0)
    with warnings.catch_warnings():
        warnings.simplefilter('error')             # no numpy warning on the way either
        with pytest.raises(UserError, match='within'):
            s.paint(0, 1, [(1e30, 5), (10, 5)])
        with pytest.raises(UserError, match='within'):
            s.scribble(0, 1, positive=[(3, 3), (1e30, 1e30)])
        nan = np.full((s.height, s.width), np.nan)
        nan[:5, :5] = 1
        with pytest.raises(UserError, match='finite'):
            s.paint(0, 1, nan)
        with pytest.raises(UserError, match='finite'):
            s.set_object_mask(0, 1, nan)
    assert np.array_equal(s.get_mask(0), before) and not s.can_undo
    s.close()
    out = tmp_path / 'out'
    with pytest.raises(UserError, match='^session is closed$'):
        s.export(str(out), ['png'])
    with pytest.raises(UserError, match='^session is closed$'):
        s.existing_outputs(str(out), ['png'])
    assert not out.exists()


# ---------------------------------------------------------------------------- messages
def _deny_under(monkeypatch, root):
    """Reading anything at or under `root` fails with EACCES (what chmod 000 does to a user
    other than root, who ignores permission bits)."""
    root = str(root)
    for name in ('listdir', 'stat', 'scandir'):
        real = getattr(os, name)

        def denied(p='.', *a, _real=real, name=name, **k):
            s = os.path.abspath(os.fsdecode(p)) if isinstance(p, (str, bytes, os.PathLike)) else ''
            if (s == root and name != 'stat') or s.startswith(root + os.sep):
                raise PermissionError(errno.EACCES, 'Permission denied', s)
            return _real(p, *a, **k)
        monkeypatch.setattr(os, name, denied)


def test_unreadable_dataset_and_prediction_folders_say_permission_denied(tmp_path, monkeypatch):
    from scripts.propagate import discover_dataset
    from util.metrics import evaluate_folders
    root = tmp_path / 'DAVIS'
    (root / 'JPEGImages' / '480p' / 'a').mkdir(parents=True)
    gt, pred = tmp_path / 'gt', tmp_path / 'pred'
    for folder in (gt / 'a', pred / 'a'):
        folder.mkdir(parents=True)
        (folder / '00000.png').write_bytes(indexed_png_bytes(np.ones((4, 4), np.uint8)))
    _deny_under(monkeypatch, root)
    _deny_under(monkeypatch, pred / 'a')
    with pytest.raises(UserError, match='permission denied') as e:
        discover_dataset(str(root))
    assert 'not a dataset folder' not in str(e.value)
    with pytest.raises(UserError, match='permission denied') as e:
        evaluate_folders(str(pred), str(gt))
    assert str(pred / 'a') in str(e.value) and 'no predictions' not in str(e.value)


def test_propagate_read_only_output_names_the_output_folder(folder, lite, tmp_path):
    from tests.fs_faults import failing_fs
    d, gt = folder
    (tmp_path / '00000.png').write_bytes(indexed_png_bytes(gt[0]))
    with failing_fs(tmp_path / 'disk', 'readonly') as fs:
        fs.break_()
        with pytest.raises(UserError) as e:
            _propagate(lite, '--input', d, '--masks', tmp_path / '00000.png',
                       '--output', tmp_path / 'disk' / 'out')
    assert str(e.value) == f'cannot write output {tmp_path / "disk" / "out"}: read-only file system'
