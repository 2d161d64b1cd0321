"""The guided-filter edge refinement of the bundled interaction net's masks: the filter against
a direct per-window computation, and a blurred mask snapped back onto the object's edges."""
import numpy as np
import torch

from model import lite_networks
from model.guided_filter import EdgeRefine, band_box, box_mean, guided_filter
from model.lite_interaction import LiteInteractionNet
from util.tensor_util import IMAGENET_MEAN, IMAGENET_STD, normalize_frames


def test_box_mean_is_the_mean_over_clipped_windows():
    x = torch.rand(2, 3, 11, 17, dtype=torch.float64)
    r = 3
    got = box_mean(x, r)
    want = torch.empty_like(x)
    for i in range(11):
        for j in range(17):
            want[..., i, j] = x[..., max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean((-2, -1))
    torch.testing.assert_close(got, want)


def _reference_guided_filter(image, p, r, eps):
    """He et al.'s colour guided filter written per window (numpy, float64)."""
    img = image[0].permute(1, 2, 0).double().numpy()
    q = p[0, 0].double().numpy()
    h, w = q.shape
    a = np.zeros((h, w, 3))
    b = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            win = (slice(max(0, i - r), i + r + 1), slice(max(0, j - r), j + r + 1))
            colours = img[win].reshape(-1, 3)
            values = q[win].reshape(-1)
            mu, pm = colours.mean(0), values.mean()
            cov = (colours * values[:, None]).mean(0) - mu * pm
            sigma = colours.T @ colours / len(colours) - np.outer(mu, mu)
            a[i, j] = np.linalg.solve(sigma + eps * np.eye(3), cov)
            b[i, j] = pm - a[i, j] @ mu
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            win = (slice(max(0, i - r), i + r + 1), slice(max(0, j - r), j + r + 1))
            out[i, j] = a[win].reshape(-1, 3).mean(0) @ img[i, j] + b[win].mean()
    return out


def test_guided_filter_matches_the_per_window_definition():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 14, 19)
    p = torch.rand(1, 1, 14, 19)
    want = _reference_guided_filter(image, p, 2, 1e-3)
    got = guided_filter(image, p, radius=2, eps=1e-3, subsample=1)[0, 0].double().numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    # a normalised image with its colour map folded into the coefficients: the same result
    normalised = (image - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    got = guided_filter(normalised, p, radius=2, eps=1e-3, subsample=1,
                        colour=(IMAGENET_STD, IMAGENET_MEAN))[0, 0].double().numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def _object_scene(h=120, w=160):
    """A textured background with a red disc whose boundary is exact; (rgb uint8, disc bool)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 60) ** 2 + (xx - 75) ** 2 < 38 ** 2
    rgb = np.clip(rng.normal(90, 12, (h, w, 3)), 0, 255)
    rgb[..., 1] += 40 * np.sin(xx / 9.0)                    # background stripes
    rgb[disc] = np.clip(rng.normal((200, 40, 40), 10, (int(disc.sum()), 3)), 0, 255)
    return rgb.astype(np.uint8), disc


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_edge_refine_snaps_a_coarse_mask_to_the_object_edges():
    """A mask predicted at 1/8 of the size and upsampled bilinearly (the heads' blobby boundary)
    comes back closer to the disc's edge; confident pixels far from the boundary keep their
    values exactly."""
    rgb, disc = _object_scene()
    small = torch.nn.functional.avg_pool2d(torch.from_numpy(disc).float()[None, None], 8)
    p = torch.nn.functional.interpolate(small, size=disc.shape, mode='bilinear', align_corners=False)
    logits = 6 * (p - 0.5)
    refined = EdgeRefine()(normalize_frames(rgb), logits, colour=(IMAGENET_STD, IMAGENET_MEAN))
    before, after = logits[0, 0].numpy() > 0, refined[0, 0].numpy() > 0
    assert _iou(before, disc) < 0.98 and _iou(after, disc) > 0.99
    assert (after != disc).sum() < 0.2 * (before != disc).sum()
    far = np.zeros_like(disc)
    far[:, :8] = True                                        # > 2 radii from the uncertain band
    assert np.array_equal(refined[0, 0].numpy()[far], logits[0, 0].numpy()[far])


def test_edge_refine_leaves_confident_masks_alone():
    rgb, disc = _object_scene()
    certain = torch.from_numpy(np.where(disc, 4.0, -4.0)).float()[None, None]
    assert torch.equal(EdgeRefine()(normalize_frames(rgb), certain, colour=(IMAGENET_STD, IMAGENET_MEAN)),
                       certain)
    assert band_box(torch.zeros(1, 1, 5, 5, dtype=torch.bool), 3) is None
    assert band_box(torch.ones(2, 1, 5, 7, dtype=torch.bool), 3) == (0, 5, 0, 7)


def test_the_shipped_interaction_configuration_refines_edges():
    """The bundled configuration (model.lite_networks.build) refines at inference only: in
    training mode the logits are the heads' own."""
    net = lite_networks.build('interaction')
    assert isinstance(net.edge_refine, EdgeRefine)
    assert LiteInteractionNet(pretrained=False).edge_refine is None
    torch.manual_seed(2)
    rgb, disc = _object_scene(96, 128)
    image = normalize_frames(rgb)
    guidance = torch.zeros(1, 3, 96, 128)
    guidance[0, 1, 58:62, 50:80] = 1
    plain = LiteInteractionNet(pretrained=False, keep_connected=False)
    refined = LiteInteractionNet(pretrained=False, keep_connected=False, edge_refine=True)
    refined.load_state_dict(plain.state_dict())
    with torch.inference_mode():
        plain.train(), refined.train()
        assert torch.equal(plain.segment(image, guidance), refined.segment(image, guidance))
        plain.eval(), refined.eval()
        a, b = plain.segment(image, guidance), refined.segment(image, guidance)
    assert a.shape == b.shape == (1, 1, 96, 128)
    assert not torch.equal(a, b)
