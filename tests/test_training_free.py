"""The training-free reference propagation (scripts/training_free_baseline.py): it tracks a
textured object on a generated clip, and eval_semi_davis scores it beside the network."""
import numpy as np
import torch

from scripts.training_free_baseline import FrozenFeatures, propagate
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
