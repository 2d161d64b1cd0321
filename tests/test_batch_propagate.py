"""Batch propagation on a local Ray cluster: the same PNGs as the serial loop, a killed worker's
sequence is retried, a finished run resumes; without Ray, --workers says how to install it. Also
single-video propagation from a COCO file. Ray tests skip cleanly where Ray is not installed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts import propagate
from tests.test_propagate_cli import make_clip, make_davis, save_frames, save_png
from util.errors import UserError

REPO = Path(__file__).resolve().parent.parent
SEQS = ('a', 'b', 'c', 'd')


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*.png'))}


@pytest.fixture(scope='module')
def davis(tmp_path_factory, lite):
    """A 4-sequence DAVIS-layout dataset and its serial (1 thread) result."""
    root = tmp_path_factory.mktemp('batch') / 'DAVIS'
    make_davis(root, SEQS, n=24)
    serial = root.parent / 'serial'
    assert propagate.main(['--dataset', str(root), '--output', str(serial), '--model', 'bundled',
                           '--threads', '1', '--quiet'], networks=lite) == 0
    return root, _tree(serial)


def _cli(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    return subprocess.Popen([sys.executable, '-m', 'scripts.propagate', *map(str, args), '--quiet'],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _worker_pids(busy=False):
    """PIDs of Ray worker processes running SequenceWorker (busy: inside process())."""
    want = 'SequenceWorker.process' if busy else 'SequenceWorker'
    pids = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                cmd = open(f'/proc/{d}/cmdline', 'rb').read().replace(b'\0', b' ').decode(errors='replace')
            except OSError:
                continue
            if want in cmd and 'ray::' in cmd:
                pids.append(int(d))
    return pids


@pytest.mark.slow
def test_local_ray_cluster_matches_serial_and_resumes(tmp_path, davis):
    pytest.importorskip('ray')
    root, serial = davis
    out = tmp_path / 'ray4'
    p = _cli('--dataset', root, '--output', out, '--model', 'bundled', '--workers', 4)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert _tree(out) == serial
    assert 'batch: 4 done, 0 skipped (already done), 0 failed' in err
    marker = json.loads((out / propagate.MARKER).read_text())
    assert sorted(marker['sequences']) == list(SEQS) and not marker.get('writing')
    # Again: everything is already done.
    p = _cli('--dataset', root, '--output', out, '--model', 'bundled', '--workers', 2)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0 and '4 of 4 sequences already done' in err
    assert _tree(out) == serial


@pytest.mark.slow
def test_killed_worker_is_retried_and_finished_sequences_untouched(tmp_path, davis):
    pytest.importorskip('ray')
    root, serial = davis
    out = tmp_path / 'ray2'
    p = _cli('--dataset', root, '--output', out, '--model', 'bundled', '--workers', 2)
    killed = None
    t0 = time.time()
    while killed is None and p.poll() is None and time.time() - t0 < 300:
        busy = _worker_pids(busy=True)
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            killed = busy[0]
        time.sleep(0.02)
    _, err = p.communicate(timeout=600)
    assert killed is not None, 'no busy worker was seen'
    assert p.returncode == 0, err
    assert _tree(out) == serial
    assert 'batch: 4 done' in err


def test_workers_without_ray_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'ray', None)      # import ray -> ImportError
    with pytest.raises(UserError, match='requirements-ray.txt'):
        propagate.main(['--dataset', str(tmp_path), '--output', str(tmp_path / 'o'),
                        '--workers', '2', '--quiet'])
    with pytest.raises(UserError, match='are for --dataset'):
        propagate.main(['--input', str(tmp_path), '--masks', str(tmp_path), '--output',
                        str(tmp_path / 'o'), '--workers', '2', '--quiet'])


def test_single_video_from_a_coco_file(tmp_path, lite):
    from inference_core.store import FrameStore
    from util.export import export
    frames, labels = make_clip(n=8)
    save_frames(str(tmp_path / 'frames'), frames)
    save_png(str(tmp_path / 'masks' / '00000.png'), labels[0])
    store = FrameStore(frames)
    store.ensure_objects(2)
    store.set_mask(0, labels[0])
    assert export(store, tmp_path / 'ann', ['coco'])
    outs = {}
    for name, masks in (('png', tmp_path / 'masks'), ('coco', tmp_path / 'ann' / 'annotations.json')):
        out = tmp_path / f'out_{name}'
        assert propagate.main(['--input', str(tmp_path / 'frames'), '--masks', str(masks),
                               '--output', str(out), '--threads', '1', '--quiet'],
                              networks=lite) == 0
        outs[name] = _tree(out)
    assert outs['png'] == outs['coco'] and len(outs['png']) == 8
