"""scripts.propagate on tiny generated clips: single video, DAVIS / YouTube-VOS / videos layouts,
resume after an interrupted run, flip TTA, and the one-line errors for bad input.

The networks are the official architectures with seeded random weights: real code paths, no
weight files needed (the masks they predict are meaningless, the tests check the plumbing).
"""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from scripts import propagate, propagate_runner, propagate_sequence
from util.errors import UserError
from util.palette import davis_palette_flat

H, W, T = 48, 64, 5


def tiny_networks():
    from inference_core.networks import Networks
    from model.fusion_net import FusionNet
    from model.propagation_net import PropagationNetwork
    from model.s2m_net import S2MNet
    torch.manual_seed(0)
    return Networks('official', PropagationNetwork().eval(), FusionNet().eval(),
                    S2MNet().eval(), None, torch.device('cpu'))


@pytest.fixture(scope='module')
def nets():
    # One intra-op thread: on a loaded 2-core machine, OpenMP threads spinning against other
    # processes make these tiny convolutions 10-50x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_networks()
    torch.set_num_threads(threads)


def make_clip(n=T, h=H, w=W, seed=0):
    """Frames (n,h,w,3) of two ellipses moving over noise, and their label maps (n,h,w).
    (Elongated shapes: the DAVIS robot skeletonises errors and drops point-like skeletons.)"""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frames, labels = [], []
    for t in range(n):
        f, m = bg.copy(), np.zeros((h, w), np.uint8)
        e1 = ((w // 4 + 2 * t, h * 5 // 8), (w // 5, h // 8), 10)
        e2 = ((3 * w // 4 - 2 * t, h // 4), (w // 6, h // 10), -20)
        for (c, ax, ang), k, col in ((e1, 1, (250, 30, 30)), (e2, 2, (30, 30, 250))):
            cv2.ellipse(f, c, ax, ang, 0, 360, col, -1)
            cv2.ellipse(m, c, ax, ang, 0, 360, k, -1)
        frames.append(f)
        labels.append(m)
    return np.stack(frames), np.stack(labels)


def save_png(path, labels, binary=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if binary:
        Image.fromarray(np.where(labels > 0, 255, 0).astype(np.uint8), 'L').save(path)
    else:
        im = Image.fromarray(labels.astype(np.uint8), 'P')
        im.putpalette(davis_palette_flat())
        im.save(path)


def save_frames(folder, frames, ext='.png'):
    os.makedirs(folder, exist_ok=True)
    for t, f in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f'{t:05d}{ext}'), f[:, :, ::-1])


def read(path):
    im = Image.open(path)
    return im.mode, np.array(im)


def run(args, nets):
    return propagate.main([*map(str, args), '--quiet'], networks=nets)


# ---------------------------------------------------------------------------- planning
def test_plan_steps_and_work():
    assert propagate_runner.plan_steps({0: 0}, 'first', 10) == [(0, 'both', None)]
    steps = propagate_runner.plan_steps({2: 0, 6: 0, 7: 0}, 'all', 10)
    assert steps == [(2, 'both', 5), (6, 'backward', None), (7, 'both', None)]
    # 2: back 0-1, fwd 3-5 | 6: back 3-5 | 7: fwd 8-9  (frames 3-5 run twice: fused)
    assert propagate_runner.count_work(steps, 10) == 2 + 3 + 3 + 2
    steps = propagate_runner.plan_steps({1: 0, 4: 0}, 'appear', 10)
    assert steps == [(1, 'forward', 4), (4, 'forward', None)]
    assert propagate_runner.count_work(steps, 10) == 3 + 5


# ---------------------------------------------------------------------------- single video
def test_single_video_round_trip(tmp_path, nets):
    frames, labels = make_clip(h=96, w=128)
    save_frames(tmp_path / 'frames', frames, '.jpg')
    save_png(str(tmp_path / 'masks' / '00000.png'), labels[0])
    save_png(str(tmp_path / 'masks' / '00003.png'), labels[3])
    out = tmp_path / 'out'
    # processing at 48x64, output at the original 96x128
    assert run(['--input', tmp_path / 'frames', '--masks', tmp_path / 'masks', '--output', out,
                '--resolution', 48], nets) == 0
    names = sorted(os.listdir(out))
    assert names == [f'{t:05d}.png' for t in range(T)] + [propagate.MARKER]
    for t in range(T):
        mode, a = read(out / f'{t:05d}.png')
        assert mode == 'P' and a.shape == (96, 128) and a.max() <= 2
    # the given masks come back untouched, at full resolution
    assert (read(out / '00000.png')[1] == labels[0]).all()
    assert (read(out / '00003.png')[1] == labels[3]).all()
    marker = json.loads((out / propagate.MARKER).read_text())
    assert marker['complete'] and marker['kind'] == 'single'
    assert marker['settings']['use_masks'] == 'all' and marker['networks'] == 'official'
    assert marker['run']['processing_size'] == [64, 48] and marker['run']['objects'] == 2
    # a finished output is not recomputed
    before = os.path.getmtime(out / '00002.png')
    assert run(['--input', tmp_path / 'frames', '--masks', tmp_path / 'masks', '--output', out,
                '--resolution', 48], nets) == 0
    assert os.path.getmtime(out / '00002.png') == before
    assert not [n for n in os.listdir(tmp_path) if propagate.PARTIAL in n]
    # ... and never mixed with a run of other settings
    with pytest.raises(UserError, match=r'other inputs or settings \(top_k: 20 -> 10\)'):
        run(['--input', tmp_path / 'frames', '--masks', tmp_path / 'masks', '--output', out,
             '--resolution', 48, '--top_k', 10], nets)
    # --overwrite redoes it in place
    assert run(['--input', tmp_path / 'frames', '--masks', tmp_path / 'masks', '--output', out,
                '--resolution', 48, '--top_k', 10, '--overwrite'], nets) == 0
    assert json.loads((out / propagate.MARKER).read_text())['settings']['top_k'] == 10
    assert len(os.listdir(out)) == T + 1


def test_flip_averages_both_runs(tmp_path, nets):
    frames, labels = make_clip(n=3)
    save_frames(tmp_path / 'frames', frames)
    save_png(str(tmp_path / 'masks' / '00000.png'), labels[0])
    args = propagate.build_parser().parse_args(
        ['--input', 'x', '--masks', 'y', '--output', 'z', '--flip', '--resolution', '-1'])
    runner = propagate_runner.Runner(nets, args)
    session = runner.from_frames(frames, storage='memory')
    files = [str(tmp_path / 'masks' / '00000.png')]
    labels_at, run_ = propagate_sequence.segment_session(session, files, 'first', runner)
    try:
        assert len(run_.sessions) == 2
        p0 = torch.from_numpy(run_.sessions[0].probabilities(2))
        p1 = torch.flip(torch.from_numpy(run_.sessions[1].probabilities(2)), dims=[-1])
        assert p0.shape == (3, H, W)
        torch.testing.assert_close(run_.prob(2), (p0 + p1) / 2)
        expected = torch.argmax((p0 + p1) / 2, 0).numpy()      # reference argmax
        assert (labels_at(2) == expected).all()
        assert (labels_at(0) == labels[0]).all()
    finally:
        run_.close()
        session.close()


# ---------------------------------------------------------------------------- datasets
def make_davis(root, seqs=('a', 'b'), n=T):
    gts = {}
    for i, s in enumerate(seqs):
        frames, labels = make_clip(n=n, seed=i)
        save_frames(root / 'JPEGImages' / '480p' / s, frames, '.jpg')
        for t in range(n):
            save_png(str(root / 'Annotations' / '480p' / s / f'{t:05d}.png'), labels[t])
        gts[s] = labels
    return gts


def test_davis_dataset_resume_after_interruption(tmp_path, nets, monkeypatch):
    root = tmp_path / 'DAVIS'
    gts = make_davis(root, ('a', 'b', 'c'))
    (tmp_path / 'split.txt').write_text('a\nb\nc\n')
    out = tmp_path / 'res'
    args = ['--dataset', root, '--output', out, '--split', tmp_path / 'split.txt',
            '--resolution', -1]

    # 1) interrupted while 'b' is being written: 'a' is done, 'b' never half-exists
    real = propagate_sequence.write_sequence
    calls = []

    def flaky(store, labels_at, out_dir, **kw):
        calls.append(out_dir)
        if len(calls) == 2:
            real(store, labels_at, out_dir, **kw)    # complete files in the temp dir ...
            raise KeyboardInterrupt                     # ... but no rename
        return real(store, labels_at, out_dir, **kw)
    monkeypatch.setattr(propagate_sequence, 'write_sequence', flaky)
    with pytest.raises(KeyboardInterrupt):
        run(args, nets)
    monkeypatch.setattr(propagate_sequence, 'write_sequence', real)
    assert sorted(os.listdir(out)) == ['a', propagate.MARKER]
    with pytest.raises(UserError, match='mem_freq: 5 -> 2'):
        run([*args, '--mem_freq', 2], nets)                 # resuming needs the same settings
    a_time = os.path.getmtime(out / 'a' / '00001.png')

    # 2) a crash (kill -9) can leave a partial temp folder behind: it is cleaned up
    junk = out / f'{propagate.PARTIAL}c-xyz'
    junk.mkdir()
    (junk / '00000.png').write_bytes(b'half')

    assert run(args, nets) == 0
    assert sorted(os.listdir(out)) == ['a', 'b', 'c', propagate.MARKER]
    assert os.path.getmtime(out / 'a' / '00001.png') == a_time        # skipped
    for s in 'abc':
        assert sorted(os.listdir(out / s)) == [f'{t:05d}.png' for t in range(T)]
        assert (read(out / s / '00000.png')[1] == gts[s][0]).all()     # the given first frame
    marker = json.loads((out / propagate.MARKER).read_text())
    assert marker['kind'] == 'dataset' and marker['settings']['use_masks'] == 'first'
    assert set(marker['sequences']) == {'a', 'b', 'c'}

    # the result scores with the metrics CLI (first/last frame excluded)
    from util.metrics import evaluate_folders
    results, summary = evaluate_folders(out, root)
    assert summary['sequences'] == 3 and summary['objects'] == 6


def test_youtube_layout_objects_appear_late(tmp_path, nets):
    root = tmp_path / 'ytvos'
    frames, labels = make_clip(n=6)
    save_frames(root / 'JPEGImages' / 'v1', frames, '.jpg')
    ann = root / 'Annotations' / 'v1'
    first1 = np.where(labels[1] == 1, 1, 0)            # object 1 appears on frame 1
    first2 = np.where(labels[3] == 2, 2, 0)            # object 2 appears on frame 3
    save_png(str(ann / '00001.png'), first1)
    save_png(str(ann / '00003.png'), first2)
    out = tmp_path / 'out'
    assert run(['--dataset', root, '--output', out, '--resolution', -1], nets) == 0
    res = [read(out / 'v1' / f'{t:05d}.png')[1] for t in range(6)]
    assert not res[0].any()                            # nothing before the first annotation
    assert (res[1] == first1).all()
    assert not (res[2] == 2).any()                     # object 2 not yet there
    assert ((res[3] == 2) == (first2 == 2)).all()      # object 2 exactly as annotated
    assert json.loads((out / propagate.MARKER).read_text())['settings']['use_masks'] == 'appear'


def test_videos_layout_binary_masks(tmp_path, nets):
    """../shared/data/davis2016-train layout: videos/<seq>.mp4 + masks/<seq>/%05d.png (0/255)."""
    root = tmp_path / 'd16'
    frames, labels = make_clip(n=4)
    (root / 'videos').mkdir(parents=True)
    vw = cv2.VideoWriter(str(root / 'videos' / 'seq.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 10,
                         (W, H))
    if not vw.isOpened():
        pytest.skip('no mp4 encoder in this OpenCV build')
    for f in frames:
        vw.write(f[:, :, ::-1])
    vw.release()
    fg = labels > 0
    for t in range(4):
        save_png(str(root / 'masks' / 'seq' / f'{t:05d}.png'), fg[t], binary=True)
    out = tmp_path / 'out'
    assert run(['--dataset', root, '--output', out, '--resolution', -1], nets) == 0
    assert sorted(os.listdir(out / 'seq')) == [f'{t:05d}.png' for t in range(4)]
    assert (read(out / 'seq' / '00000.png')[1] == fg[0]).all()        # 255 -> object 1


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs(tmp_path, nets):
    frames, labels = make_clip(n=3)
    save_frames(tmp_path / 'frames', frames)
    save_png(str(tmp_path / 'masks' / '00000.png'), labels[0])
    ok = ['--input', tmp_path / 'frames', '--masks', tmp_path / 'masks', '--resolution', -1]

    with pytest.raises(UserError, match="unknown model 'nope'"):
        run([*ok, '--output', tmp_path / 'o1', '--model', 'nope'], nets)
    with pytest.raises(UserError, match='inside the input folder'):
        run([*ok, '--output', tmp_path / 'frames' / 'out'], nets)
    with pytest.raises(UserError, match='inside the input folder'):
        run([*ok, '--output', tmp_path / 'masks'], nets)
    with pytest.raises(UserError, match='needs --masks'):
        run(['--input', tmp_path / 'frames', '--output', tmp_path / 'o2'], nets)
    with pytest.raises(UserError, match='either --input'):
        run(['--output', tmp_path / 'o2'], nets)

    # a non-empty folder that this tool did not write is never written into
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('keep me')
    with pytest.raises(UserError, match='not empty and was not written by this tool'):
        run([*ok, '--output', other], nets)
    assert sorted(os.listdir(other)) == ['notes.txt']

    # mask with another aspect ratio than the frames
    bad = tmp_path / 'badmasks'
    save_png(str(bad / '00000.png'), np.zeros((30, 30), np.uint8))
    with pytest.raises(UserError, match=r'mask 00000.png is 30x30 but the frames are 64x48'):
        run(['--input', tmp_path / 'frames', '--masks', bad, '--output', tmp_path / 'o3',
             '--resolution', -1], nets)
    assert not os.path.exists(tmp_path / 'o3')
    assert not [n for n in os.listdir(tmp_path) if propagate.PARTIAL in n]

    # dataset: a sequence without annotations, an unknown sequence, a single-video output
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a',), n=2)
    save_frames(root / 'JPEGImages' / '480p' / 'noann', frames[:2], '.jpg')
    with pytest.raises(UserError, match="sequence 'noann' has no annotations"):
        run(['--dataset', root, '--output', tmp_path / 'o4'], nets)
    with pytest.raises(UserError, match="sequence 'zzz' not found"):
        run(['--dataset', root, '--output', tmp_path / 'o4', '--sequences', 'zzz'], nets)
    single = tmp_path / 'single'
    single.mkdir()
    (single / propagate.MARKER).write_text(json.dumps({'kind': 'single', 'complete': True}))
    (single / '00000.png').write_bytes(b'x')
    with pytest.raises(UserError, match='holds a single run, not a dataset run'):
        run(['--dataset', root, '--output', single, '--sequences', 'a'], nets)
