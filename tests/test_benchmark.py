"""The benchmark's network loading: a candidate set of bundled weights is measured as it would
run (its propagation file's processing size), and a folder that is not one is a one-line error."""
import pytest
import torch

from model.lite_interaction import LiteInteractionNet
from model.lite_networks import manifest
from model.lite_propagation import LitePropagationNet
from scripts.benchmark.propagation import load_bench_networks
from scripts.train.common import export_weights
from util.errors import UserError


def test_a_candidate_weights_folder_runs_at_its_own_processing_size(tmp_path):
    torch.manual_seed(0)
    export_weights('propagation', LitePropagationNet(pretrained=False, proc_short=288), tmp_path,
                   'semi_JF', 1.0, {'iterations': 1})
    export_weights('interaction', LiteInteractionNet(pretrained=False), tmp_path, 'J', 1.0, {'iterations': 1})
    man = manifest(tmp_path)
    assert man['files']['propagation_lite.pth']['proc_short'] == 288 and '288-pixel' in man['processing']
    nets, desc = load_bench_networks('bundled', 'cpu', tmp_path / 'no-saves', 'auto', tmp_path)
    assert nets.propagation.proc_short == 288 and str(tmp_path) in desc
    with pytest.raises(UserError, match='does not exist'):
        load_bench_networks('bundled', 'cpu', tmp_path / 'no-saves', 'auto', tmp_path / 'missing')


def test_busy_neighbour_runs_while_measuring_and_is_gone_afterwards():
    import os
    from scripts.benchmark import common
    with common.busy_neighbour(2) as pids:
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, 0)                      # alive
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # killed and reaped
            os.kill(pid, 0)
    with common.busy_neighbour(0) as pids:
        assert pids == []


def _interaction_benchmark(tmp_path, height, width, *args):
    """The interaction command on a generated one-frame clip (trained bundled networks, or a
    skip); its JSON report."""
    import json
    import sys
    from tests.conftest import REPO
    from tests.test_engine import bundled_networks_or_skip
    bundled_networks_or_skip()
    sys.path.insert(0, str(REPO / 'example'))
    from make_example import make_example
    make_example(num_frames=1, height=height, width=width, out=str(tmp_path))
    from scripts.benchmark import main
    threads = torch.get_num_threads()
    try:
        main(['interaction', '--clip', str(tmp_path / 'clip'), '--mask',
              str(tmp_path / 'masks' / '00000.png'), '--resolution', str(height), '--repeats', '1',
              '--device', 'cpu', '--output', str(tmp_path / 'r.json'), *args])
    finally:
        torch.set_num_threads(threads)
    return json.loads((tmp_path / 'r.json').read_text())


def test_interaction_benchmark_with_a_busy_neighbour(tmp_path, capsys):
    """The interaction command's clicks, next to a CPU-burning child, under the thread policy
    (a tiny generated clip: the point is the bookkeeping, not the numbers)."""
    from scripts.benchmark import main
    rep = _interaction_benchmark(tmp_path, 120, 214, '--clicks-only', '--busy-neighbour',
                                 '--interaction-threads', '1', '--threads', '2')
    assert rep['busy_neighbours'] == 1 and rep['interaction_threads'] == 1
    assert rep['interaction_threads_policy'] == 1 and rep['threads'] == 2
    for res in rep['objects'].values():
        assert set(res) == {'click', 'click_same_frame'}
        assert res['click']['wall_s'] > 0
    with pytest.raises(UserError, match='interaction-threads'):
        main(['interaction', '--clip', str(tmp_path / 'clip'), '--interaction-threads', 'x'])


def test_interaction_benchmark_times_scribbles_clicks_and_boxes(tmp_path):
    """Without --clicks-only every prompt is timed, first on the frame and later, and the box
    (the object's tight box) gives back the object."""
    rep = _interaction_benchmark(tmp_path, 240, 428, '--threads', '1')
    for res in rep['objects'].values():
        assert set(res) == {'scribble', 'scribble_same_frame', 'click', 'click_same_frame',
                            'box', 'box_same_frame'}
        assert all(r['wall_s'] > 0 for r in res.values())
        assert res['box']['iou'] > 0.85 and res['box_same_frame']['iou'] == res['box']['iou']
