"""Shipping trained weights: only when better on the report split, with both numbers recorded."""
import json

import pytest

from scripts.train.common import export_weights, sha256
from scripts.train.ship_weights import main as ship_main
from util.davis_split import REPORT_SEQUENCES
from util.errors import UserError


def _eval_json(path, score, sequences=REPORT_SEQUENCES):
    """What `eval_semi_davis --skip-scribble --output` writes (the fields shipping reads)."""
    per = {s: {'J': score + i / 10, 'F': score - i / 10, 'J&F': score} for i, s in enumerate(sequences)}
    path.write_text(json.dumps({'sequences': list(sequences), 'split': 'report',
                                'semi': {'J&F-Mean': score, 'J-Mean': score, 'F-Mean': score,
                                         'per_sequence': per}}))
    return str(path)


@pytest.fixture
def folders(tmp_path):
    import torch
    from model.lite_fusion import LiteFusionNet
    torch.manual_seed(0)
    export_weights('fusion', LiteFusionNet(), tmp_path / 'shipped', 'fused_iou', 80.0, {'iterations': 10})
    export_weights('propagation', torch.nn.Linear(2, 2), tmp_path / 'shipped', 'semi_JF', 70.0, {'iterations': 5})
    torch.manual_seed(1)
    export_weights('fusion', LiteFusionNet(), tmp_path / 'new', 'fused_iou', 82.0, {'iterations': 99})
    return tmp_path


def test_ships_a_better_network_with_both_report_numbers(folders):
    new, old = _eval_json(folders / 'new.json', 0.75), _eval_json(folders / 'old.json', 0.70)
    before = json.loads((folders / 'shipped' / 'manifest.json').read_text())
    assert ship_main(['fusion', '--from', str(folders / 'new'), '--report', new, '--against', old,
                      '--weights', str(folders / 'shipped'), '--note', 'test']) == 0
    assert sha256(folders / 'shipped' / 'fusion_lite.pth') == sha256(folders / 'new' / 'fusion_lite.pth')
    man = json.loads((folders / 'shipped' / 'manifest.json').read_text())
    entry = man['files']['fusion_lite.pth']
    assert entry['iterations'] == 99 and entry['validation']['fused_iou'] == 82.0   # the trainer's entry
    assert entry['report']['score'] == 75.0 and entry['report']['replaced_network_score'] == 70.0
    assert set(entry['report']['per_sequence']) == set(REPORT_SEQUENCES)
    assert entry['replaces']['sha256'] == before['files']['fusion_lite.pth']['sha256']
    assert entry['sha256'] == sha256(folders / 'shipped' / 'fusion_lite.pth') and entry['note'] == 'test'
    assert man['files']['propagation_lite.pth'] == before['files']['propagation_lite.pth']
    assert man['total_bytes'] == sum(f['bytes'] for f in man['files'].values())


def test_refuses_a_network_that_is_not_better_or_not_comparable(folders):
    shipped = sha256(folders / 'shipped' / 'fusion_lite.pth')
    args = ['fusion', '--from', str(folders / 'new'), '--weights', str(folders / 'shipped')]
    with pytest.raises(UserError, match='does not beat'):
        ship_main(args + ['--report', _eval_json(folders / 'a.json', 0.70),
                          '--against', _eval_json(folders / 'b.json', 0.72)])
    with pytest.raises(UserError, match='same sequences'):
        ship_main(args + ['--report', _eval_json(folders / 'c.json', 0.9),
                          '--against', _eval_json(folders / 'd.json', 0.7, REPORT_SEQUENCES[:3])])
    with pytest.raises(UserError, match='report split'):
        ship_main(args + ['--report', _eval_json(folders / 'e.json', 0.9, ('bear', 'boat')),
                          '--against', _eval_json(folders / 'f.json', 0.7, ('bear', 'boat'))])
    (folders / 'g.json').write_text('{"no": 1')
    with pytest.raises(UserError, match='not a readable evaluation'):
        ship_main(args + ['--report', str(folders / 'g.json'), '--against', str(folders / 'b.json')])
    assert sha256(folders / 'shipped' / 'fusion_lite.pth') == shipped            # untouched
