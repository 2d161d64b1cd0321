"""scripts.train.soup: the mean of networks fine-tuned from one start, written as a snapshot that
pick_snapshot can score; networks that cannot be averaged are refused in one line."""
import json

import pytest
import torch

from util.errors import UserError


def _export(folder, seed, proc_short=96):
    from model.lite_propagation import LitePropagationNet
    from scripts.train.common import export_weights
    torch.manual_seed(seed)
    net = LitePropagationNet(pretrained=False, proc_short=proc_short)
    export_weights('propagation', net, folder, 'semi_JF', 1.0, {'iterations': 0})
    return folder / 'propagation_lite.pth'


def test_the_soup_is_the_mean_of_the_heads_and_a_snapshot(tmp_path):
    from model.lite_networks import load_network
    from scripts.train import soup
    a, b = _export(tmp_path / 'a', 0), _export(tmp_path / 'b', 1)
    assert soup.main([str(a), str(b), '--output', str(tmp_path / 's'), '--iteration', '3']) == 0
    entry, = json.loads((tmp_path / 's' / 'snapshots.json').read_text())
    assert entry['iteration'] == 3 and entry['soup_of'] == [str(a), str(b)]
    mixed = load_network('propagation', tmp_path / 's' / entry['file']).state_dict()
    na, nb = load_network('propagation', a).state_dict(), load_network('propagation', b).state_dict()
    differs = [k for k in na if na[k].is_floating_point() and not torch.equal(na[k], nb[k])]
    assert differs
    for k in differs:     # the mean, to the fp16 the snapshot is stored in
        assert torch.allclose(mixed[k].float(), (na[k].float() + nb[k].float()) / 2, atol=2e-3, rtol=1e-2)
    assert int(mixed['trained_short']) == 96
    # a soup of one network is that network
    _, same = soup.soup([a])
    assert all(torch.equal(same[k], na[k]) for k in na)


def test_networks_of_other_sizes_are_refused(tmp_path):
    from scripts.train import soup
    a, b = _export(tmp_path / 'a', 0), _export(tmp_path / 'b', 1, proc_short=128)
    with pytest.raises(UserError, match='another processing size'):
        soup.soup([a, b])
    with pytest.raises(UserError, match='no such file'):
        soup.main([str(a), str(tmp_path / 'none.pth'), '--output', str(tmp_path / 's'), '--iteration', '1'])
