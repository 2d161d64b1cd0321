"""The training-free reference propagation (model/training_free.py): it tracks a
textured object on a generated clip, and eval_semi_davis scores it beside the network."""
import numpy as np
import torch

from model.training_free import FrozenFeatures, memory_frame, propagate, read_memory
from tests.test_engine import make_clip


def test_features_stay_at_stride_8_and_are_normalised():
    f = FrozenFeatures()(np.zeros((64, 96, 3), np.uint8) + 100)
    assert f.shape == (1, 152, 8, 12)
    assert torch.allclose(f[0, :40].norm(dim=0), torch.ones(8, 12), atol=1e-4)


def test_tracks_a_moving_object():
    torch.set_num_threads(1)
    frames, gt = make_clip(num_frames=5, height=128, width=224, seed=0, radius=(30, 22), speed=(4.0, 0.5))
    pred = propagate(frames, gt[0])
    assert pred.shape == gt.shape and np.array_equal(pred[0], gt[0])
    for t in range(1, 5):
        inter, union = ((pred[t] == 1) & (gt[t] == 1)).sum(), ((pred[t] == 1) | (gt[t] == 1)).sum()
        assert inter / union > 0.5, t


def _brute_force_read(q, first_key, first_vals, keys, vals, radius, top_k, temperature):
    """The memory read by its definition, one query position at a time."""
    c, h, w = q.shape
    out = np.zeros((first_vals.shape[0], h * w))
    for p in range(h * w):
        y0, x0 = divmod(p, w)
        qp = q[:, y0, x0]
        aff = list(first_key.reshape(c, -1).T @ qp)
        val = list(first_vals.reshape(first_vals.shape[0], -1).T)
        for key, v in zip(keys, vals):
            for y in range(max(0, y0 - radius), min(h, y0 + radius + 1)):
                for x in range(max(0, x0 - radius), min(w, x0 + radius + 1)):
                    aff.append(key[:, y, x] @ qp)
                    val.append(v[:, y, x])
        order = np.argsort(aff)[::-1][:top_k]
        a = np.array(aff)[order] / temperature
        wts = np.exp(a - a.max())
        out[:, p] = (np.array(val)[order] * (wts / wts.sum())[:, None]).sum(0)
    return out


def test_memory_read_matches_its_definition():
    # random features on a 7x10 grid; tiles that do not divide it, and one larger than it
    rng = np.random.default_rng(0)
    unit = lambda *s: (lambda x: x / np.linalg.norm(x, axis=0, keepdims=True))(rng.normal(size=s))  # noqa: E731
    q, first_key = unit(6, 7, 10), unit(6, 7, 10)
    keys = [unit(6, 7, 10) for _ in range(3)]
    first_vals = rng.random((3, 7, 10))
    vals = [rng.random((3, 7, 10)) for _ in range(3)]
    want = _brute_force_read(q, first_key, first_vals, keys, vals, radius=2, top_k=5, temperature=0.05)
    t = torch.from_numpy
    for tile in (1, 3, 4, 16):
        recent = [memory_frame(t(k), t(v), radius=2, tile=tile) for k, v in zip(keys, vals)]
        got = read_memory(t(q), t(first_key), t(first_vals), recent, radius=2, top_k=5, temperature=0.05,
                          tile=tile)
        np.testing.assert_allclose(got.numpy(), want, atol=1e-9, err_msg=f'tile {tile}')
    # no recent frame yet: the first frame alone
    got = read_memory(t(q), t(first_key), t(first_vals), radius=2, top_k=5, temperature=0.05)
    np.testing.assert_allclose(got.numpy(), _brute_force_read(q, first_key, first_vals, [], [], 2, 5, 0.05),
                               atol=1e-9)
