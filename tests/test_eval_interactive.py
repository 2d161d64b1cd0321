"""scripts/eval_interactive_davis.py: the DAVIS scribble-robot protocol on a tiny generated sequence."""
import json

import numpy as np
import pytest
import torch

from scripts import eval_interactive_davis as ev
from tests.test_propagate_cli import make_davis, tiny_networks
from util.errors import UserError


def _robot_or_skip():
    from util.davis_compat import scribbles_robot
    try:
        return scribbles_robot()
    except UserError:
        pytest.skip('davisinteractive is not installed (optional extra)')


@pytest.fixture(scope='module')
def nets():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # see tests/test_propagate_cli.py
    yield tiny_networks()
    torch.set_num_threads(threads)


def test_auc_over_rounds():
    assert ev.auc_over_rounds([0.5]) == 0.5
    assert ev.auc_over_rounds([0.2, 0.6]) == pytest.approx(0.4)
    # trapezoid on [0, 1]: (0.1 + 0.5)/2/2 + (0.5 + 0.7)/2/2
    assert ev.auc_over_rounds([0.1, 0.5, 0.7]) == pytest.approx(0.45)


def test_robot_paths_conversion():
    ans = {'scribbles': [[], [{'path': [[0.0, 0.0], [1.0, 0.5]], 'object_id': 2},
                              {'path': [[0.5, 1.0]], 'object_id': 0}], []]}
    t, by_obj = ev.robot_paths(ans, 3)
    assert t == 1 and sorted(by_obj) == [0, 2]
    px = ev.to_pixels(by_obj[2], 65, 49)[0]
    np.testing.assert_allclose(px, [[0, 0], [64, 24]])
    assert ev.robot_paths({'scribbles': [[], []]}, 2) == (None, {})


def test_robot_draws_the_same_scribbles_for_the_same_prediction():
    # scikit-image >= 0.19 breaks the robot's skeleton ties in a fresh random order on every
    # call unless it is seeded (util/davis_compat.py): protocol runs could not be compared
    import cv2
    robot = _robot_or_skip()
    gt = np.zeros((3, 120, 200), np.int64)
    a = np.zeros((120, 200), np.uint8)
    cv2.ellipse(a, (80, 60), (50, 30), 20, 0, 360, 1, -1)
    cv2.rectangle(a, (100, 20), (170, 50), 1, -1)
    cv2.rectangle(a, (120, 70), (190, 110), 2, -1)
    gt[1] = a
    pred = np.zeros_like(gt)
    paths = {json.dumps([[s['path'] for s in f] for f in
                         robot.interact('x', pred, gt, nb_objects=2, frame=1)['scribbles']])
             for _ in range(4)}
    assert len(paths) == 1


def test_two_rounds_on_generated_sequence(tmp_path, nets):
    _robot_or_skip()
    root = tmp_path / 'DAVIS'
    make_davis(root, ('s',), n=4)
    out = tmp_path / 'report.json'
    assert ev.main(['--dataset', str(root), '--rounds', '2', '--resolution', '-1',
                    '--output', str(out), '--save-masks', str(tmp_path / 'masks'), '--quiet'],
                   networks=nets) == 0
    rep = json.loads(out.read_text())
    seq = rep['sequences'][0]
    assert seq['name'] == 's' and seq['objects'] == 2 and len(seq['rounds']) == 2
    r1, r2 = seq['rounds']
    # round 1 on an empty prediction: the robot scribbles every object on the frame it picks
    assert r1['frame'] == 0 and set(r1['paths']) >= {'1', '2'}
    assert r1['interaction_s'] > 0 and r1['propagation_s'] > 0
    for r in (r1, r2):
        assert 0 <= r['J'] <= 1 and 0 <= r['F'] <= 1
        assert r['JF'] == pytest.approx((r['J'] + r['F']) / 2)
    assert seq['AUC'] == pytest.approx((r1['JF'] + r2['JF']) / 2)
    assert rep['summary']['rounds'][1]['JF'] == pytest.approx(r2['JF'])
    assert sorted(p.name for p in (tmp_path / 'masks' / 's').iterdir()) == \
        [f'{t:05d}.png' for t in range(4)]


def test_oracle_rounds_set_the_ground_truth(tmp_path, nets):
    """--oracle (the ceiling diagnostic): each round's frame gets its ground-truth mask exactly,
    and it stays there (later passes stop at interacted frames)."""
    _robot_or_skip()
    from util.mask_io import read_label_png
    root = tmp_path / 'DAVIS'
    gts = make_davis(root, ('s',), n=5)
    out = tmp_path / 'report.json'
    assert ev.main(['--dataset', str(root), '--rounds', '3', '--resolution', '-1', '--oracle',
                    '--output', str(out), '--save-masks', str(tmp_path / 'masks'), '--quiet'],
                   networks=nets) == 0
    rep = json.loads(out.read_text())
    assert rep['settings']['oracle'] is True
    frames = {r['frame'] for r in rep['sequences'][0]['rounds'] if r['frame'] is not None}
    assert 0 in frames
    for t in frames:
        pred = read_label_png(str(tmp_path / 'masks' / 's' / f'{t:05d}.png'))
        np.testing.assert_array_equal(pred, gts['s'][t])


def test_errors(tmp_path, nets):
    _robot_or_skip()
    root = tmp_path / 'DAVIS'
    make_davis(root, ('s',), n=3)
    (root / 'Annotations' / '480p' / 's' / '00001.png').unlink()
    with pytest.raises(UserError, match="ground truth missing for frame '00001'"):
        ev.main(['--dataset', str(root), '--rounds', '1', '--quiet'], networks=nets)
    with pytest.raises(UserError, match='--rounds must be >= 1'):
        ev.main(['--dataset', str(root), '--rounds', '0'], networks=nets)
    with pytest.raises(UserError, match="sequence 'x' not found"):
        ev.main(['--dataset', str(root), '--sequences', 'x'], networks=nets)
    # a candidate's weights folder is loaded instead of the shipped one, and a wrong one is named
    with pytest.raises(UserError, match='bundled weights folder .*nothing does not exist'):
        ev.main(['--dataset', str(root), '--sequences', 's', '--model', 'bundled',
                 '--weights', str(tmp_path / 'nothing')])


def test_robot_first_scribble_runs_along_the_object():
    from scripts.eval_semi_davis import robot_first_scribbles
    robot = _robot_or_skip()
    gt = np.zeros((120, 200), bool)
    gt[30:90, 40:160] = True                                   # a wide box: its skeleton is long
    pos, neg = robot_first_scribbles(gt, robot)
    assert pos.dtype == np.float32 and not neg.any()          # one positive stroke, no negative
    ys, xs = np.nonzero(pos)
    assert gt[ys, xs].mean() > 0.95                             # inside the object
    assert xs.max() - xs.min() > 60                              # along its length, not a dot


def test_paired_corrections_on_generated_sequence(tmp_path, nets):
    """scripts/eval_corrections.py: both variants corrected from the same propagated mask."""
    _robot_or_skip()
    from scripts import eval_corrections
    root = tmp_path / 'DAVIS'
    make_davis(root, ('s',), n=6)
    out = tmp_path / 'corr.json'
    assert eval_corrections.main(['--data', str(root), '--sequences', 's', '--frames', '3',
                                  '--resolution', '-1', '--output', str(out)],
                                 networks=nets) == 0
    rep = json.loads(out.read_text())
    rows = rep['sequences']['s']
    assert rows and rep['summary']['corrections'] == len(rows) <= 3
    for r in rows:
        assert 0 < r['frame'] < 6 and r['J_before'] < 0.9
        assert 0 <= r['whole frame'] <= 1 and 0 <= r['zoomed'] <= 1
    # --propagate: each correction also propagated, scored on the whole video, then undone
    # (the script checks that undo gave the first pass back)
    assert eval_corrections.main(['--data', str(root), '--sequences', 's', '--frames', '2',
                                  '--resolution', '-1', '--propagate', '--output', str(out)],
                                 networks=nets) == 0
    rep = json.loads(out.read_text())
    for r in rep['sequences']['s']:
        assert 0 <= r['video_JF_before'] <= 1
        assert 0 <= r['whole frame video_JF'] <= 1 and 0 <= r['zoomed video_JF'] <= 1
    assert 'video_JF_change' in rep['summary']['zoomed']
    with pytest.raises(UserError, match='frames'):
        eval_corrections.main(['--data', str(root), '--sequences', 's', '--frames', '0'],
                              networks=nets)


def _two_object_frame(root, name='two'):
    """A one-frame davis2016-train-style sequence (videos/<name>.mp4, masks/<name>/00000.png)
    with a large ellipse (object 1) and a small ellipse (object 2, 0.4% of the frame)."""
    import cv2
    h, w = 240, 320
    rng = np.random.default_rng(3)
    frame = cv2.resize(rng.integers(60, 140, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    labels = np.zeros((h, w), np.uint8)
    cv2.ellipse(labels, (140, 125), (110, 75), 0, 0, 360, 1, -1)
    cv2.ellipse(labels, (280, 30), (18, 6), 0, 0, 360, 2, -1)
    frame[labels == 1] = (40, 40, 200)
    frame[labels == 2] = (230, 230, 40)
    (root / 'videos').mkdir(parents=True, exist_ok=True)
    (root / 'masks' / name).mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(root / 'videos' / f'{name}.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 24, (w, h))
    vw.write(frame[..., ::-1])
    vw.release()
    cv2.imwrite(str(root / 'masks' / name / '00000.png'), labels)
    return labels


def test_first_scribble_for_each_object_strokes_small_objects_too(tmp_path):
    """The DAVIS robot on the union of two objects sizes its opening by the union and erases the
    small object's stroke; run per object (as its benchmark draws multi-object frames) each
    object gets its own stroke, and the trained interaction net segments both."""
    from pathlib import Path

    from scripts.eval_semi_davis import evaluate_first_scribble_objects, robot_first_scribbles
    robot = _robot_or_skip()
    labels = _two_object_frame(tmp_path)
    pos, _ = robot_first_scribbles(labels > 0, robot)
    assert pos[labels == 1].any() and not pos[labels == 2].any()
    ans = robot.interact('two', np.zeros((1,) + labels.shape, int), labels[None].astype(int),
                         nb_objects=2, frame=0)
    _, by_obj = ev.robot_paths(ans, 1)
    assert sorted(k for k in by_obj if k) == [1, 2]
    weights = Path(__file__).resolve().parent.parent / 'weights'
    if not (weights / 'interaction_lite.pth').is_file():
        pytest.skip('the bundled interaction weights are not in weights/')
    from inference_core.networks import load_bundled
    res = evaluate_first_scribble_objects(load_bundled(str(weights)).interaction, tmp_path, ('two',),
                                          robot=robot)
    assert set(res['per_object']['two']) == {'1', '2'}
    assert min(res['per_object']['two'].values()) > 0.6
    assert res['J'] == pytest.approx(np.mean(list(res['per_object']['two'].values())))
