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
