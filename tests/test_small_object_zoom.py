"""The engine's object-centred zoomed pass for small objects (inference_core/small_object_zoom.py):
window geometry, and with the bundled weights a generated clip whose small moving object is
tracked (and is lost without the zoom)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_core import small_object_zoom as zoom
from model.lite_propagation import LitePropagationNet
from tests.generated_frames import textured_background

WEIGHTS = Path(__file__).resolve().parent.parent / 'weights'


def test_window_follows_the_object_keeps_the_aspect_and_stays_inside():
    valid = (0, 0, 480, 864)
    mask = torch.zeros(480, 864, dtype=torch.bool)
    mask[200:230, 400:440] = True                              # 30x40 px: ~0.3% of the frame
    y0, x0, y1, x1 = zoom.object_window(mask, valid)
    assert y0 <= 200 and y1 >= 230 and x0 <= 400 and x1 >= 440
    assert abs((x1 - x0) / (y1 - y0) - 864 / 480) < 0.05
    assert (y1 - y0) >= zoom.MIN_SIDE * 480 - 1
    corner = torch.zeros(480, 864, dtype=torch.bool)
    corner[0:20, 850:864] = True                               # at the border: shifted inside
    y0, x0, y1, x1 = zoom.object_window(corner, valid)
    assert y0 == 0 and x1 <= 864 and x0 >= 0
    large = torch.zeros(480, 864, dtype=torch.bool)
    large[100:300, 200:500] = True                             # too large to gain from a zoom
    assert zoom.object_window(large, valid) is None
    assert zoom.object_window(torch.zeros(480, 864, dtype=torch.bool), valid) is None
    # padded frames: the window stays inside the frame, not the padding
    y0, x0, y1, x1 = zoom.object_window(corner, (8, 0, 464, 864))
    assert y0 >= 8


def test_zoom_size_differs_from_the_frames_processing_size():
    net = LitePropagationNet(pretrained=False, proc_short=288)
    assert zoom.zoom_size(net, 480, 864) == (192, 352)
    net.proc_short = 240
    zh, zw = zoom.zoom_size(net, 480, 864)
    assert (zh, zw) != (240, 432) and zh % 16 == 0 and zw % 16 == 0
    assert zoom.supported(net)


def small_object_clip(n=24, h=480, w=864, seed=3):
    """A textured background and one small textured ellipse (~0.13% of the frame, like a car far
    away) moving across it. Labels: 1 = the small object."""
    rng = np.random.default_rng(seed)
    bg = textured_background(rng, h, w)
    texture = rng.integers(0, 50, (h, w, 1))
    yy, xx = np.mgrid[0:h, 0:w]
    frames, labels = [], []
    for t in range(n):
        img = bg.copy()
        cx, cy = 200 + 12 * t, 250 + 3 * np.sin(t / 3) * 10
        inside = ((xx - cx) / 16) ** 2 + ((yy - cy) / 11) ** 2 <= 1
        colour = np.array([230, 60, 40])
        img[inside] = np.clip(colour + texture, 0, 255)[inside]
        frames.append(img)
        labels.append(inside.astype(np.uint8))
    return np.stack(frames), np.stack(labels)


@pytest.mark.skipif(not (WEIGHTS / 'propagation_lite.pth').is_file(),
                    reason='bundled weights are not in weights/')
def test_a_small_moving_object_is_tracked():
    from model.lite_networks import load_bundled
    from scripts.eval_semi_davis import propagate_sequence
    from util.metrics import jaccard
    torch.manual_seed(0)
    prop, _, _ = load_bundled(WEIGHTS)
    frames, labels = small_object_clip()
    assert 0.001 < labels[0].mean() < 0.01
    with_zoom = propagate_sequence(prop, frames, labels[0], zoom=True)
    j = [jaccard(labels[t] == 1, with_zoom[t] == 1) for t in range(1, len(frames))]
    assert np.mean(j) > 0.7 and min(j[-5:]) > 0.5, np.round(j, 2)
    without = propagate_sequence(prop, frames, labels[0], zoom=False)
    j_off = [jaccard(labels[t] == 1, without[t] == 1) for t in range(1, len(frames))]
    assert np.mean(j) > np.mean(j_off) + 0.3, (np.mean(j), np.mean(j_off))
