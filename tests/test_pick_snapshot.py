"""scripts.train.pick_snapshot scores a snapshot exactly as its trainer validated it: the
video-extra selection videos with --extra-video, the composites of all the photo folders drawn at
the snapshot's processing size, the same weighting. Generated data only."""
import json

import numpy as np
import torch

from tests.test_static_fg import _fake_static_fg
from tests.test_video_extra import write_sequence


def _labels(n=6, h=96, w=160, ids=(1,)):
    out = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        for k, i in enumerate(ids):
            y, x = 20 + 30 * k, 30 + 8 * t + 50 * k
            out[t, y:y + 25, x:x + 35] = i
    return out


def test_a_snapshot_is_scored_as_its_trainer_validates_it(tmp_path):
    from model.lite_networks import load_network
    from model.lite_propagation import LitePropagationNet
    from scripts.train import common, pick_snapshot
    from scripts.train.data import cache_size
    from scripts.train.static_fg import StaticFG, validation_clips
    from scripts.train.train_propagation import validate
    from util.davis_split import EXTRA_SELECTION
    davis, extra = tmp_path / 'davis', tmp_path / 'extra'
    write_sequence(davis, 'bear', _labels() * 255)                       # a DAVIS selection video
    write_sequence(extra, EXTRA_SELECTION[0], _labels(ids=(1, 2)))       # a multi-object one
    photos = [_fake_static_fg(tmp_path / 'a', n=1, validation=2), _fake_static_fg(tmp_path / 'b', n=1, validation=4)]
    for name in sorted(p.stem for p in (photos[0] / 'images').iterdir()):     # b: 2 photos a lacks
        (photos[1] / 'images' / f'{name}.jpg').unlink()
        (photos[1] / 'masks' / f'{name}.png').unlink()
    torch.manual_seed(0)
    net = LitePropagationNet(pretrained=False, proc_short=96)
    snaps = tmp_path / 'snaps'
    common.Snapshots(snaps, 'propagation').write(net, 7)
    w = tmp_path / 'w'
    assert pick_snapshot.main([str(snaps), '--weights', str(w), '--data', str(davis), '--extra-video', str(extra),
                               '--static-fg', *map(str, photos), '--val-composites', '2',
                               '--composites-weight', '0.5', '--threads', '1']) == 0
    entry = json.loads((w / 'manifest.json').read_text())['files']['propagation_lite.pth']
    # what train_propagation logs for the same network with the same options
    snap = load_network('propagation', snaps / 'propagation_it000007.pth')
    assert snap.proc_short == 96
    held = StaticFG([str(p) for p in photos], part='validation')
    assert len(held) == 4          # two from each folder: one alone is too few for composites
    res = validate(snap, davis, clips=validation_clips(held, 2, size=cache_size(96)), composites_weight=0.5,
                   extra_root=extra)
    assert res['sequences'] == 2                                         # bear and the extra video
    assert entry['validation']['semi_JF'] == round(res['J&F-Mean'] * 100, 2)
    assert entry['validation']['composites_JF'] == round(res['composites']['J&F-Mean'] * 100, 2)
    assert entry['validation']['selection_and_0.5x_composites_JF'] == round(res['score'] * 100, 2)
    assert 'video-extra' in entry['validation']['sequences']
