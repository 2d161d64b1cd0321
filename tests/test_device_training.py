"""The GPU training path, exercised on the CPU with generated data: the pack that travels to a
lent GPU machine (training data only, decodable, small), training from it with clip workers and
snapshots, and choosing a snapshot here."""
import json

import numpy as np
import pytest
import torch

from scripts.train.data import PROC_SIZE
from scripts.train.device_pack import build_pack, photo_scale
from scripts.train.static_fg import StaticFG
from tests.test_static_fg import _fake_static_fg
from tests.test_training import N_FRAMES, _write_sequence
from util.davis_io import load_sequence
from util.davis_split import trained_on_report
from util.errors import UserError
from util.photo_split import is_validation_photo


@pytest.fixture(scope='module')
def pack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('pack')
    davis = tmp / 'davis'
    for i, name in enumerate(['tiny-a', 'tiny-b', 'bear']):      # 'bear': a selection sequence
        _write_sequence(davis, name, i)
    fg = _fake_static_fg(tmp, n=4, validation=2)
    build_pack(tmp / 'pack', davis, fg, progress=lambda *a: None)
    return tmp


def test_pack_holds_the_training_data_as_the_trainer_reads_it(pack):
    out = pack / 'pack'
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['sequences'] == ['tiny-a', 'tiny-b']                 # never a held-out sequence
    assert sorted(p.stem for p in (out / 'davis' / 'videos').glob('*.mp4')) == ['tiny-a', 'tiny-b']
    frames, masks = load_sequence(out / 'davis', 'tiny-a')
    src_frames, src_masks = load_sequence(pack / 'davis', 'tiny-a', PROC_SIZE)
    assert frames.shape == src_frames.shape == (N_FRAMES,) + PROC_SIZE + (3,)
    assert np.array_equal(masks, src_masks)                             # masks exactly as cached
    assert np.abs(frames.astype(int) - src_frames).mean() < 6           # re-encoded, lossy
    # photos: the training part only (the validation photos stay on this machine), masks kept
    fg = StaticFG(out / 'static-fg', part='all')
    src = StaticFG(pack / 'static-fg', part='train')
    assert fg.ids == src.ids and not any(is_validation_photo(i) for i in fg.ids)
    assert all(fg.image_path(i).suffix == '.webp' for i in fg.ids)
    rgb, mask, ignore = fg.load(0)
    rgb0, mask0, ignore0 = src.load(0)
    assert np.array_equal(mask, mask0) and np.array_equal(ignore, ignore0) and ignore.any()
    assert np.abs(rgb.astype(int) - rgb0).mean() < 12
    # the ImageNet backbone, fp16
    from model.lite_propagation import LiteBackbone
    sd = torch.load(out / 'backbone_lite0.pth', weights_only=True)
    ref = LiteBackbone().net.state_dict()
    assert sorted(sd) == sorted(ref)
    assert all(torch.allclose(sd[k].float(), v.float(), rtol=1e-3, atol=1e-4) for k, v in ref.items())
    assert (out / 'site' / 'progressbar' / '__init__.py').is_file()


def test_photos_shrink_to_the_packed_size_only():
    assert photo_scale(200, 300) == 1.0 and photo_scale(384, 100) == 1.0
    assert photo_scale(480, 864) == 384 / 864 and photo_scale(512, 341) == 384 / 512


def test_pack_refuses_held_out_sequences(pack, tmp_path):
    with pytest.raises(UserError, match='held-out'):
        build_pack(tmp_path / 'p', pack / 'davis', None, sequences=['tiny-a', 'bear'])


def test_a_pack_for_a_larger_processing_size_holds_its_frames_at_that_size(pack, tmp_path):
    from scripts.train.data import cache_size
    m = build_pack(tmp_path / 'p', pack / 'davis', None, sequences=['tiny-a'], progress=lambda *a: None,
                   size=cache_size(288))
    frames, masks = load_sequence(tmp_path / 'p' / 'davis', 'tiny-a')
    assert m['size'] == [288, 512] and frames.shape[1:3] == masks.shape[1:] == (288, 512)


@pytest.mark.slow
def test_training_from_the_pack_with_workers_snapshots_and_a_choice(pack, tmp_path):
    from model.lite_propagation import LitePropagationNet
    from scripts.train import pick_snapshot, train_propagation
    out = pack / 'pack'
    snaps = tmp_path / 'snaps'
    args = ['--data', str(out / 'davis'), '--static-fg', str(out / 'static-fg'), '--p-static-fg', '0.5',
            '--backbone-weights', str(out / 'backbone_lite0.pth'), '--cache', str(tmp_path / 'cache'),
            '--runs', str(tmp_path / 'runs'), '--name', 'dev', '--batch', '2', '--crop', '96', '160',
            '--workers', '1', '--no-val', '--no-export', '--iters', '3',
            '--snapshot-dir', str(snaps), '--snapshot-minutes', '0']
    assert train_propagation.main(args) == 0
    entries = json.loads((snaps / 'snapshots.json').read_text())
    assert [e['iteration'] for e in entries] == [1, 2, 3]
    init = LitePropagationNet(pretrained=False).state_dict()
    last = torch.load(snaps / entries[-1]['file'], weights_only=True)
    assert all(v.dtype == torch.float16 for v in last.values() if v.is_floating_point())
    first = torch.load(snaps / entries[0]['file'], weights_only=True)
    assert any(not torch.equal(first[k], last[k]) for k in last if not k.startswith('backbone.'))
    # the backbone is the packed ImageNet one, never trained
    packed = torch.load(out / 'backbone_lite0.pth', weights_only=True)
    assert all(torch.equal(last['backbone.net.' + k], v) for k, v in packed.items())
    assert set(last) == set(init)
    # choose here: the selection sequence ('bear' of the generated data), export the best
    w = tmp_path / 'w'
    assert pick_snapshot.main([str(snaps), '--weights', str(w), '--data', str(pack / 'davis'),
                               '--static-fg', '', '--quick']) == 0
    entry = json.loads((w / 'manifest.json').read_text())['files']['propagation_lite.pth']
    assert entry['iterations'] in (1, 2, 3) and len(entry['chosen_from']) == 3
    assert entry['validation']['semi_JF'] == max(e['score'] for e in entry['chosen_from'])


def test_training_device_errors_are_one_line(tmp_path):
    from scripts.train import common
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match='no CUDA GPU'):
            common.training_device('cuda')
    with pytest.raises(UserError, match='not a torch device'):
        common.training_device('gpu0')
    bad = tmp_path / 'b.pth'
    bad.write_bytes(b'not weights')
    from model.lite_propagation import LiteBackbone
    with pytest.raises(UserError, match='not a readable weights file'):
        common.load_backbone_weights(LiteBackbone(pretrained=False), bad)
    torch.save({'x': torch.zeros(1)}, bad)
    with pytest.raises(UserError, match='not the weights of this backbone'):
        common.load_backbone_weights(LiteBackbone(pretrained=False), bad)


def test_pick_snapshot_needs_an_index(tmp_path):
    from scripts.train.pick_snapshot import list_snapshots
    with pytest.raises(UserError, match='snapshots.json'):
        list_snapshots(tmp_path)
    (tmp_path / 'snapshots.json').write_text(json.dumps([{'file': 'gone.pth', 'iteration': 1}]))
    with pytest.raises(UserError, match='none of the snapshots'):
        list_snapshots(tmp_path)



@pytest.mark.slow
def test_ctrl_c_stops_a_run_with_workers_cleanly(pack, tmp_path):
    """Ctrl-c reaches the trainer and its clip workers (one process group): the run finishes the
    iteration, saves last.pt, shuts its workers down and exits 0."""
    import os
    import signal
    import subprocess
    import sys
    import time
    out = pack / 'pack'
    snaps = tmp_path / 'snaps'
    cmd = [sys.executable, '-m', 'scripts.train.train_propagation', '--data', str(out / 'davis'),
           '--static-fg', str(out / 'static-fg'), '--backbone-weights', str(out / 'backbone_lite0.pth'),
           '--cache', str(tmp_path / 'cache'), '--runs', str(tmp_path / 'runs'), '--name', 'c',
           '--batch', '2', '--crop', '96', '160', '--workers', '1', '--no-val', '--no-export',
           '--iters', '100000', '--snapshot-dir', str(snaps), '--snapshot-minutes', '0']
    from tests.conftest import REPO
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while not (snaps / 'snapshots.json').is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-2000:]
    assert 'stopped at iteration' in output
    ck = torch.load(tmp_path / 'runs' / 'c' / 'last.pt', map_location='cpu', weights_only=False)
    assert ck['iteration'] >= 1


@pytest.mark.slow
def test_the_device_script_trains_photos_first_then_from_them(pack, tmp_path):
    """device_train.sh with STATIC_MINUTES (run here on the CPU, as its header says): a photo-only
    stage, then the real-clip stage initialised from the photo stage's averaged weights, whose
    snapshots are what comes back."""
    import os
    import subprocess
    import sys
    from tests.conftest import REPO
    out, work = tmp_path / 'out', tmp_path / 'work'
    env = dict(os.environ, DEVICE='cpu', PYTHON=sys.executable, WORKERS='1', PACK=str(pack / 'pack'),
               OUT=str(out), WORK=str(work), STATIC_MINUTES='0.1')
    proc = subprocess.run(['bash', 'scripts/train/device_train.sh', '0.3', '--batch', '2', '--crop', '96', '160'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = (out / 'train.log').read_text() if (out / 'train.log').is_file() else ''
    assert proc.returncode == 0, proc.stderr[-2000:] + log[-2000:]
    photo = sorted((work / 'static_snapshots').glob('propagation_it*.pth'))
    assert photo, 'the photo stage left no weights'
    assert f'initialised from {photo[-1]}' in log
    entries = json.loads((out / 'snapshots.json').read_text())
    assert entries and all((out / e['file']).is_file() for e in entries)
    # the second stage went on from the first and trained further
    first = torch.load(photo[-1], weights_only=True)
    last = torch.load(out / entries[-1]['file'], weights_only=True)
    assert any(not torch.equal(first[k], last[k]) for k in last if not k.startswith('backbone.'))
    assert len(list(out.iterdir())) <= 8                            # what the device tool brings back
    # a photo stage as long as the whole run is refused in one line
    bad = subprocess.run(['bash', 'scripts/train/device_train.sh', '0.1'], cwd=REPO,
                         env=dict(env, OUT=str(tmp_path / 'o2')), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and 'must be below MINUTES' in bad.stderr


@pytest.fixture(scope='module')
def report_pack(tmp_path_factory):
    """A pack built with --with-report from videos that include a report ('surf') and a
    selection ('bear') sequence."""
    tmp = tmp_path_factory.mktemp('report_pack')
    for i, name in enumerate(['tiny-a', 'surf', 'bear']):
        _write_sequence(tmp / 'davis', name, i)
    m = build_pack(tmp / 'pack', tmp / 'davis', None, progress=lambda *a: None, with_report=True)
    return tmp, m


def test_a_report_pack_holds_the_report_videos_never_the_selection_ones(report_pack, tmp_path):
    tmp, m = report_pack
    assert m['sequences'] == ['surf', 'tiny-a'] and m['with_report'] is True
    assert json.loads((tmp / 'pack' / 'manifest.json').read_text())['with_report'] is True
    plain = build_pack(tmp_path / 'p', tmp / 'davis', None, progress=lambda *a: None)
    assert plain['sequences'] == ['tiny-a'] and plain['with_report'] is False
    with pytest.raises(UserError, match='selection or report'):
        build_pack(tmp_path / 'q', tmp / 'davis', None, sequences=['surf'])
    with pytest.raises(UserError, match=r'held-out \(selection\)'):
        build_pack(tmp_path / 'q', tmp / 'davis', None, sequences=['bear'], with_report=True)


@pytest.mark.slow
def test_the_device_script_on_a_report_pack_trains_on_them_and_the_choice_says_so(report_pack, tmp_path):
    """device_train.sh reads the pack's with_report and trains with --with-report; its snapshots
    are marked, and the snapshot chosen here is exported as trained on the report videos (so
    ship_weights decides on the selection split)."""
    import os
    import subprocess
    import sys
    from scripts.train import common, pick_snapshot
    from tests.conftest import REPO
    tmp, _ = report_pack
    out, work = tmp_path / 'out', tmp_path / 'work'
    env = dict(os.environ, DEVICE='cpu', PYTHON=sys.executable, WORKERS='1', PACK=str(tmp / 'pack'),
               OUT=str(out), WORK=str(work))
    proc = subprocess.run(['bash', 'scripts/train/device_train.sh', '0.15', '--batch', '2', '--crop', '96', '160'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = (out / 'train.log').read_text() if (out / 'train.log').is_file() else ''
    assert proc.returncode == 0, proc.stderr[-2000:] + log[-2000:]
    assert '2 sequences' in log                          # tiny-a and the report video surf
    entries = json.loads((out / 'snapshots.json').read_text())
    assert entries and all(e['trained_on_report'] is True for e in entries)
    w = tmp_path / 'w'
    assert pick_snapshot.main([str(out), '--weights', str(w), '--data', str(tmp / 'davis'),
                               '--static-fg', '', '--quick']) == 0
    entry = json.loads((w / 'manifest.json').read_text())['files']['propagation_lite.pth']
    assert trained_on_report(entry) and entry['data'] == common.TRAIN_DATA_WITH_REPORT
