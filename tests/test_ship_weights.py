"""Shipping trained weights: only when better on the deciding split (report, or selection when a
network trained on the report videos), with both numbers recorded."""
import json

import pytest

from scripts.train.common import export_weights, sha256
from scripts.train.ship_weights import main as ship_main
from util.davis_split import REPORT_SEQUENCES, SELECTION_SEQUENCES
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
    export_weights('propagation', torch.nn.Linear(2, 2), tmp_path / 'new', 'semi_JF', 72.0, {'iterations': 99})
    return tmp_path


def test_ships_a_better_network_with_both_report_numbers(folders):
    new, old = _eval_json(folders / 'new.json', 0.75), _eval_json(folders / 'old.json', 0.70)
    before = json.loads((folders / 'shipped' / 'manifest.json').read_text())
    assert ship_main(['propagation', '--from', str(folders / 'new'), '--report', new, '--against', old,
                      '--weights', str(folders / 'shipped'), '--note', 'test']) == 0
    assert sha256(folders / 'shipped' / 'propagation_lite.pth') == sha256(folders / 'new' / 'propagation_lite.pth')
    man = json.loads((folders / 'shipped' / 'manifest.json').read_text())
    entry = man['files']['propagation_lite.pth']
    assert entry['iterations'] == 99 and entry['validation']['semi_JF'] == 72.0     # the trainer's entry
    assert entry['report']['score'] == 75.0 and entry['report']['replaced_network_score'] == 70.0
    assert set(entry['report']['per_sequence']) == set(REPORT_SEQUENCES)
    assert entry['replaces']['sha256'] == before['files']['propagation_lite.pth']['sha256']
    assert entry['sha256'] == sha256(folders / 'shipped' / 'propagation_lite.pth') and entry['note'] == 'test'
    assert man['files']['fusion_lite.pth'] == before['files']['fusion_lite.pth']
    assert man['total_bytes'] == sum(f['bytes'] for f in man['files'].values())


def test_refuses_a_network_that_is_not_better_or_not_comparable(folders):
    shipped = sha256(folders / 'shipped' / 'propagation_lite.pth')
    args = ['propagation', '--from', str(folders / 'new'), '--weights', str(folders / 'shipped')]
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
    assert sha256(folders / 'shipped' / 'propagation_lite.pth') == shipped            # untouched


def test_a_network_trained_on_the_report_videos_is_compared_on_the_selection_split(folders, tmp_path):
    import torch
    from scripts.train.common import TRAIN_DATA, TRAIN_DATA_WITH_REPORT
    export_weights('propagation', torch.nn.Linear(2, 2), tmp_path / 'all', 'semi_JF', 83.0,
                   {'iterations': 7, 'data': TRAIN_DATA_WITH_REPORT, 'trained_on_report': True})
    man = json.loads((tmp_path / 'all' / 'manifest.json').read_text())
    assert 'trained on by the files marked trained_on_report' in man['validation_set']
    args = ['propagation', '--from', str(tmp_path / 'all'), '--weights', str(folders / 'shipped')]
    # its report numbers say how well it learnt those videos: not a comparison
    with pytest.raises(UserError, match='not on the selection split'):
        ship_main(args + ['--report', _eval_json(folders / 'r1.json', 0.9),
                          '--against', _eval_json(folders / 'r2.json', 0.7)])
    with pytest.raises(UserError, match='does not beat'):
        ship_main(args + ['--report', _eval_json(folders / 's1.json', 0.70, SELECTION_SEQUENCES),
                          '--against', _eval_json(folders / 's2.json', 0.71, SELECTION_SEQUENCES)])
    assert ship_main(args + ['--report', _eval_json(folders / 's3.json', 0.74, SELECTION_SEQUENCES),
                             '--against', _eval_json(folders / 's4.json', 0.71, SELECTION_SEQUENCES)]) == 0
    entry = json.loads((folders / 'shipped' / 'manifest.json').read_text())['files']['propagation_lite.pth']
    assert entry['report']['split'] == 'selection' and entry['report']['score'] == 74.0
    assert entry['trained_on_report'] and entry['data'] == TRAIN_DATA_WITH_REPORT
    # a network trained without them, against a shipped one that saw them: selection decides too
    torch.manual_seed(2)
    export_weights('propagation', torch.nn.Linear(2, 2), tmp_path / 'clean', 'semi_JF', 84.0,
                   {'iterations': 8, 'data': TRAIN_DATA})
    with pytest.raises(UserError, match='not on the selection split'):
        ship_main(['propagation', '--from', str(tmp_path / 'clean'), '--weights', str(folders / 'shipped'),
                   '--report', _eval_json(folders / 'r3.json', 0.9), '--against', str(folders / 'r2.json')])


def test_evaluations_name_the_networks_that_trained_on_the_report_videos(folders):
    from scripts.eval_semi_davis import networks_that_saw
    from scripts.train.common import REPO
    shipped = REPO / 'weights'     # v1: trained before the report split existed
    assert networks_that_saw(shipped, REPORT_SEQUENCES) == ['fusion_lite.pth', 'interaction_lite.pth',
                                                            'propagation_lite.pth']
    assert networks_that_saw(shipped, SELECTION_SEQUENCES) == []
    assert networks_that_saw(folders / 'new', REPORT_SEQUENCES) == []


def test_the_fusion_file_can_be_retired_with_its_reason(folders):
    shipped = folders / 'shipped'
    with pytest.raises(UserError, match='replaced, not retired'):
        ship_main(['propagation', '--retire', '--note', 'x', '--weights', str(shipped)])
    with pytest.raises(UserError, match='needs --note'):
        ship_main(['fusion', '--retire', '--weights', str(shipped)])
    before = json.loads((shipped / 'manifest.json').read_text())['files']['fusion_lite.pth']
    assert ship_main(['fusion', '--retire', '--note', 'lost to no fusion', '--weights', str(shipped)]) == 0
    man = json.loads((shipped / 'manifest.json').read_text())
    assert not (shipped / 'fusion_lite.pth').exists() and 'fusion_lite.pth' not in man['files']
    assert man['retired']['fusion_lite.pth']['sha256'] == before['sha256']
    assert man['retired']['fusion_lite.pth']['reason'] == 'lost to no fusion'
    assert man['total_bytes'] == sum(f['bytes'] for f in man['files'].values())
    with pytest.raises(UserError, match='no fusion_lite.pth to retire'):
        ship_main(['fusion', '--retire', '--note', 'again', '--weights', str(shipped)])
    with pytest.raises(SystemExit):          # shipping still needs its three inputs
        ship_main(['fusion', '--weights', str(shipped)])


def test_the_unseen_split_decides_with_a_margin_and_the_manifest_records_both_splits(folders, tmp_path):
    import torch
    from scripts.train.common import TRAIN_DATA_WITH_REPORT
    from util.davis_split import EXTRA_UNSEEN
    torch.manual_seed(3)
    # trained on the report videos: on the unseen videos (nobody trained there) it is compared all the same
    export_weights('propagation', torch.nn.Linear(2, 2), tmp_path / 'v3', 'semi_JF', 85.0,
                   {'iterations': 9, 'data': TRAIN_DATA_WITH_REPORT, 'trained_on_report': True})
    args = ['propagation', '--from', str(tmp_path / 'v3'), '--weights', str(folders / 'shipped'), '--margin', '3',
            '--version', 'v3']
    with pytest.raises(UserError, match='by more than 3'):
        ship_main(args + ['--report', _eval_json(folders / 'u1.json', 0.72, EXTRA_UNSEEN),
                          '--against', _eval_json(folders / 'u2.json', 0.70, EXTRA_UNSEEN)])
    assert ship_main(args + ['--report', _eval_json(folders / 'u3.json', 0.76, EXTRA_UNSEEN),
                             '--against', str(folders / 'u2.json'),
                             '--selection', _eval_json(folders / 's1.json', 0.80, SELECTION_SEQUENCES),
                             _eval_json(folders / 's2.json', 0.79, SELECTION_SEQUENCES)]) == 0
    entry = json.loads((folders / 'shipped' / 'manifest.json').read_text())['files']['propagation_lite.pth']
    assert entry['report']['split'] == 'unseen' and entry['version'] == 'v3'
    assert entry['unseen_report']['videos'] == sorted(EXTRA_UNSEEN)
    assert entry['unseen_report']['JF'] == 76.0 and entry['unseen_report']['v1_JF'] == 70.0
    assert entry['selection_report']['JF'] == 80.0 and entry['selection_report']['v1_JF'] == 79.0


def _rounds_json(path, auc, sequences):
    """What `eval_interactive_davis --output` writes (the fields shipping reads)."""
    reps = [{'name': n, 'AUC': auc + i / 100, 'rounds': []} for i, n in enumerate(sequences)]
    auc_mean = sum(r['AUC'] for r in reps) / len(reps)
    path.write_text(json.dumps({'summary': {'AUC': auc_mean, 'rounds': []}, 'sequences': reps,
                                'settings': {'rounds': 8}, 'dataset': '/data/video-extra'}))
    return str(path)


def test_the_fusion_network_is_decided_by_the_robots_rounds(folders):
    """The fusion network acts only between interaction rounds: it ships on the DAVIS robot's
    AUC over the rounds (eval_interactive_davis reports), never on semi-supervised J&F."""
    from util.davis_split import EXTRA_UNSEEN
    args = ['fusion', '--from', str(folders / 'new'), '--weights', str(folders / 'shipped')]
    with pytest.raises(UserError, match='has no DAVIS robot J&F AUC'):
        ship_main(args + ['--report', _eval_json(folders / 'a.json', 0.9, EXTRA_UNSEEN),
                          '--against', _eval_json(folders / 'b.json', 0.7, EXTRA_UNSEEN)])
    with pytest.raises(UserError, match='does not beat'):
        ship_main(args + ['--report', _rounds_json(folders / 'c.json', 0.80, EXTRA_UNSEEN),
                          '--against', _rounds_json(folders / 'd.json', 0.81, EXTRA_UNSEEN)])
    (folders / 'e.json').write_text(json.dumps({'summary': {}, 'sequences': [], 'dataset': 'x'}))
    with pytest.raises(UserError, match='not a readable eval_interactive_davis'):
        ship_main(args + ['--report', str(folders / 'e.json'), '--against', str(folders / 'd.json')])
    selection = ('bear', 'boat', 'car-turn', 'dance-jump', 'hike', 'soccerball')
    assert ship_main(args + ['--report', _rounds_json(folders / 'f.json', 0.83, EXTRA_UNSEEN),
                             '--against', str(folders / 'd.json'), '--version', 'v2', '--selection',
                             _rounds_json(folders / 'g.json', 0.87, selection),
                             _rounds_json(folders / 'h.json', 0.86, selection)]) == 0
    entry = json.loads((folders / 'shipped' / 'manifest.json').read_text())['files']['fusion_lite.pth']
    rep = entry['report']
    assert rep['split'] == 'unseen' and rep['metric'] == 'DAVIS robot J&F AUC over the rounds'
    assert rep['score'] == pytest.approx(100 * (0.83 + 0.025)) and rep['per_sequence']['judo'] == 84.0
    assert rep['replaced_network_score'] == pytest.approx(100 * (0.81 + 0.025))
    assert 'unseen_report' not in entry                  # (J&F blocks are the propagation's)
    assert entry['selection_report']['AUC'] == pytest.approx(100 * (0.87 + 0.025))
    assert entry['selection_report']['v1_AUC'] == pytest.approx(100 * (0.86 + 0.025))
    assert sha256(folders / 'shipped' / 'fusion_lite.pth') == sha256(folders / 'new' / 'fusion_lite.pth')


def _robot_json(path, j):
    """What `eval_semi_davis --skip-semi --split unseen --output` writes for the interaction network."""
    from util.davis_split import EXTRA_UNSEEN
    per = {s: {'J': j} for s in EXTRA_UNSEEN}
    path.write_text(json.dumps({'sequences': list(EXTRA_UNSEEN), 'split': 'unseen',
                                'first_scribble_robot': {'J': j, 'per_sequence': per}}))
    return str(path)


def _noc_json(path, noc90, names=('a', 'b', 'c')):
    """What `scripts.eval_noc --output` writes (the fields shipping reads)."""
    path.write_text(json.dumps({'summary': {'NoC@90': noc90, 'NoC@85': noc90 - 1, 'IoU@1': 0.5,
                                            'box_IoU': 0.8},
                                'photos': [{'name': n} for n in names]}))
    return str(path)


def test_the_interaction_network_ships_with_fewer_clicks_and_no_worse_first_scribble(folders, tmp_path):
    import torch
    from model.lite_interaction import LiteInteractionNet
    torch.manual_seed(0)
    export_weights('interaction', LiteInteractionNet(pretrained=False), folders / 'shipped', 'J', 80.0,
                   {'iterations': 5})
    export_weights('interaction', LiteInteractionNet(pretrained=False), tmp_path / 'v2', 'J', 81.0,
                   {'iterations': 7})
    args = ['interaction', '--from', str(tmp_path / 'v2'), '--weights', str(folders / 'shipped'),
            '--version', 'v2']
    old_j = _robot_json(tmp_path / 'j_old.json', 0.75)
    old_noc = _noc_json(tmp_path / 'noc_old.json', 14.0)
    with pytest.raises(UserError, match='needs --noc'):
        ship_main(args + ['--report', _robot_json(tmp_path / 'j1.json', 0.78), '--against', old_j])
    with pytest.raises(UserError, match='not shipped'):          # fewer clicks, worse on the videos
        ship_main(args + ['--report', _robot_json(tmp_path / 'j2.json', 0.74), '--against', old_j,
                          '--noc', _noc_json(tmp_path / 'n1.json', 5.0), old_noc])
    with pytest.raises(UserError, match='not shipped'):          # better on the videos, more clicks
        ship_main(args + ['--report', str(tmp_path / 'j1.json'), '--against', old_j,
                          '--noc', _noc_json(tmp_path / 'n2.json', 14.5), old_noc])
    with pytest.raises(UserError, match='same photos'):
        ship_main(args + ['--report', str(tmp_path / 'j1.json'), '--against', old_j,
                          '--noc', _noc_json(tmp_path / 'n3.json', 5.0, ('a', 'b')), old_noc])
    assert sha256(folders / 'shipped' / 'interaction_lite.pth') != sha256(tmp_path / 'v2' / 'interaction_lite.pth')
    assert ship_main(args + ['--report', str(tmp_path / 'j1.json'), '--against', old_j,
                             '--noc', str(tmp_path / 'n1.json'), old_noc]) == 0
    assert sha256(folders / 'shipped' / 'interaction_lite.pth') == sha256(tmp_path / 'v2' / 'interaction_lite.pth')
    entry = json.loads((folders / 'shipped' / 'manifest.json').read_text())['files']['interaction_lite.pth']
    assert entry['noc90'] == 5.0 and entry['replaced_noc90'] == 14.0 and entry['noc_photos'] == 3
    assert entry['unseen_first_scribble_j'] == 78.0 and entry['v1_unseen_first_scribble_j'] == 75.0
    assert entry['iou_from_one_box'] == 0.8 and entry['version'] == 'v2'


def test_a_later_network_replaces_v3_only_when_it_also_beats_v1_by_the_margin(folders, tmp_path):
    import torch
    from util.davis_split import EXTRA_UNSEEN
    torch.manual_seed(4)
    for name, version in (('v3', 'v3'), ('v4', None)):
        export_weights('propagation', torch.nn.Linear(2, 2), tmp_path / name, 'semi_JF', 85.0, {'iterations': 9})
    ship_main(['propagation', '--from', str(tmp_path / 'v3'), '--weights', str(folders / 'shipped'),
               '--version', 'v3', '--report', _eval_json(folders / 'v3.json', 0.76, EXTRA_UNSEEN),
               '--against', _eval_json(folders / 'v1.json', 0.70, EXTRA_UNSEEN)])
    args = ['propagation', '--from', str(tmp_path / 'v4'), '--weights', str(folders / 'shipped'),
            '--version', 'v4', '--against', str(folders / 'v3.json'), '--v1', str(folders / 'v1.json')]
    with pytest.raises(UserError, match="v1's 70.00 by more than 8"):
        ship_main(args + ['--report', _eval_json(folders / 'v4a.json', 0.77, EXTRA_UNSEEN), '--v1-margin', '8'])
    with pytest.raises(UserError, match='same sequences'):
        ship_main(args + ['--report', _eval_json(folders / 'v4b.json', 0.77, EXTRA_UNSEEN),
                          '--v1', _eval_json(folders / 'v1r.json', 0.70)])
    assert ship_main(args + ['--report', str(folders / 'v4a.json')]) == 0
    entry = json.loads((folders / 'shipped' / 'manifest.json').read_text())['files']['propagation_lite.pth']
    assert entry['version'] == 'v4'
    rep = entry['unseen_report']
    assert (rep['JF'], rep['v3_JF'], rep['v1_JF']) == (77.0, 76.0, 70.0)
    assert sorted(rep['v1_per_video']) == sorted(EXTRA_UNSEEN)
