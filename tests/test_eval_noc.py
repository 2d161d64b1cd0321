"""scripts/eval_noc.py: the click robot's placement on generated masks, the NoC bookkeeping, the
held-out photo rule (never a training photo), and the evaluator end to end on generated photos
through the Session (the bundled networks; skips without them)."""
import json
import sys

import cv2
import numpy as np
import pytest

from scripts import eval_noc
from scripts.eval_noc import clicks_to_reach, heldout_photos, iou, next_click
from scripts.train.static_fg import DEFAULT_ROOT, StaticFG
from tests.conftest import REPO, SHARED
from util.photo_split import is_validation_photo


def _disk(h, w, cx, cy, r):
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


# ---------------------------------------------------------------------------------- the robot
def test_first_click_is_positive_at_the_objects_interior_point():
    gt = np.zeros((60, 80), bool)
    gt[10:41, 20:71] = True                       # 31 x 51 rectangle: centre row 25
    x, y, positive = next_click(np.zeros_like(gt), gt)
    assert positive
    assert y == 25 and 35 <= x <= 55              # on the rectangle's middle row, well inside
    assert gt[y, x]


def test_missed_region_gets_a_positive_click_at_its_interior_point():
    gt = _disk(100, 120, 40, 50, 20) | _disk(100, 120, 95, 50, 12)
    pred = _disk(100, 120, 40, 50, 20)            # the small disk is missed
    assert next_click(pred, gt) == (95, 50, True)


def test_false_positive_region_gets_a_negative_click_at_its_interior_point():
    gt = _disk(100, 120, 40, 50, 20)
    pred = gt | _disk(100, 120, 95, 30, 10)       # a false blob, deeper than any missed pixel
    pred[50, 59] = False                          # and a one-pixel miss
    assert next_click(pred, gt) == (95, 30, False)


def test_the_deeper_error_wins_and_the_border_counts_as_boundary():
    gt = np.zeros((50, 50), bool)
    gt[:, :30] = True                             # touches the image's left border
    pred = np.zeros_like(gt)
    pred[:, :4] = True                            # a missed band 26 wide, from x=4 to x=29
    pred[20:31, 40:47] = True                     # a false blob 7 wide: shallower
    x, y, positive = next_click(pred, gt)
    assert positive and 15 <= x <= 18 and gt[y, x] and not pred[y, x]
    # the image's top/bottom border is a boundary too: the point is away from them
    assert 10 <= y <= 40


def test_no_error_no_click_and_ignored_pixels_get_none():
    gt = _disk(40, 40, 20, 20, 10)
    assert next_click(gt, gt) is None
    ignore = np.zeros_like(gt)
    ignore[:, 25:] = True
    pred = gt.copy()
    pred[:, 25:] = False                          # missed only where the mask is ignored
    assert next_click(pred, gt, ignore) is None
    assert iou(pred, gt, ignore) == 1.0
    assert iou(pred, gt) < 1.0


def test_noc_counts_the_first_click_reaching_the_threshold_else_the_maximum():
    assert clicks_to_reach([0.5, 0.86, 0.91], 0.85) == 2
    assert clicks_to_reach([0.5, 0.86, 0.91], 0.90) == 3
    assert clicks_to_reach([0.5, 0.6], 0.90, max_clicks=20) == 20
    rows = [{'ious': [0.95], 'seconds': [0.1], 'NoC@85': 1, 'NoC@90': 1},
            {'ious': [0.5, 0.7, 0.8, 0.84, 0.86], 'seconds': [0.1, 0.2, 0.3, 0.2, 0.2],
             'NoC@85': 5, 'NoC@90': 20}]
    s = eval_noc.summarize(rows)
    assert s['NoC@85'] == 3.0 and s['NoC@90'] == 10.5 and s['failures@90'] == 1
    assert s['IoU@1'] == pytest.approx((0.95 + 0.5) / 2)
    assert s['IoU@3'] == pytest.approx((0.95 + 0.8) / 2)      # a stopped run keeps its IoU
    assert s['median_s_per_click'] == pytest.approx(0.2)


# ---------------------------------------------------------------------------------- the set
def _names(n, held_out):
    out, i = [], 0
    while len(out) < n:
        name = f'gen_{i:05d}'
        if is_validation_photo(name) == held_out:
            out.append(name)
        i += 1
    return out


def _write_folder(root, items):
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'masks').mkdir(parents=True, exist_ok=True)
    for name, rgb, mask in items:
        cv2.imwrite(str(root / 'images' / f'{name}.jpg'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(root / 'masks' / f'{name}.png'), mask.astype(np.uint8) * 255)


def test_heldout_rule_is_disjoint_from_the_trainers_photos_generated(tmp_path):
    rgb = np.full((24, 32, 3), 100, np.uint8)
    mask = _disk(24, 32, 16, 12, 6)
    names = _names(3, True) + _names(30, False)
    _write_folder(tmp_path / 'a', [(n, rgb, mask) for n in names[::2]])
    _write_folder(tmp_path / 'b', [(n, rgb, mask) for n in names[1::2]])
    roots = [tmp_path / 'a', tmp_path / 'b']
    held = heldout_photos(roots)
    assert [h[0] for h in held] == sorted(_names(3, True))
    train = StaticFG(roots)
    assert not {h[0] for h in held} & set(train.ids)
    assert set(train.ids) | {h[0] for h in held} == set(names)


def test_heldout_photos_are_never_training_photos_real_data():
    roots = [SHARED / 'data' / 'static-sal', DEFAULT_ROOT]
    if not all(StaticFG.available(r) for r in roots):
        pytest.skip('../shared/data/static-sal and static-fg are not available')
    held = heldout_photos(roots)
    train = StaticFG(roots)                          # what the trainers sample from
    held_names = {h[0] for h in held}
    held_files = {str(h[1].resolve()) for h in held}
    assert not held_names & set(train.ids)
    assert not held_files & {str(train.image_path(i).resolve()) for i in train.ids}
    everything = StaticFG(roots, part='all')
    assert len(held) + len(train) == len(everything)
    assert 0.03 < len(held) / len(everything) < 0.07      # about 1 in 20
    assert held_names == set(StaticFG(roots, part='validation').ids)


# ---------------------------------------------------------------------------------- end to end
@pytest.fixture(scope='module')
def scenes():
    """Generated photos: the example generator's textured objects over a photo, one object
    each (120 x 214; the frames where neither object hides the other)."""
    sys.path.insert(0, str(REPO / 'example'))
    from make_example import render
    frames = list(render(num_frames=3, height=120, width=214))
    return [(frames[0][0], frames[0][1] == 1), (frames[2][0], frames[2][1] == 2),
            (frames[0][0], frames[0][1] == 2)]


def test_evaluator_end_to_end_on_generated_photos(tmp_path, lite, scenes, capsys):
    names = _names(3, True)
    _write_folder(tmp_path / 'photos', [(n, rgb, m) for n, (rgb, m) in zip(names, scenes)])
    _write_folder(tmp_path / 'photos', [(n, scenes[0][0], scenes[0][1])
                                        for n in _names(2, False)])   # training photos: skipped
    out = tmp_path / 'noc.json'
    rc = eval_noc.main(['--roots', str(tmp_path / 'photos'), '--box', '--max-clicks', '8',
                        '--output', str(out)], networks=lite)
    assert rc == 0
    rep = json.loads(out.read_text())
    s = rep['summary']
    assert [p['name'] for p in rep['photos']] == sorted(names)
    assert s['photos'] == 3 and s['held_out_photos'] == 3
    for key in ('NoC@85', 'NoC@90'):
        assert 1 <= s[key] <= 8
    assert 0 <= s['IoU@1'] <= s['IoU@5'] + 0.1 and s['IoU@5'] <= 1
    assert s['median_s_per_click'] > 0
    assert 0 <= s['box_IoU'] <= 1
    for p in rep['photos']:
        assert 1 <= len(p['ious']) <= 8 and p['NoC@90'] == clicks_to_reach(p['ious'], 0.9, 8)
    # these objects are clear: the trained networks get them from one click or one box
    assert s['IoU@1'] > 0.85 and s['box_IoU'] > 0.85 and s['failures@90'] == 0
    printed = capsys.readouterr().out
    assert 'NoC@85' in printed and 'one box' in printed
    # --first N: the first N held-out names
    rc = eval_noc.main(['--roots', str(tmp_path / 'photos'), '--first', '1', '--quiet',
                        '--max-clicks', '5', '--output', str(out)], networks=lite)
    rep = json.loads(out.read_text())
    assert [p['name'] for p in rep['photos']] == sorted(names)[:1]
    assert 'box_IoU' not in rep['summary'] and rep['summary']['held_out_photos'] == 3
    # --spread N: N names spread over the sorted list, the first and the last included
    assert eval_noc.spread_indices(10, 3) == [0, 4, 9]
    assert eval_noc.spread_indices(3, 5) == [0, 1, 2] and eval_noc.spread_indices(7, 1) == [0]
    eval_noc.main(['--roots', str(tmp_path / 'photos'), '--spread', '2', '--quiet',
                   '--max-clicks', '5', '--output', str(out)], networks=lite)
    rep = json.loads(out.read_text())
    assert [p['name'] for p in rep['photos']] == [sorted(names)[0], sorted(names)[2]]


def test_evaluator_bad_input_is_a_user_error(tmp_path):
    from util.errors import UserError
    with pytest.raises(UserError, match='not a photo folder'):
        eval_noc.main(['--roots', str(tmp_path)])
    _write_folder(tmp_path / 'p', [(n, np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool))
                                   for n in _names(2, False)])
    with pytest.raises(UserError, match='no held-out photos'):
        eval_noc.main(['--roots', str(tmp_path / 'p')])
    with pytest.raises(UserError, match='--first'):
        eval_noc.main(['--roots', str(tmp_path / 'p'), '--first', '0'])
    with pytest.raises(UserError, match='exclude'):
        eval_noc.main(['--roots', str(tmp_path / 'p'), '--first', '2', '--spread', '2'])
