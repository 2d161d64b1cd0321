"""Never lose an annotator's work: what --overwrite may touch, grey mask reading,
unwritable outputs, bounds on --resolution, unreadable folders, Session argument checks,
one-line weight errors, sequence names in dataset errors, progress bars on errors.

Every CLI case asserts the one-line message, the exit code (through util.errors.run_cli, as
`python -m scripts.X` runs it) and that files that existed before are byte-identical after.
"""
import argparse
import errno
import io
import json
import logging
import os
import stat

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from scripts import metrics as metrics_cli
from scripts import propagate, propagate_output, propagate_sequence
from tests.test_propagate_cli import (make_clip, make_davis, save_frames, save_png,
                                      tiny_networks)
from util.errors import UserError, run_cli

T = 5


def _permission_bits_ignored():
    """True where chmod does not stop this process (root, or a file system without modes):
    the permission tests skip there (as root they also run via paths under a regular file)."""
    import tempfile
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0)
        try:
            os.listdir(d)
            return True
        except PermissionError:
            return False
    finally:
        os.chmod(d, stat.S_IRWXU)
        os.rmdir(d)


AS_ROOT = _permission_bits_ignored()


@pytest.fixture(scope='module')
def nets():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # see tests/test_propagate_cli.py
    yield tiny_networks()
    torch.set_num_threads(threads)


def run(args, nets):
    return propagate.main([*map(str, args), '--quiet'], networks=nets)


def cli(main, capsys):
    """Run `main` as the CLIs do (run_cli): (exit code, the stderr lines)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_cli(main)
    err = capsys.readouterr().err.strip().splitlines()
    return e.value.code, err


def one_line_error(err, *parts):
    """The last stderr line is the error; no traceback; it contains every part."""
    assert err, 'no error printed'
    last = err[-1]
    assert last.startswith('error: '), err
    assert not any('Traceback' in ln for ln in err), err
    for p in parts:
        assert p in last, (p, last)
    return last


def snapshot(folder):
    """{relative path: bytes} of every file under `folder`."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            with open(p, 'rb') as fh:
                out[os.path.relpath(p, folder)] = fh.read()
    return out


def single_clip(tmp_path, n=T, name='frames'):
    frames, labels = make_clip(n=n)
    save_frames(tmp_path / name, frames)
    save_png(str(tmp_path / f'{name}_masks' / '00000.png'), labels[0])
    return ['--input', tmp_path / name, '--masks', tmp_path / f'{name}_masks',
            '--resolution', -1]


# ============================================================================ item 4: --overwrite
def test_overwrite_dataset_touches_only_its_own_files(tmp_path, nets):
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a', 'b'), n=7)
    out = tmp_path / 'res'
    args = ['--dataset', root, '--output', out, '--resolution', -1]
    assert run(args, nets) == 0
    marker = json.loads((out / propagate.MARKER).read_text())
    assert marker['sequences']['a']['files'] == [f'{t:05d}.png' for t in range(7)]
    assert 'writing' not in marker

    # the annotator's additions, and a hand fix saved over one of the outputs
    (out / 'NOTES.txt').write_text('top-level notes')
    (out / 'a' / 'NOTES.txt').write_text('keep me')
    fixed = make_clip(n=7)[1][3]
    save_png(str(out / 'a' / '00003_fixed.png'), fixed)
    (out / 'a' / 'extra').mkdir()
    (out / 'a' / 'extra' / 'x.png').write_bytes(b'mine')
    save_png(str(out / 'a' / '00004.png'), fixed)              # same name as an output
    b_before = snapshot(out / 'b')
    mine = {k: v for k, v in snapshot(out).items()
            if k in ('NOTES.txt', 'a/NOTES.txt', 'a/00003_fixed.png', 'a/extra/x.png')}

    # a shorter video now: frames 5, 6 of the old run are stale
    for t in (5, 6):
        os.remove(root / 'JPEGImages' / '480p' / 'a' / f'{t:05d}.jpg')
        os.remove(root / 'Annotations' / '480p' / 'a' / f'{t:05d}.png')
    assert run([*args, '--overwrite', '--top_k', 10], nets) == 0

    after = snapshot(out)
    for k, v in mine.items():
        assert after[k] == v, k                                   # never touched
    names = sorted(os.listdir(out / 'a'))
    assert names == sorted([f'{t:05d}.png' for t in range(5)] +
                           ['NOTES.txt', '00003_fixed.png', 'extra'])   # stale 5, 6 removed
    # the outputs (the hand-saved 00004.png too) are exactly those of a clean run
    ref = tmp_path / 'ref'
    assert run(['--dataset', root, '--output', ref, '--resolution', -1, '--top_k', 10], nets) == 0
    want = snapshot(ref / 'a')
    assert sorted(want) == [f'{t:05d}.png' for t in range(5)]
    assert {k: after['a/' + k] for k in want} == want
    assert sorted(os.listdir(out / 'b')) == sorted(b_before)  # b: swapped whole (only ours)
    marker = json.loads((out / propagate.MARKER).read_text())
    assert marker['settings']['top_k'] == 10 and 'writing' not in marker
    assert marker['sequences']['a']['files'] == [f'{t:05d}.png' for t in range(5)]


def test_user_file_with_an_output_name_needs_overwrite(tmp_path, nets, capsys):
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a', 'b'))
    out = tmp_path / 'res'
    args = ['--dataset', root, '--output', out, '--resolution', -1]
    assert run([*args, '--sequences', 'a'], nets) == 0
    # the annotator starts folder b by hand in the tool's output folder
    (out / 'b').mkdir()
    (out / 'b' / '00002.png').write_bytes(b'my hand-made mask')
    (out / 'b' / 'todo.txt').write_text('fix frame 2')
    before = snapshot(out)
    code, err = cli(lambda: propagate.main([*map(str, args), '--quiet'], networks=nets), capsys)
    assert code == 2
    one_line_error(err, "sequence 'b'", str(out / 'b' / '00002.png'),
                   'was not written by this tool', '--overwrite')
    assert snapshot(out) == before
    assert not [n for n in os.listdir(out) if n.startswith(propagate.PARTIAL)]
    # --overwrite replaces it (and recomputes a), the other file stays
    assert run([*args, '--overwrite'], nets) == 0
    assert (out / 'b' / '00002.png').read_bytes() != b'my hand-made mask'
    assert (out / 'b' / 'todo.txt').read_text() == 'fix frame 2'
    assert sorted(os.listdir(out / 'b')) == [f'{t:05d}.png' for t in range(T)] + ['todo.txt']


def test_overwrite_single_video_removes_its_stale_frames(tmp_path, nets):
    frames, labels = make_clip(n=7)
    save_frames(tmp_path / 'long', frames)
    save_frames(tmp_path / 'short', frames[:4])
    save_png(str(tmp_path / 'masks' / '00000.png'), labels[0])
    out = tmp_path / 'out'
    assert run(['--input', tmp_path / 'long', '--masks', tmp_path / 'masks', '--output', out,
                '--resolution', -1], nets) == 0
    (out / 'NOTES.txt').write_text('mine')
    (out / '00002_fixed.png').write_bytes(b'mine too')
    assert run(['--input', tmp_path / 'short', '--masks', tmp_path / 'masks', '--output', out,
                '--resolution', -1, '--overwrite'], nets) == 0
    assert sorted(os.listdir(out)) == sorted([f'{t:05d}.png' for t in range(4)] +
                                             ['NOTES.txt', '00002_fixed.png', propagate.MARKER])
    assert (out / 'NOTES.txt').read_text() == 'mine'
    assert (out / '00002_fixed.png').read_bytes() == b'mine too'
    marker = json.loads((out / propagate.MARKER).read_text())
    assert marker['complete'] and marker['files'] == [f'{t:05d}.png' for t in range(4)]


def test_crash_while_merging_resumes_byte_identical(tmp_path, nets, monkeypatch):
    """kill -9 between the file moves of an --overwrite run: the marker lists every file that
    may be ours, so rerunning (even without --overwrite) finishes it, result byte-identical to
    a clean run, the annotator's files untouched."""
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a', 'b'))
    out, ref = tmp_path / 'res', tmp_path / 'ref'
    args = ['--dataset', root, '--output', out, '--resolution', -1]
    assert run(args, nets) == 0
    (out / 'a' / 'NOTES.txt').write_text('keep me')
    real = propagate_output.merge_files

    def crash(tmp, dst, new, owned):
        real(tmp, dst, new[:2], set())          # two files moved, then the power goes out
        raise KeyboardInterrupt
    monkeypatch.setattr(propagate_output, 'merge_files', crash)
    with pytest.raises(KeyboardInterrupt):
        run([*args, '--overwrite', '--mem_freq', 2], nets)
    monkeypatch.setattr(propagate_output, 'merge_files', real)
    marker = json.loads((out / propagate.MARKER).read_text())
    assert 'a' not in marker['sequences'] and marker['writing']['a']
    assert run([*args, '--mem_freq', 2], nets) == 0             # resume: no refusal
    assert run(['--dataset', root, '--output', ref, '--resolution', -1, '--mem_freq', 2],
               nets) == 0
    got = snapshot(out)
    assert got.pop('a/NOTES.txt') == b'keep me'
    want = snapshot(ref)
    got.pop(propagate.MARKER)
    want.pop(propagate.MARKER)
    assert got == want


# ============================================================================ item 5: grey masks
def _ellipse(h=60, w=80):
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (w // 4, h // 5), 10, 0, 360, 255, -1)
    return m


def test_grey_mask_rules(tmp_path, caplog):
    from util.mask_io import read_label_png
    m = _ellipse()
    fg = (m > 0).astype(np.uint8)

    def read(name, arr):
        p = tmp_path / f'{name}.png'
        Image.fromarray(arr).save(p)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger='util.mask_io'):
            lab = read_label_png(p)
        return lab, [r.getMessage() for r in caplog.records]

    lab, notes = read('bin', m)                                      # 0/255: silent
    assert np.array_equal(lab, fg) and notes == []
    lab, notes = read('ones', fg)                                    # 0/1
    assert np.array_equal(lab, fg) and notes == []
    lab, notes = read('b16', fg.astype(np.uint16) * 65535)           # 16-bit 0/65535
    assert np.array_equal(lab, fg) and notes == []
    lab, notes = read('half', fg * 128)                              # 0/128: ONE object
    assert np.array_equal(lab, fg)
    assert notes == [f'{tmp_path.name}/half.png: 2 grey levels (0, 128) read as binary '
                     f'(128 = object 1)']
    small = cv2.resize(m, (40, 30), interpolation=cv2.INTER_AREA)    # resized: anti-aliased
    aa = cv2.resize(small, (80, 60), interpolation=cv2.INTER_LINEAR)
    assert len(np.unique(aa)) > 30
    lab, notes = read('aa', aa)
    assert set(np.unique(lab)) == {0, 1} and (lab != fg).mean() < 0.01
    assert len(notes) == 1 and 'read as binary (> 127 = object 1' in notes[0]
    jpg = cv2.imdecode(cv2.imencode('.jpg', m, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 0)
    lab, notes = read('jpeg', jpg)                                   # JPEG noise
    assert (lab != fg).mean() < 0.01 and '> 127 = object 1' in notes[0]
    lab, notes = read('aa16', aa.astype(np.uint16) * 257)            # 16-bit anti-aliased
    assert set(np.unique(lab)) == {0, 1} and '> 32767 = object 1' in notes[0]
    lab, notes = read('dim', (aa // 3))                              # dim mask: midway
    assert (lab != fg).mean() < 0.01 and 'midway' in notes[0]
    labels = np.zeros((60, 80), np.uint8)
    labels[:, 20:40], labels[:, 40:60], labels[:, 60:] = 1, 2, 3
    lab, notes = read('labels', labels)                              # 0/1/2/3 label map
    assert np.array_equal(lab, labels) and notes == []
    void = labels.copy()
    void[:, 39:41] = 255
    lab, notes = read('void', void)                                  # labels + DAVIS void
    assert np.array_equal(lab, void) and 'object ids 1, 2, 3 with 255 = void' in notes[0]
    steps = (labels * 40).astype(np.uint8)                           # 0/40/80/120: ambiguous
    lab, notes = read('steps', steps)
    assert notes[0].startswith('ambiguous mask ') and 'palette PNG' in notes[0]


def test_grey_notes_are_one_line_per_rule_and_empty_first_mask_is_an_error(tmp_path, nets,
                                                                          capsys, caplog):
    frames, labels = make_clip(n=3)
    save_frames(tmp_path / 'frames', frames)
    (tmp_path / 'grey').mkdir()
    h, w = labels.shape[1:]
    for t in range(3):      # anti-aliased grey masks (0/255 drawn at 2x, saved resized)
        big = cv2.resize(np.where(labels[t] > 0, 255, 0).astype(np.uint8), (2 * w, 2 * h),
                         interpolation=cv2.INTER_LINEAR)
        grey = cv2.resize(cv2.GaussianBlur(big, (5, 5), 0), (w, h), interpolation=cv2.INTER_AREA)
        Image.fromarray(grey).save(tmp_path / 'grey' / f'{t:05d}.png')
    with caplog.at_level(logging.WARNING, logger='util.mask_io'):
        assert run(['--input', tmp_path / 'frames', '--masks', tmp_path / 'grey', '--output',
                    tmp_path / 'o1', '--resolution', -1], nets) == 0
    notes = [r.getMessage() for r in caplog.records if r.name == 'util.mask_io']
    assert len(notes) == 1 and notes[0].startswith('grey/00000.png: grey mask with ')
    assert '(same for 2 more masks)' in notes[0]
    out = np.array(Image.open(tmp_path / 'o1' / '00000.png'))
    assert set(np.unique(out)) == {0, 1}                       # one object, not 200

    # an all-background mask: exit 2, one line, nothing written
    (tmp_path / 'empty').mkdir()
    Image.fromarray(np.zeros(labels.shape[1:], np.uint8)).save(tmp_path / 'empty' / '00000.png')
    o2 = tmp_path / 'o2'
    code, err = cli(lambda: propagate.main(
        ['--input', str(tmp_path / 'frames'), '--masks', str(tmp_path / 'empty' / '00000.png'),
         '--output', str(o2), '--quiet'], networks=nets), capsys)
    assert code == 2
    one_line_error(err, 'mask 00000.png contains no object (all background)')
    assert not o2.exists()
    assert not [n for n in os.listdir(tmp_path) if propagate.PARTIAL in n]


# ============================================================================ item 6: unwritable
def test_propagate_output_under_a_file(tmp_path, nets, capsys):
    args = single_clip(tmp_path)
    (tmp_path / 'file.txt').write_text('x')
    code, err = cli(lambda: run([*args, '--output', tmp_path / 'file.txt' / 'out'], nets), capsys)
    assert code == 2
    one_line_error(err, 'cannot write output', str(tmp_path / 'file.txt'))
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a',), n=2)
    code, err = cli(lambda: run(['--dataset', root, '--output', tmp_path / 'file.txt' / 'o'],
                                nets), capsys)
    assert code == 2
    one_line_error(err, 'cannot write output', 'file.txt')
    assert (tmp_path / 'file.txt').read_text() == 'x'


@pytest.mark.skipif(AS_ROOT, reason='permission bits are ignored (root)')
def test_propagate_output_permission_denied(tmp_path, nets, capsys):
    args = single_clip(tmp_path)
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, err = cli(lambda: run([*args, '--output', ro / 'out'], nets), capsys)
    finally:
        ro.chmod(stat.S_IRWXU)
    assert code == 2
    one_line_error(err, 'permission denied')
    assert os.listdir(ro) == []


def _enospc_after(n, real):
    calls = [0]

    def writer(*a, **kw):
        calls[0] += 1
        if calls[0] > n:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(*a, **kw)
    return writer


def test_propagate_disk_full_mid_run(tmp_path, nets, capsys, monkeypatch):
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a', 'b'))
    out = tmp_path / 'res'
    args = ['--dataset', root, '--output', out, '--resolution', -1]
    assert run(args, nets) == 0
    (out / 'NOTES.txt').write_text('mine')
    before = snapshot(out)
    real = propagate_sequence.write_bytes
    # --overwrite with other settings; the disk fills up while b is written (a is done)
    monkeypatch.setattr(propagate_sequence, 'write_bytes', _enospc_after(T + 2, real))
    code, err = cli(lambda: run([*args, '--overwrite', '--top_k', 3], nets), capsys)
    assert code == 2
    one_line_error(err, "sequence 'b'", f'cannot write output {out / "b" / "00002.png"}',
                   'no space left on device')
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k.startswith('b/')} == \
        {k: v for k, v in before.items() if k.startswith('b/')}         # b as it was
    assert after['NOTES.txt'] == b'mine'
    assert not [n for n in os.listdir(out) if n.startswith(propagate.PARTIAL)]
    marker = json.loads((out / propagate.MARKER).read_text())
    assert list(marker['sequences']) == ['a'] and marker['settings']['top_k'] == 3
    # single video: the disk is full from the second frame: no output folder at all
    monkeypatch.setattr(propagate_sequence, 'write_bytes', _enospc_after(1, real))
    code, err = cli(lambda: run([*single_clip(tmp_path), '--output', tmp_path / 'single'], nets),
                    capsys)
    assert code == 2
    one_line_error(err, f'cannot write output {tmp_path / "single" / "00001.png"}: no space')
    assert not (tmp_path / 'single').exists()
    assert not [n for n in os.listdir(tmp_path) if propagate.PARTIAL in n]


def _metrics_data(tmp_path):
    gt, pred = tmp_path / 'gt', tmp_path / 'pred'
    for t in range(4):
        m = np.zeros((24, 32), np.uint8)
        m[4 + t:14 + t, 6:20] = 1
        save_png(str(gt / 'Annotations' / '480p' / 's' / f'{t:05d}.png'), m)
        save_png(str(pred / 's' / f'{t:05d}.png'), m)
    return gt, pred


def test_metrics_out_not_writable(tmp_path, capsys, monkeypatch):
    gt, pred = _metrics_data(tmp_path)
    base = ['--pred', str(pred), '--gt', str(gt), '--quiet']
    (tmp_path / 'file.txt').write_text('x')
    code, err = cli(lambda: metrics_cli.main([*base, '--output', str(tmp_path / 'file.txt' / 'm')]),
                    capsys)
    assert code == 2
    one_line_error(err, 'cannot write output', 'is a file, not a folder')
    # disk full while writing the second report: the old reports stay as they were
    rep = tmp_path / 'rep'
    assert metrics_cli.main([*base, '--output', str(rep)]) == 0
    before = snapshot(tmp_path)
    monkeypatch.setattr(metrics_cli, '_write_text', _enospc_after(1, metrics_cli._write_text))
    code, err = cli(lambda: metrics_cli.main([*base, '--output', str(rep), '--all-frames']), capsys)
    assert code == 2
    one_line_error(err, f'cannot write output {rep}_global.csv: no space left on device')
    assert snapshot(tmp_path) == before                       # no temp files left either


@pytest.mark.skipif(AS_ROOT, reason='permission bits are ignored (root)')
def test_metrics_out_permission_denied(tmp_path, capsys):
    gt, pred = _metrics_data(tmp_path)
    pred.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, err = cli(lambda: metrics_cli.main(['--pred', str(pred), '--gt', str(gt),
                                                  '--quiet']), capsys)
    finally:
        pred.chmod(stat.S_IRWXU)
    assert code == 2
    one_line_error(err, 'not writable', '--output')


# ============================================================================ item 7: resolution
def test_resolution_upper_bound(tmp_path, nets, capsys):
    from argparse import Namespace

    from inference_core.networks import check_engine_options
    from inference_core.store_io import open_frames
    from util.frames_io import MAX_RESOLUTION
    args = single_clip(tmp_path)
    args[args.index('--resolution') + 1] = 100000
    code, err = cli(lambda: run([*args, '--output', tmp_path / 'o'], nets), capsys)
    assert code == 2
    one_line_error(err, f'--resolution must be -1 (original size) or 16..{MAX_RESOLUTION}',
                   'got 100000')
    assert not (tmp_path / 'o').exists()
    with pytest.raises(UserError, match=f'16..{MAX_RESOLUTION}'):
        check_engine_options(Namespace(resolution=100000))          # the GUI's check
    with pytest.raises(UserError, match=r'resolution must be -1 .* got 100000'):
        open_frames(tmp_path / 'frames', resolution=100000)         # the API's
    from inference_core.session import Session
    with pytest.raises(UserError, match='got 4321'):
        Session.open(tmp_path / 'frames', resolution=MAX_RESOLUTION + 1, networks=nets)
    store = open_frames(tmp_path / 'frames', resolution=-1)
    store.close()


# ============================================================================ item 8: unreadable
def test_unreadable_input_folder(tmp_path, nets, capsys, monkeypatch):
    from inference_core.store_io import open_frames
    from util.frames_io import list_image_files
    from util.mask_io import list_mask_files
    args = single_clip(tmp_path)
    real = os.listdir

    def denied(p='.'):
        if os.fspath(p) in (str(tmp_path / 'frames'), str(tmp_path / 'frames_masks')):
            raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(p))
        return real(p)
    monkeypatch.setattr(os, 'listdir', denied)
    with pytest.raises(UserError, match='cannot read folder \\(permission denied\\)'):
        list_image_files(tmp_path / 'frames')
    with pytest.raises(UserError, match='cannot read folder \\(permission denied\\)'):
        open_frames(tmp_path / 'frames')
    with pytest.raises(UserError, match='cannot read mask folder \\(permission denied\\)'):
        list_mask_files(tmp_path / 'frames_masks')
    code, err = cli(lambda: run([*args, '--output', tmp_path / 'o'], nets), capsys)
    assert code == 2
    one_line_error(err, 'permission denied', 'frames')


@pytest.mark.skipif(AS_ROOT, reason='permission bits are ignored (root)')
def test_unreadable_input_folder_chmod(tmp_path):
    from inference_core.store_io import open_frames
    frames, _ = make_clip(n=2)
    save_frames(tmp_path / 'frames', frames)
    (tmp_path / 'frames').chmod(0)
    try:
        with pytest.raises(UserError, match='permission denied'):
            open_frames(tmp_path / 'frames')
    finally:
        (tmp_path / 'frames').chmod(stat.S_IRWXU)


# ============================================================================ item 9: Session
def _session(nets, **kw):
    from inference_core.session import Session
    from inference_core.store import FrameStore
    frames, _ = make_clip(n=3)
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(1)
    return Session(store, nets, **kw)


def test_session_constructor_checks(nets):
    for kw, msg in (({'top_k': 0}, 'top_k must be at least 1, got 0'),
                    ({'top_k': 1.5}, 'top_k must be an integer, got 1.5'),
                    ({'top_k': True}, 'top_k must be an integer, got True'),
                    ({'mem_freq': 0}, 'mem_freq must be at least 1'),
                    ({'mem_freq': '5'}, "mem_freq must be an integer, got '5'"),
                    ({'max_memory_frames': 0}, 'max_memory_frames must be at least 1'),
                    ({'history_bytes': -1}, 'history_bytes must be at least 0')):
        with pytest.raises(UserError, match=msg.replace('(', r'\(')):
            _session(nets, **kw)
    s = _session(nets, top_k=np.int64(3), mem_freq=np.int32(2))      # NumPy integers are fine
    assert s._engine.top_k == 3 and s._engine.mem_freq == 2
    s.close()


def test_session_frame_and_stroke_checks(nets):
    s = _session(nets)
    try:
        h, w = s.height, s.width
        for bad in (1.7, 1.0, np.float32(1), True, '1', None):
            with pytest.raises(UserError, match='frame must be an integer'):
                s.get_mask(bad)
        with pytest.raises(UserError, match='frame must be an integer'):
            s.paint(1.7, 1, [(1, 1), (5, 5)])
        with pytest.raises(UserError, match='frame must be an integer'):
            s.propagate(0, end=2.5)
        assert s.get_mask(np.int64(1)).shape == (h, w)
        with pytest.raises(UserError, match='object id must be an integer'):
            s.paint(0, 1.5, [(1, 1), (5, 5)])
        for stroke in ([(1, 1), (float('nan'), 5)], [[(1, 1), (5, float('inf'))]],
                       np.array([[1.0, 1.0], [np.nan, 2.0]])):
            with pytest.raises(UserError, match='finite'):
                s.scribble(0, 1, positive=stroke)
            with pytest.raises(UserError, match='finite'):
                s.paint(0, 1, stroke)
        with pytest.raises(UserError, match='stroke'):
            s.scribble(0, 1, positive=[('a', 'b'), (1, 2)])
        with pytest.raises(UserError, match='brush width'):
            s.paint(0, 1, [(1, 1), (5, 5)], brush=float('nan'))
        for x, y in ((float('nan'), 3), (3, float('inf')), ('3', 3), (True, 3)):
            with pytest.raises(UserError, match='click [xy] must be a'):
                s.click(0, 1, x, y)
        assert not s.can_undo and not s.get_mask(0).any()        # nothing was drawn
        s.paint(0, 1, [(1, 1), (5, 5)])                              # good input still works
        assert s.get_mask(0).any()
    finally:
        s.close()


def test_session_after_close(nets):
    s = _session(nets)
    s.close()
    s.close()                                                        # twice is fine
    for call in (lambda: s.get_mask(0), lambda: s.frame(0), lambda: s.add_object(),
                 lambda: s.paint(0, 1, [(1, 1)]), lambda: s.propagate(0), lambda: s.undo(),
                 lambda: s.load_masks('x'), lambda: s.reset_frame(0)):
        with pytest.raises(UserError, match='^session is closed$'):
            call()


# ============================================================================ item 10
def test_garbage_weights_one_clean_line(tmp_path):
    from model import lite_networks
    from model.checkpoint import load_checked
    from model.fusion_net import FusionNet
    bad = tmp_path / 'fusion_stcn.pth'
    torch.save({'x': torch.zeros(1), 'obj': argparse.Namespace(a=1)}, bad)   # pickled object
    (tmp_path / 'html.pth').write_text('<html>Quota exceeded</html>')
    for p in (bad, tmp_path / 'html.pth'):
        with pytest.raises(UserError) as e:
            load_checked(FusionNet(), p)
        msg = str(e.value)
        assert msg == (f'not a readable PyTorch weights file (corrupt, truncated or not a '
                       f'checkpoint; delete it and download it again): {p}')
    w = tmp_path / 'w'
    w.mkdir()
    for n in ('propagation_lite.pth', 'interaction_lite.pth'):
        (w / n).write_bytes(b'\x80\x02garbage' * 100)
    with pytest.raises(UserError) as e:
        lite_networks.load_bundled(w)
    assert str(e.value) == ('not a readable weights file (corrupt, truncated or not a PyTorch '
                            f'checkpoint): {w / "propagation_lite.pth"}')


def test_dataset_errors_name_the_sequence(tmp_path, nets, capsys):
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a', 'b'), n=3)
    save_png(str(root / 'Annotations' / '480p' / 'b' / '00000.png'), np.zeros((30, 30), np.uint8))
    out = tmp_path / 'res'
    code, err = cli(lambda: run(['--dataset', root, '--output', out, '--resolution', -1], nets),
                    capsys)
    assert code == 2
    one_line_error(err, "error: sequence 'b': mask 00000.png is 30x30 but the frames are 64x48")
    assert sorted(os.listdir(out)) == ['a', propagate.MARKER]           # a is kept, resumable


def test_progress_bar_stays_where_it_was_on_errors():
    from util.progress import cli_progress
    for exc in (KeyboardInterrupt, UserError):
        s = io.StringIO()
        with pytest.raises(exc):
            with cli_progress('work', stream=s) as p:
                p(3, 10)
                raise exc()
        last = s.getvalue().strip().splitlines()[-1]
        assert last.startswith('work: 3/10 ') and '10/10' not in s.getvalue()
    s = io.StringIO()
    with cli_progress('work', stream=s) as p:
        p(3, 10)
    assert s.getvalue().strip().splitlines()[-1].startswith('work: 10/10 ')   # success: 100 %
