"""f-BRS click model and f-BRS-B predictor against the MiVOS reference fixtures (README §4.8)."""
import numpy as np
import pytest
import torch

from inference_core.fbrs_predictor import Click, FBRSPredictor, ZoomIn, _expand_bbox
from model.checkpoint import CheckpointError
from model.fbrs_net import FBRSCheckpointError, FBRSNet, detect_architecture, dist_maps, load_fbrs
from tests.conftest import load_det_state_dict


@pytest.fixture(scope='module')
def det_net(mivos_ref):
    net, extra = load_fbrs(load_det_state_dict('fbrs'))
    assert extra == []
    return net


@pytest.fixture(scope='module')
def ref(mivos_ref):
    return dict(np.load(mivos_ref / 'fbrs.npz'))


# ------------------------------------------------------------------------------------ loading

def test_state_dict_matches_key_listing(mivos_ref):
    listing = [line.split('\t') for line in (mivos_ref / 'keys' / 'fbrs.txt').read_text().splitlines()]
    own = FBRSNet().state_dict()
    assert list(own) == [k for k, _, _ in listing]
    for key, shape, dtype in listing:
        assert tuple(own[key].shape) == tuple(int(s) for s in shape.split(',') if s), key
        assert str(own[key].dtype) == f'torch.{dtype}', key


def test_loader_reports_extra_keys_and_detects_architecture(tmp_path, caplog):
    sd = FBRSNet().state_dict()
    assert detect_architecture(sd) == ('resnet50', 128)
    sd = dict(sd, aspp_dropout=torch.tensor(0.2), **{'some.extra.weight': torch.zeros(3)})
    path = tmp_path / 'fbrs.pth'
    torch.save(sd, path)
    net, extra = load_fbrs(path)
    assert sorted(extra) == ['aspp_dropout', 'some.extra.weight']
    assert 'some.extra.weight' in caplog.text
    assert not net.training
    assert torch.equal(net.state_dict()['head.layers.2.weight'], sd['head.layers.2.weight'])


def test_renamed_key_fails_naming_it(tmp_path):
    sd = FBRSNet().state_dict()
    sd['head.layers.2.weightX'] = sd.pop('head.layers.2.weight')
    path = tmp_path / 'broken.pth'
    torch.save(sd, path)
    with pytest.raises(FBRSCheckpointError, match=r'missing head\.layers\.2\.weight'):
        load_fbrs(path)
    sd = FBRSNet().state_dict()
    sd['rgb_conv.3.weight'] = torch.zeros(3, 9, 1, 1)
    with pytest.raises(FBRSCheckpointError, match=r'rgb_conv\.3\.weight'):
        load_fbrs(sd)


def test_not_fbrs_files_fail_clearly(tmp_path):
    with pytest.raises(FBRSCheckpointError, match='not an f-BRS checkpoint'):
        load_fbrs({'key_encoder.conv1.weight': torch.zeros(64, 3, 7, 7)})
    with pytest.raises(FBRSCheckpointError, match='HRNet'):
        load_fbrs({'feature_extractor.stage2.0.branches.0.0.conv1.weight': torch.zeros(1)})
    small = {k: v for k, v in FBRSNet().state_dict().items()
             if not k.startswith('feature_extractor.backbone.layer3.')}
    with pytest.raises(FBRSCheckpointError, match='ResNet-34'):
        load_fbrs(small)
    with pytest.raises(CheckpointError, match='not found'):
        load_fbrs(tmp_path / 'nope.pth')
    (tmp_path / 'junk.pth').write_bytes(b'<html>not a checkpoint</html>')
    with pytest.raises(CheckpointError, match='junk.pth'):
        load_fbrs(tmp_path / 'junk.pth')


def test_resnet101_variant_builds_from_its_keys():
    sd = FBRSNet('resnet101', 256).state_dict()
    assert detect_architecture(sd) == ('resnet101', 256)


# ------------------------------------------------------------------------------ click encoding

def test_dist_maps_exact_formula():
    pts = np.array([[[5, 7], [30, 2], [-1, -1], [12, 40], [-1, -1], [-1, -1]]], np.int64)
    out = dist_maps(torch.from_numpy(pts), 33, 45).numpy()
    r, c = np.mgrid[0:33, 0:45].astype(np.float32)

    def plane(points):
        if not points:
            return np.full((33, 45), 1e6, np.float32)
        d = [((r - np.float32(pr)) / np.float32(260)) ** 2 + ((c - np.float32(pc)) / np.float32(260)) ** 2
             for pr, pc in points]
        return np.minimum.reduce(d)

    np.testing.assert_allclose(out[0, 0], np.tanh(2 * np.sqrt(plane([(5, 7), (30, 2)]))), atol=1e-6)
    np.testing.assert_allclose(out[0, 1], np.tanh(2 * np.sqrt(plane([(12, 40)]))), atol=1e-6)
    empty = dist_maps(torch.full((1, 2, 2), -1), 4, 4)
    assert torch.allclose(empty, torch.ones_like(empty))
    # explicit validity: an outside click with negative coordinates still counts
    v = dist_maps(torch.tensor([[[-3, -3], [0, 0]]]), 5, 5, valid=torch.tensor([[True, False]]))
    assert v[0, 0, 0, 0] > 0 and v[0, 1].min() == 1


def test_case_a_network_forward(det_net, ref):
    image, points = torch.from_numpy(ref['in_image']), torch.from_numpy(ref['in_points'])
    with torch.no_grad():
        coord = det_net.coord_features(image, points)
        logits = det_net(image, points)
    assert np.abs(coord.numpy() - ref['out_coord_features']).max() <= 1e-6
    assert np.abs(logits.numpy() - ref['out_logits']).max() <= 1e-4


# ------------------------------------------------------------------------------ predictor parts

def test_zoom_roi_geometry():
    z = ZoomIn(target_size=480, skip_clicks=1, expansion_ratio=1.4, min_crop_size=20)
    image = torch.arange(3 * 100 * 200, dtype=torch.float32).view(1, 3, 100, 200)
    clicks = [Click(50, 100, True)]
    assert z.transform(image, clicks)[0] is image            # first click: no zoom
    prob = torch.zeros(1, 1, 100, 200)
    prob[0, 0, 40:60, 90:130] = 0.9
    z.inv_transform(prob)
    clicks.append(Click(10, 10, False))
    roi_image, tclicks = z.transform(image, clicks)
    # bbox rows 40..59, cols 90..129 -> x1.4 around the centre, clamped
    assert z.object_roi == (36, 64, 82, 138)
    assert _expand_bbox((40, 59, 90, 129), 1.4, 20) == (36, 64, 82, 138)
    h, w = z.object_roi[1] - z.object_roi[0] + 1, z.object_roi[3] - z.object_roi[2] + 1
    assert tuple(roi_image.shape[2:]) == (int(round(h * 480 / w)), 480)
    assert tclicks[0].row == pytest.approx(roi_image.shape[2] * (50 - 36) / h)
    # the result goes back into the ROI on a zero canvas
    back = z.inv_transform(torch.ones(1, 1, *roi_image.shape[2:]))
    assert back.shape == (1, 1, 100, 200)
    assert back[0, 0, 36:65, 82:139].min() > 0.9999 and float(back.sum()) == pytest.approx(h * w, rel=1e-5)


def test_zoom_drops_roi_when_previous_mask_is_empty():
    z = ZoomIn(min_crop_size=10)
    image = torch.zeros(1, 3, 64, 64)
    prob = torch.zeros(1, 1, 64, 64)
    prob[..., 20:30, 20:30] = 1
    z.inv_transform(prob)
    z.transform(image, [Click(25, 25, True), Click(1, 1, False)])
    assert z.object_roi is not None
    z.inv_transform(torch.zeros(1, 1, 16, 16))                # the object vanished
    out, _ = z.transform(image, [Click(25, 25, True), Click(1, 1, False), Click(2, 2, False)])
    assert out is image and z.object_roi is None
    assert z.inv_transform(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)


# ------------------------------------------------------------------------------- case B (L-BFGS)

@pytest.fixture(scope='module')
def case_b(det_net, ref):
    """The GUI controller run of fbrs.npz through our ClickController (f-BRS backend)."""
    from inference_core.click import ClickController
    ctrl = ClickController(click_model=det_net, device='cpu')
    image = torch.from_numpy(ref['in_image'])
    labels = np.zeros(image.shape[2:], np.uint8)
    runs = []
    for x, y, pos in ref['in_clicks_xy_pos']:
        mask = ctrl.click(image, int(x), int(y), bool(pos), labels, 1, 1, frame=0)
        p = ctrl.predictor
        runs.append(dict(mask=mask.numpy(), prob=ctrl.last_prob.numpy(), nfev=p.lbfgs_nfev,
                         roi=p.zoom_roi, opt=np.asarray(p.opt_data, np.float32).copy()))
    return ctrl, runs


@pytest.mark.slow
def test_case_b_controller_matches_reference(case_b, ref):
    _, runs = case_b
    assert [r['nfev'] for r in runs] == list(ref['out_ctrl_lbfgs_nfev'])
    for i, r in enumerate(runs):
        roi = tuple(ref['out_ctrl_zoom_roi'][i])
        assert (r['roi'] or (-1, -1, -1, -1)) == roi
        assert np.abs(r['prob'] - ref['out_ctrl_probs'][i:i + 1]).max() <= 1e-4
        assert np.abs(r['opt'] - ref['out_ctrl_opt_data'][i]).max() <= 1e-4
        sure = np.abs(ref['out_ctrl_probs'][i:i + 1] - 0.5) >= 1e-4
        assert np.array_equal(r['mask'][sure], ref['out_ctrl_masks'][i:i + 1][sure])
    assert runs[2]['mask'].sum() > runs[0]['mask'].sum() > 0     # not degenerate


@pytest.mark.slow
def test_case_b_undo_restores_state(case_b, ref):
    ctrl, runs = case_b
    prev = ctrl.undo()
    assert np.array_equal(prev.numpy(), runs[1]['mask'])
    p = ctrl.predictor
    assert p.num_clicks == 2 and ctrl.num_clicks == 2
    assert np.array_equal(np.asarray(p.opt_data, np.float32), runs[1]['opt'])
    assert p.zoom_roi == runs[1]['roi']
    assert np.array_equal(ctrl.last_prob.numpy(), runs[1]['prob'])
    assert ctrl.undo() is not None and ctrl.undo() is None and ctrl.undo() is None
    assert p.num_clicks == 0 and p.opt_data is None


def test_predictor_limits_longest_side(det_net):
    """A long image is processed at max_size and the result comes back at full size."""
    pred = FBRSPredictor(det_net, 'cpu', max_size=96, with_flip=False)
    pred.set_image(torch.zeros(1, 3, 64, 192))
    prob = pred.add_click(32, 150, True)
    assert prob.shape == (1, 1, 64, 192)
    assert pred._input_data.shape[2:] == (8, 24)      # 32x96 network input at stride 4
    assert pred.undo() is None
