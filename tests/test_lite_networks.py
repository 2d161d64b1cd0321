"""Bundled lite networks: contract shapes, fp16 export/load round trip, and (with the trained
weights) a short propagation that beats copying the first mask."""
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_core.padding import pad_divide_by
from model import lite_networks
from model.lite_fusion import LiteFusionNet
from model.lite_interaction import LiteInteractionNet
from model.lite_propagation import LitePropagationNet, proc_size
from util.errors import UserError
from util.tensor_util import normalize_frames

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / 'weights'


@pytest.fixture(scope='module')
def prop():
    torch.manual_seed(0)
    return LitePropagationNet(pretrained=False).eval()


def test_proc_size():
    assert proc_size(480, 864) == (240, 432)
    assert proc_size(96, 128) == (96, 128)          # small inputs are never upscaled
    assert proc_size(1088, 1920) == (240, 416)


def test_propagation_contract_shapes(prop):
    torch.manual_seed(1)
    H, W = 96, 160
    frame = torch.randn(1, 3, H, W)
    with torch.inference_mode():
        k16, qv16, f16, f8, f4 = prop.encode_key(frame)
        assert k16.shape[:2] == (1, 64) and qv16.shape[0] == 1 and f16.shape[0] == 1
        masks = torch.zeros(2, 1, H, W)
        masks[0, :, 10:50, 20:80] = 1
        masks[1, :, 60:90, 90:150] = 1
        v = prop.encode_value(frame, f16, masks)
        assert v.shape[:3] == (2, 128, 1) and v.shape[-2:] == k16.shape[-2:]
        # the 'others' channel matters: object 1's value depends on object 2's mask
        v_alone = prop.encode_value(frame, f16, masks[:1])
        assert not torch.allclose(v[:1], v_alone)
        mk = torch.stack([k16, k16], 2)                          # 2 memory frames
        mv = torch.cat([v, v], 2)
        prob = prop.segment_with_query(mk, mv, f8, f4, k16, qv16)
        assert prob.shape == (2, 1, H, W)
        assert float(prob.min()) >= 0 and float(prob.max()) <= 1
        pos = torch.rand(3, 1, H, W)
        attn = prop.get_attention(k16.unsqueeze(2), pos, 1 - pos, k16)
        assert attn.shape == (3, 2, H, W)


def test_objects_share_the_decoders_skips(prop):
    """The decoder computes the backbone skips once and broadcasts them over the objects (and
    runs channels-last): the same logits as the plain computation on per-object copies of the
    maps; without the prior, three objects decoded together equal each decoded alone."""
    from model.lite_propagation import resize_to, with_others
    torch.manual_seed(3)
    H, W = 96, 160
    frame = torch.randn(1, 3, H, W)
    with torch.inference_mode():
        torch.nn.init.normal_(prop.decoder.prior4.weight, std=0.5)   # make the prior count
        try:
            k16, qv16, f16, f4, f2 = prop.encode_key(frame)
            readout = torch.randn(3, 128, *k16.shape[-2:])
            prev = torch.rand(3, 1, H, W)
            got = prop.decode(readout, qv16, f4, f2, (H, W), prev_mask=prev)
            x = torch.cat([readout, qv16.expand(3, -1, -1, -1)], 1).contiguous()
            prior = with_others(resize_to(prev, f4.shape[-2:], 'area')).contiguous()
            plain = resize_to(prop.decoder(x, f4.expand(3, -1, -1, -1).contiguous(),
                                           f2.expand(3, -1, -1, -1).contiguous(), prior), (H, W))
            together = prop.decode(readout, qv16, f4, f2, (H, W))
            alone = [prop.decode(readout[i:i + 1], qv16, f4, f2, (H, W)) for i in range(3)]
        finally:
            torch.nn.init.zeros_(prop.decoder.prior4.weight)
    assert got.shape == (3, 1, H, W) and got.is_contiguous()
    torch.testing.assert_close(got, plain, atol=1e-5, rtol=1e-4)
    for i in range(3):
        torch.testing.assert_close(together[i:i + 1], alone[i], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(together[0], together[1])


def test_previous_mask_prior_starts_neutral_and_then_matters():
    torch.manual_seed(2)
    net = LitePropagationNet(pretrained=False).eval()
    H, W = 96, 160
    frame = torch.randn(1, 3, H, W)
    prev = torch.zeros(1, 1, H, W)
    prev[..., 20:60, 30:90] = 1
    with torch.inference_mode():
        k16, qv16, f16, f8, f4 = net.encode_key(frame)
        v = net.encode_value(frame, f16, prev)
        args = (k16.unsqueeze(2), v, f8, f4, k16, qv16)
        plain = net.segment_with_query(*args)
        # zero-initialised prior convs: weights trained without the prior compute the same thing
        assert torch.equal(net.segment_with_query(*args, prev_mask=prev), plain)
        torch.nn.init.normal_(net.decoder.prior4.weight, std=1.0)
        with_prior = net.segment_with_query(*args, prev_mask=prev)
        moved = net.segment_with_query(*args, prev_mask=torch.roll(prev, 40, -1))
    assert not torch.allclose(with_prior, plain)
    assert not torch.allclose(with_prior, moved)       # it is a spatial prior


def test_fusion_contract_and_identity_at_init():
    net = LiteFusionNet().eval()
    H, W = 64, 96
    seg1, seg2 = torch.rand(2, 1, H, W), torch.rand(2, 1, H, W)
    with torch.inference_mode():
        out = net(torch.randn(1, 3, H, W), seg1, seg2, torch.rand(2, 2, H, W), torch.tensor([[0.3, 0.7]]))
    assert out.shape == (2, 1, H, W)
    # untrained: (almost) the new propagation result
    assert torch.allclose(torch.sigmoid(out), seg2, atol=0.01)


def test_interaction_contract_shapes():
    net = LiteInteractionNet(pretrained=False).eval()
    x = torch.cat([torch.randn(2, 3, 80, 112), torch.zeros(2, 3, 80, 112)], 1)
    x[:, 4, 30:32, 40:60] = 1                                    # a thin positive scribble
    with torch.inference_mode():
        out = net(x)
    assert out.shape == (2, 1, 80, 112)


def test_interaction_objects_share_one_backbone_pass():
    """ScribbleController segments all objects of a frame in one call (the image's backbone maps
    computed once per size): the logits of each object are those of running it alone."""
    from inference_core.interaction import ScribbleController
    torch.manual_seed(5)
    net = LiteInteractionNet(pretrained=False, extra_scales=(64,)).eval()
    image = torch.randn(1, 3, 96, 160)
    labels = np.zeros((96, 160), np.uint8)
    labels[10:50, 20:70], labels[40:90, 90:150] = 1, 2
    scr = np.full((96, 160), 255, np.uint8)
    scr[30:32, 30:60], scr[60:62, 100:140], scr[5:7, 5:40] = 1, 2, 0
    ctl = ScribbleController(net, 'cpu')
    with torch.inference_mode():
        x = ctl.net_inputs(image, labels, scr, 2)
        together = ctl.interact(image, labels, scr, 2)
        alone = torch.cat([torch.sigmoid(net(x[k:k + 1])) for k in range(2)], 0)
    assert together.shape == (2, 1, 96, 160)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(together[0], together[1])


def test_interaction_test_time_scales_average_the_logits():
    torch.manual_seed(4)
    net = LiteInteractionNet(pretrained=False, keep_connected=False).eval()
    x = torch.cat([torch.randn(1, 3, 96, 160), torch.zeros(1, 3, 96, 160)], 1)
    x[:, 4, 40:42, 50:90] = 1
    with torch.inference_mode():
        single = net(x)
        net.extra_scales = (96,)              # the same size as the base one: computed once
        assert torch.equal(net(x), single)
        net.proc_short, net.extra_scales = 64, (96,)
        two = net(x)
        net.extra_scales = ()
        small = net(x)
    assert two.shape == single.shape == (1, 1, 96, 160)
    # the average of the two sizes' logits (the small one's head map resized to the large one's)
    assert not torch.allclose(two, single) and not torch.allclose(two, small)
    assert torch.allclose(two, (single + small) / 2, atol=0.5)


def test_unmarked_far_regions_are_dropped_and_the_marked_object_kept():
    from model.lite_interaction import drop_unmarked_regions
    logits = torch.full((1, 1, 60, 100), -5.0)
    logits[..., 10:30, 10:30] = 5                               # the scribbled object
    logits[..., 12:20, 33:40] = 5                               # a part near it (3 px away)
    logits[..., 40:55, 70:95] = 5                               # a salient thing far away
    guide = torch.zeros(1, 2, 60, 100)
    guide[0, 1, 20, 12:28] = 1
    out = drop_unmarked_regions(logits, guide, min_dist=2.5)
    assert (out[..., 10:30, 10:30] > 0).all() and (out[..., 12:20, 33:40] > 0).all()
    assert (out[..., 40:55, 70:95] < 0).all()
    # without any mark nothing is dropped
    assert torch.equal(drop_unmarked_regions(logits, torch.zeros_like(guide)), logits)


def test_export_and_load_bundled_roundtrip(tmp_path, prop):
    from scripts.train.common import export_weights
    inter = LiteInteractionNet(pretrained=False)
    assert export_weights('propagation', prop, tmp_path, 'semi_JF', 10.0, {'iterations': 1})
    assert export_weights('interaction', inter, tmp_path, 'J', 5.0, {'iterations': 1})
    # a worse score does not overwrite
    assert not export_weights('propagation', prop, tmp_path, 'semi_JF', 9.0, {'iterations': 2})
    man = lite_networks.manifest(tmp_path)
    assert man['files']['propagation_lite.pth']['iterations'] == 1
    assert len(man['files']['propagation_lite.pth']['sha256']) == 64
    p2, fusion, i2 = lite_networks.load_bundled(tmp_path)
    assert not p2.training and next(p2.parameters()).dtype == torch.float32
    frame = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        a = prop.encode_key(frame)[0]
        b = p2.encode_key(frame)[0]
    assert torch.allclose(a, b, atol=0.05, rtol=0.02)               # fp16 storage only
    assert isinstance(fusion, LiteFusionNet)


def test_weights_from_before_the_prior_still_load(tmp_path, prop):
    from scripts.train.common import fp16_state_dict
    inter = LiteInteractionNet(pretrained=False)
    old = {k: v for k, v in fp16_state_dict(prop).items() if '.prior' not in k}
    torch.save(old, tmp_path / 'propagation_lite.pth')
    torch.save(fp16_state_dict(inter), tmp_path / 'interaction_lite.pth')
    p2, _, _ = lite_networks.load_bundled(tmp_path)
    assert not p2.decoder.prior4.weight.detach().any()               # neutral prior
    del old['decoder.pred.weight']                                     # any other key is required
    torch.save(old, tmp_path / 'propagation_lite.pth')
    with pytest.raises(UserError, match='1 missing .*decoder.pred.weight'):
        lite_networks.load_bundled(tmp_path)


def test_the_processing_size_travels_with_the_weights(tmp_path):
    """Heads trained at another size run at that size after a save and load; files saved before
    the size was stored run at 240, the size they were trained at."""
    from scripts.train.common import fp16_state_dict
    torch.manual_seed(0)
    net = LitePropagationNet(pretrained=False, proc_short=288)
    torch.save(fp16_state_dict(net), tmp_path / 'p288.pth')
    loaded = lite_networks.load_network('propagation', tmp_path / 'p288.pth')
    assert loaded.proc_short == 288
    frame = torch.randn(1, 3, 480, 864)
    with torch.inference_mode():
        k16 = loaded.encode_key(frame)[0]
    assert tuple(k16.shape[-2:]) == (288 // 16, 512 // 16)
    old = {k: v for k, v in fp16_state_dict(net).items() if k != 'trained_short'}
    torch.save(old, tmp_path / 'old.pth')
    assert lite_networks.load_network('propagation', tmp_path / 'old.pth').proc_short == 240
    resumed = LitePropagationNet(pretrained=False, proc_short=288)     # a strict load (a resume)
    resumed.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in old.items()})
    assert resumed.proc_short == 240 and 'trained_short' not in old
    loaded.proc_short = 256                                          # an evaluation's override
    assert loaded.proc_short == 256 and int(loaded.state_dict()['trained_short']) == 256


def test_load_bundled_errors(tmp_path):
    with pytest.raises(UserError, match='does not exist'):
        lite_networks.load_bundled(tmp_path / 'nope')
    with pytest.raises(UserError, match='missing'):
        lite_networks.load_bundled(tmp_path)
    (tmp_path / 'propagation_lite.pth').write_bytes(b'garbage')
    (tmp_path / 'interaction_lite.pth').write_bytes(b'garbage')
    with pytest.raises(UserError, match='not a readable weights file'):
        lite_networks.load_bundled(tmp_path)
    torch.save({'x': torch.zeros(1)}, tmp_path / 'propagation_lite.pth')
    with pytest.raises(UserError, match='does not match'):
        lite_networks.load_bundled(tmp_path)


def _synthetic_clip(n=8, h=192, w=320, seed=0, start=(40, 20)):
    """A textured object (a cat's head) sliding over a textured background (the astronaut)."""
    import cv2
    from skimage import data
    rng = np.random.default_rng(seed)
    bg = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)
    obj = cv2.resize(data.chelsea()[40:260, 80:330], (96, 84), interpolation=cv2.INTER_AREA)
    oh, ow = obj.shape[:2]
    yy, xx = np.mgrid[:oh, :ow]
    shape = ((yy - oh / 2) / (oh / 2)) ** 2 + ((xx - ow / 2) / (ow / 2)) ** 2 <= 1   # an ellipse
    frames, labels = [], []
    for t in range(n):
        y, x = start[0] + int(6 * t + rng.integers(0, 3)), start[1] + 22 * t
        f = bg.copy()
        lab = np.zeros((h, w), np.uint8)
        f[y:y + oh, x:x + ow][shape] = obj[shape]
        lab[y:y + oh, x:x + ow][shape] = 1
        frames.append(f)
        labels.append(lab)
    return np.stack(frames), np.stack(labels)


def test_trained_propagation_beats_copying_the_first_mask():
    if not (WEIGHTS / 'propagation_lite.pth').is_file() or not (WEIGHTS / 'interaction_lite.pth').is_file():
        pytest.skip('trained bundled weights are not in weights/ yet (run scripts/train/train_propagation.py)')
    from scripts.eval_semi_davis import propagate_sequence
    from util.metrics import jaccard
    prop, fusion, _ = lite_networks.load_bundled(WEIGHTS)
    frames, labels = _synthetic_clip()
    pred = propagate_sequence(prop, frames, labels[0])
    j_net = np.mean([jaccard(labels[t] == 1, pred[t] == 1) for t in range(1, len(frames))])
    j_copy = np.mean([jaccard(labels[t] == 1, labels[0] == 1) for t in range(1, len(frames))])
    assert j_net > 0.55 and j_net > j_copy + 0.3, (j_net, j_copy)


def test_trained_interaction_follows_the_scribbles():
    if not (WEIGHTS / 'interaction_lite.pth').is_file() or not (WEIGHTS / 'propagation_lite.pth').is_file():
        pytest.skip('trained bundled weights are not in weights/ yet (run scripts/train/train_interaction.py)')
    from util.metrics import jaccard
    _, _, inter = lite_networks.load_bundled(WEIGHTS)
    frames, labels = _synthetic_clip(n=1, start=(20, 200))       # on the wall next to the rocket
    gt = labels[0] == 1
    ys, xs = np.nonzero(gt)
    cy = int(ys.mean())
    x_img = normalize_frames(frames[0])

    def run(pos, neg):
        maps = torch.from_numpy(np.stack([np.zeros_like(pos), pos, neg]))[None]
        x, _ = pad_divide_by(torch.cat([x_img, maps], 1), 16)
        with torch.inference_mode():
            return torch.sigmoid(inter(x))[0, 0].numpy() > 0.5

    on_cat = np.zeros(gt.shape, np.float32)
    on_cat[cy - 1:cy + 2, xs.min() + 15:xs.max() - 15] = 1      # a stroke across the cat
    on_face = np.zeros(gt.shape, np.float32)
    on_face[50:53, 120:170] = 1                                  # a stroke across the astronaut's face
    j_cat = jaccard(gt, run(on_cat, on_face))
    j_other = jaccard(gt, run(on_face, on_cat))
    assert j_cat > 0.4 and j_other < 0.1, (j_cat, j_other)
