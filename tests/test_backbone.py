"""EfficientNet-Lite backbone: ImageNet weights load and classify a cat; normalisation is right."""
import pytest
import torch

from model.efficientnet_lite import EfficientNetLite, from_imagenet_norm
from util.tensor_util import normalize_frames

CAT_CLASSES = range(281, 286)   # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope='module')
def chelsea_224():
    skimage_data = pytest.importorskip('skimage.data')
    import cv2
    img = skimage_data.chelsea()
    return cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope='module')
def lite0():
    return EfficientNetLite('lite0').load_imagenet().eval()


def test_chelsea_is_a_cat(lite0, chelsea_224):
    x = from_imagenet_norm(normalize_frames(chelsea_224))
    with torch.no_grad():
        p = lite0(x).softmax(1)[0]
    assert int(p.argmax()) in CAT_CLASSES
    assert float(p[281:286].sum()) > 0.8


def test_lite_normalisation_is_the_expected_one(lite0, chelsea_224):
    # The conversion equals (x/255 - 0.498) / 0.502 ...
    x = from_imagenet_norm(normalize_frames(chelsea_224))
    ref = (torch.from_numpy(chelsea_224).permute(2, 0, 1).float()[None] / 255 - 0.498) / 0.502
    assert torch.allclose(x, ref, atol=1e-5)
    # ... and these weights are more confident with it than with plain ImageNet mean/std input.
    with torch.no_grad():
        p_lite = lite0(x).softmax(1)[0, 281:286].sum()
        p_imnet = lite0(normalize_frames(chelsea_224)).softmax(1)[0, 281:286].sum()
    assert p_lite > p_imnet


def test_feature_strides_and_extra_stem_channels():
    net = EfficientNetLite('lite0', head=False, max_stride=16, in_channels=6).load_imagenet().eval()
    ref = EfficientNetLite('lite0', head=False, max_stride=16).load_imagenet().eval()
    w = net._conv_stem.weight
    assert torch.equal(w[:, :3], ref._conv_stem.weight) and not w[:, 3:].any()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        f = net.forward_features(torch.cat([x, torch.rand(1, 3, 64, 96)], 1))
        g = ref.forward_features(x)
    assert {s: tuple(t.shape[-2:]) for s, t in f.items()} == {2: (32, 48), 4: (16, 24), 8: (8, 12), 16: (4, 6)}
    assert torch.allclose(f[16], g[16], rtol=1e-3, atol=1e-3)   # zero-initialised channels change nothing


@pytest.mark.parametrize('variant,blocks', [('lite1', 21), ('lite2', 21)])
def test_other_variants_load(variant, blocks):
    net = EfficientNetLite(variant).load_imagenet()
    assert len(net._blocks) == blocks


def test_folded_batchnorm_matches_the_layers_and_follows_weight_changes(lite0, chelsea_224):
    from model.lite_propagation import LiteBackbone
    bb = LiteBackbone(pretrained=True).eval()
    x = from_imagenet_norm(normalize_frames(chelsea_224))
    with torch.enable_grad():                      # autograd on: conv then BN, as in training
        ref = [f.detach() for f in bb(x)]
    with torch.inference_mode():
        folded = bb(x)                              # BN folded into the convolutions
    for a, b in zip(folded, ref):
        assert a.is_contiguous() and torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    # new weights loaded in place (as load_state_dict does) are picked up, not the cached fold
    sd = {k: v.clone() for k, v in bb.state_dict().items()}
    sd['net._blocks.0._bn1.weight'] *= 0.5
    bb.load_state_dict(sd)
    with torch.inference_mode():
        changed = bb(x)
    with torch.enable_grad():
        ref2 = [f.detach() for f in bb(x)]
    assert not torch.allclose(changed[0], folded[0])
    assert torch.allclose(changed[0], ref2[0], rtol=1e-4, atol=1e-4 * float(ref2[0].abs().max()))


def test_a_network_built_under_inference_mode_runs(chelsea_224):
    """The training-free reference builds its backbone inside torch.inference_mode (its weights
    are inference tensors, without a version counter): the folded-BN path must still work."""
    from model.training_free import FrozenFeatures
    ref = FrozenFeatures()
    with torch.inference_mode():
        inside = FrozenFeatures()
        a, b = inside(chelsea_224), ref(chelsea_224)
    assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4)
