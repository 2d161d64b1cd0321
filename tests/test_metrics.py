"""DAVIS J and F (util.metrics) and the metrics CLI, on hand-made masks with known answers."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from util import metrics as M
from util.errors import UserError
from util.palette import davis_palette_flat


def rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# ---------------------------------------------------------------------------- single masks
def test_identical_and_disjoint():
    a = rect(60, 80, 10, 30, 10, 40)
    b = rect(60, 80, 35, 55, 45, 75)
    assert M.jaccard(a, a) == 1.0 and M.boundary_f(a, a) == 1.0
    assert M.jaccard(a, b) == 0.0 and M.boundary_f(a, b) == 0.0


def test_empty_cases():
    e = np.zeros((40, 50), bool)
    a = rect(40, 50, 5, 20, 5, 20)
    assert M.jaccard(e, e) == 1.0 and M.boundary_f(e, e) == 1.0
    assert M.jaccard(a, e) == 0.0 and M.boundary_f(a, e) == 0.0
    assert M.jaccard(e, a) == 0.0 and M.boundary_f(e, a) == 0.0


def test_one_pixel_shift_within_tolerance():
    a = rect(60, 80, 10, 30, 10, 40)                 # 20 x 30 = 600 px
    b = np.roll(a, 1, axis=1)                         # shift right by one pixel
    assert M.jaccard(a, b) == pytest.approx(580 / 620)
    assert M.boundary_tolerance(a.shape) == 1         # ceil(0.008 * 100)
    assert M.boundary_f(a, b) == 1.0


def test_shift_beyond_tolerance_lowers_f():
    # 854x480 -> tolerance ceil(0.008 * 979.7) = 8 px
    assert M.boundary_tolerance((480, 854)) == 8
    a = rect(480, 854, 100, 300, 100, 500)
    assert M.boundary_f(a, np.roll(a, 8, axis=1)) == 1.0
    f = M.boundary_f(a, np.roll(a, 9, axis=1))
    # only the two vertical edges (200 px each of ~1200 boundary px) fall outside
    assert 0.6 < f < 0.8


def test_seg2bmap_offsets_boundary_towards_origin():
    m = rect(6, 6, 2, 4, 2, 4)
    b = M.seg2bmap(m)
    expected = np.zeros((6, 6), bool)
    expected[1, 1:4] = True       # row above (south neighbour is inside)
    expected[1:4, 1] = True       # column left
    expected[2:4, 3] = True       # right column of the square (east neighbour is outside)
    expected[3, 2:4] = True       # bottom row of the square
    assert (b == expected).all()


def test_void_pixels_are_ignored():
    gt = np.zeros((30, 30), np.uint8)
    gt[5:15, 5:15] = 1
    gt[20:, :] = 255                        # void band
    pred = np.zeros_like(gt)
    pred[5:15, 5:15] = 1
    pred[22:28, 2:28] = 1                    # false positive entirely inside the void band
    j, f = M.frame_scores(gt, pred, [1])
    assert j[0] == 1.0 and f[0] == 1.0


def test_disk_matches_skimage():
    morph = pytest.importorskip('skimage.morphology')
    for r in range(0, 10):
        assert (M.disk(r) == morph.disk(r).astype(np.uint8)).all()


def test_db_statistics():
    v = np.linspace(1.0, 0.0, 9)              # 1, .875, ..., 0
    m, r, d = M.db_statistics(v)
    assert m == pytest.approx(0.5)
    assert r == pytest.approx(4 / 9)
    # bins at round(linspace(1, 9, 5)) - 1 = [0, 2, 4, 6, 8]: first [0..2], last [6..8]
    assert d == pytest.approx(v[0:3].mean() - v[6:9].mean())


def test_evaluate_sequence_excludes_first_and_last():
    gt = np.zeros((5, 20, 20), np.uint8)
    gt[:, 5:15, 5:15] = 1
    gt[:, 0:3, 0:3] = 2
    pred = gt.copy()
    pred[0] = 0
    pred[-1] = 0                            # wrong only on the excluded frames
    r = M.evaluate_sequence(gt, pred)
    assert [o['id'] for o in r['objects']] == [1, 2]
    assert r['frames'] == [1, 2, 3]
    assert r['J&F'] == 1.0
    r = M.evaluate_sequence(gt, pred, skip_first_last=False)
    assert r['J'] == pytest.approx(3 / 5)
    s = M.summarize([r])
    assert s['objects'] == 2 and s['J-Mean'] == pytest.approx(3 / 5)


# ---------------------------------------------------------------------------- davisinteractive
def _random_blobs(rng, t, h, w, k):
    import cv2
    out = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        for obj in range(1, k + 1):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            ax = (int(rng.integers(3, w // 3)), int(rng.integers(3, h // 3)))
            cv2.ellipse(out[i], c, ax, float(rng.uniform(0, 180)), 0, 360, obj, -1)
    return out


def test_matches_davisinteractive():
    from util.davis_compat import batched_metrics
    try:
        batched_jaccard, batched_f_measure = batched_metrics()
    except UserError:
        pytest.skip('davisinteractive is not installed (optional extra)')
    rng = np.random.default_rng(0)
    gt = _random_blobs(rng, 6, 72, 128, 3)
    pred = gt.copy()
    pred[1:] = _random_blobs(rng, 5, 72, 128, 3)          # unrelated blobs
    pred[0] = np.roll(gt[0], (2, 3), axis=(0, 1))          # small shift
    pred[2, 10:30] = 0
    ref_j = batched_jaccard(gt, pred, average_over_objects=False, nb_objects=3)
    ref_f = batched_f_measure(gt, pred, average_over_objects=False, nb_objects=3)
    for t in range(len(gt)):
        j, f = M.frame_scores(gt[t], pred[t], [1, 2, 3])
        np.testing.assert_allclose(j, ref_j[t], rtol=0, atol=1e-12)
        np.testing.assert_allclose(f, ref_f[t], rtol=0, atol=1e-12)
    assert 0 < ref_f.mean() < 1 and 0 < ref_j.mean() < 1


# ---------------------------------------------------------------------------- folders + CLI
def _save(path, labels, palette=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if palette:
        im = Image.fromarray(labels.astype(np.uint8), mode='P')
        im.putpalette(davis_palette_flat())
    else:
        im = Image.fromarray(labels.astype(np.uint8), mode='L')
    im.save(path)


def _make_dataset(root, seqs, t=5, h=24, w=32):
    for s in seqs:
        for i in range(t):
            m = np.zeros((h, w), np.uint8)
            m[4 + i:14 + i, 6:20] = 1
            m[16:22, 22:30] = 2
            _save(os.path.join(root, 'Annotations', '480p', s, f'{i:05d}.png'), m)


def test_cli_round_trip(tmp_path):
    from scripts import metrics as cli
    gt = tmp_path / 'gt'
    pred = tmp_path / 'pred'
    _make_dataset(str(gt), ['a', 'b'])
    for s in ['a', 'b']:
        for i in range(5):
            m = np.array(Image.open(gt / 'Annotations' / '480p' / s / f'{i:05d}.png'))
            if s == 'b':
                m[m == 2] = 0                      # object 2 of 'b' is missed everywhere
            # binary 0/255 is read too (object 1 only) - use palette here, label ids matter
            _save(str(pred / s / f'{i:05d}.png'), m)
    assert cli.main(['--pred', str(pred), '--gt', str(gt), '--quiet']) == 0
    rep = json.loads((pred / 'metrics.json').read_text())
    seqs = {r['name']: r for r in rep['sequences']}
    assert seqs['a']['J&F'] == 1.0
    assert seqs['b']['J'] == 0.5 and seqs['b']['F'] == 0.5
    assert rep['summary']['J-Mean'] == pytest.approx(3 / 4)
    assert rep['summary']['objects'] == 4
    assert (pred / 'metrics_global.csv').read_text().startswith('J&F-Mean,')
    assert 'b_2,0.000000,0.000000' in (pred / 'metrics_per_sequence.csv').read_text()

    assert cli.main(['--pred', str(pred), '--gt', str(gt), '--sequences', 'a', '--quiet',
                     '--output', str(tmp_path / 'only_a')]) == 0
    rep = json.loads((tmp_path / 'only_a.json').read_text())
    assert [r['name'] for r in rep['sequences']] == ['a']


def test_binary_ground_truth_layout(tmp_path):
    """../shared/data/davis2016-train layout: masks/<seq>/%05d.png with values 0/255."""
    gt = tmp_path / 'd16'
    pred = tmp_path / 'pred'
    for i in range(4):
        m = rect(20, 30, 2, 12, 3 + i, 15 + i).astype(np.uint8)
        _save(str(gt / 'masks' / 'seq' / f'{i:05d}.png'), m * 255, palette=False)
        _save(str(pred / 'seq' / f'{i:05d}.png'), m)
    results, summary = M.evaluate_folders(pred, gt)
    assert summary['J&F-Mean'] == 1.0 and summary['objects'] == 1


def test_cli_errors(tmp_path):
    from scripts import metrics as cli
    gt = tmp_path / 'gt'
    _make_dataset(str(gt), ['a'])
    pred = tmp_path / 'pred'
    with pytest.raises(UserError, match='not found'):
        cli.main(['--pred', str(pred), '--gt', str(gt)])
    # missing sequence
    _save(str(pred / 'zzz' / '00000.png'), np.zeros((24, 32), np.uint8))
    with pytest.raises(UserError, match="no predictions for sequence 'a'"):
        cli.main(['--pred', str(pred), '--gt', str(gt), '--quiet'])
    # missing frame
    for i in range(4):
        _save(str(pred / 'a' / f'{i:05d}.png'), np.zeros((24, 32), np.uint8))
    with pytest.raises(UserError, match="no predicted mask for frame '00004'"):
        cli.main(['--pred', str(pred), '--gt', str(gt), '--quiet'])
    # size mismatch
    _save(str(pred / 'a' / '00004.png'), np.zeros((24, 32), np.uint8))
    _save(str(pred / 'a' / '00002.png'), np.zeros((12, 16), np.uint8))
    with pytest.raises(UserError, match='prediction is 16x12 but the ground truth is 32x24'):
        cli.main(['--pred', str(pred), '--gt', str(gt), '--quiet'])
    # object id not in the ground truth
    m = np.zeros((24, 32), np.uint8)
    m[0, 0] = 7
    _save(str(pred / 'a' / '00002.png'), m)
    with pytest.raises(UserError, match='object id 7 is not in the ground truth'):
        cli.main(['--pred', str(pred), '--gt', str(gt), '--quiet'])
    with pytest.raises(UserError, match="sequence 'nope' has no ground truth"):
        cli.main(['--pred', str(pred), '--gt', str(gt), '--sequences', 'nope'])


def test_davis_compat_missing_package_is_a_user_error(monkeypatch):
    import sys
    from util import davis_compat
    monkeypatch.setitem(sys.modules, 'davisinteractive', None)     # import -> ImportError
    with pytest.raises(UserError, match='pip install -r requirements-extra.txt'):
        davis_compat.import_davisinteractive()
    assert davis_compat.available() is False
