"""model/checkpoint.py (key-checked loading) and download_model.py (offline error, skip valid files)."""
import subprocess
import sys

import pytest
import torch

import download_model
from model.checkpoint import CheckpointError, load_checked, read_state_dict
from model.fusion_net import FusionNet
from model.propagation_net import PropagationNetwork
from util.errors import UserError
from tests.conftest import REPO


def _sd(net, seed=0):
    torch.manual_seed(seed)
    return {k: torch.randn_like(v) if v.is_floating_point() else v.clone() for k, v in net.state_dict().items()}


def test_loads_flat_file_and_copies_values(tmp_path):
    src = _sd(FusionNet())
    p = tmp_path / 'fusion_stcn.pth'
    torch.save(src, p)
    net = FusionNet()
    rep = load_checked(net, p)
    assert rep.ok and rep.loaded == len(src)
    for k, v in net.state_dict().items():
        assert torch.equal(v, src[k]), k


@pytest.mark.parametrize('wrap', [
    lambda sd: {'state_dict': sd, 'epoch': 3},
    lambda sd: {'model': {f'module.{k}': v for k, v in sd.items()}},
    lambda sd: {f'module.{k}': v for k, v in sd.items()},
])
def test_accepts_common_wrappers(tmp_path, wrap):
    src = _sd(FusionNet(), 1)
    p = tmp_path / 'w.pth'
    torch.save(wrap(src), p)
    net = FusionNet()
    assert load_checked(net, p).ok
    assert torch.equal(net.final_conv.weight, src['final_conv.weight'])


def test_renamed_key_names_both_keys_and_the_expected_kind():
    net = PropagationNetwork()
    sd = dict(net.state_dict())
    sd['key_encoder.layer1.0.conv1.weight'] = sd.pop('key_encoder.res2.0.conv1.weight')
    with pytest.raises(CheckpointError) as e:
        load_checked(PropagationNetwork(), sd)
    msg = str(e.value)
    assert '\n' not in msg
    assert 'MiVOS-STCN propagation' in msg
    assert 'missing key_encoder.res2.0.conv1.weight' in msg
    assert 'unexpected key_encoder.layer1.0.conv1.weight' in msg
    assert isinstance(e.value, UserError)


def test_many_missing_keys_are_counted(tmp_path):
    net = FusionNet()
    sd = dict(net.state_dict())
    for k in list(sd)[:5]:
        del sd[k]
    p = tmp_path / 'fusion_stcn.pth'
    torch.save(sd, p)
    with pytest.raises(CheckpointError, match=r'fusion_stcn\.pth is not a MiVOS-STCN fusion .*missing conv1\.0\.weight, '
                                              r'conv1\.0\.bias, conv2\.0\.weight \(2 more\)'):
        load_checked(FusionNet(), p)


def test_shape_mismatch_is_named():
    sd = dict(PropagationNetwork().state_dict())
    # the standalone-STCN stage-0 layout: value encoder conv1 with 4 input channels
    sd['value_encoder.conv1.weight'] = torch.zeros(64, 4, 7, 7)
    with pytest.raises(CheckpointError, match=r'shape mismatch value_encoder\.conv1\.weight \(file 64x4x7x7, '
                                              r'expected 64x5x7x7\)'):
        load_checked(PropagationNetwork(), sd)


def test_non_strict_loads_what_fits_and_reports():
    net = FusionNet()
    src = _sd(net, 2)
    src['aspp_dropout'] = torch.tensor(0.5)
    src['final_conv.weight'] = torch.zeros(2, 32, 3, 3)
    del src['conv1.0.bias']
    before = net.final_conv.weight.clone()
    rep = load_checked(net, src, strict=False)
    assert not rep.ok
    assert rep.missing == ['conv1.0.bias'] and rep.unexpected == ['aspp_dropout']
    assert [m[0] for m in rep.mismatched] == ['final_conv.weight']
    assert torch.equal(net.conv2[0].weight, src['conv2.0.weight'])
    assert torch.equal(net.final_conv.weight, before)


def test_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        load_checked(FusionNet(), tmp_path / 'nope.pth')
    html = tmp_path / 'quota.pth'
    html.write_text('<html>Google Drive - Quota exceeded</html>')
    with pytest.raises(CheckpointError, match='not a readable PyTorch weights file'):
        load_checked(FusionNet(), html)
    lst = tmp_path / 'list.pth'
    torch.save([torch.zeros(1)], lst)
    with pytest.raises(CheckpointError, match='holds a list'):
        read_state_dict(lst)


# --- download_model.py -----------------------------------------------------------------------

def test_download_skips_valid_file(tmp_path, capsys, monkeypatch):
    net = FusionNet()
    torch.save(net.state_dict(), tmp_path / 'fusion_stcn.pth')
    # would fail loudly if it tried the network
    monkeypatch.setitem(download_model.FILES, 'fusion',
                        download_model.FILES['fusion'].__class__('fusion', 'fusion_stcn.pth', 'http://127.0.0.1:9/x', 1))
    assert download_model.main(['--only', 'fusion_stcn', '--dir', str(tmp_path), '--quiet']) == 0
    assert 'already present and valid, skipped' in capsys.readouterr().out


def test_download_skips_valid_det_weights(mivos_ref, tmp_path, capsys):
    from tests.conftest import load_det_state_dict
    torch.save(load_det_state_dict('fusion_stcn'), tmp_path / 'fusion_stcn.pth')
    assert download_model.main(['--only', 'fusion', '--dir', str(tmp_path), '--quiet']) == 0
    assert 'skipped' in capsys.readouterr().out


def test_download_offline_fails_with_one_line(tmp_path):
    # an invalid existing file is replaced: the download is attempted (offline here) and fails
    (tmp_path / 'fusion_stcn.pth').write_text('garbage')
    code = ('import download_model as d, sys\n'
            "d.FILES['fusion'] = d.WeightFile('fusion', 'fusion_stcn.pth', 'http://127.0.0.1:9/fusion_stcn.pth', 1)\n"
            "sys.argv = ['download_model.py', '--only', 'fusion', '--dir', sys.argv[1], '--quiet']\n"
            'from util.errors import run_cli\nrun_cli(d.main)\n')
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('error: could not download fusion_stcn.pth from http://127.0.0.1:9/')
    assert 'Traceback' not in r.stderr
    assert not (tmp_path / 'fusion_stcn.pth.part').exists()


def test_download_unknown_name():
    with pytest.raises(UserError, match="unknown weights 'propagation_model'"):
        download_model.main(['--only', 'stcn,propagation_model'])


@pytest.mark.parametrize('name', ['stcn', 's2m', 'fbrs'])
def test_verify_rejects_a_different_network_file(tmp_path, name):
    p = tmp_path / 'wrong.pth'
    torch.save(FusionNet().state_dict(), p)
    with pytest.raises(CheckpointError):
        download_model.verify(download_model.FILES[name], str(p))
