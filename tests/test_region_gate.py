"""The engine's regional gate (inference_core/region_gate.py): window geometry, and with the
bundled weights a generated clip with a look-alike of the tracked object that the gate keeps out
(the global memory read alone labels both)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_core import region_gate
from tests.generated_frames import textured_background

WEIGHTS = Path(__file__).resolve().parent.parent / 'weights'
VALID = (0, 0, 480, 864)


def _ones(k=1):
    return torch.ones(k, 1, 480, 864)


def test_an_object_is_kept_near_its_previous_mask():
    prev = torch.zeros(1, 1, 480, 864)
    prev[0, 0, 200:260, 100:160] = 1                      # 60x60 box on the left
    out = region_gate.gate(_ones(), prev, VALID)[0, 0]
    assert out[200:260, 100:160].min() == 1               # where it was: unchanged
    assert out[:, 700:].max() == 0 and out[0:20].max() == 0   # far away: gone
    y0, x0, y1, x1 = region_gate.window(prev[0, 0] > 0.5, VALID)
    # small objects get at least MIN_SIDE of the frame; the window is centred on the box
    assert y1 - y0 == pytest.approx(region_gate.MIN_SIDE * 480)
    assert x1 - x0 == pytest.approx(region_gate.MIN_SIDE * 864)
    assert (x0 + x1) / 2 == pytest.approx(130) and (y0 + y1) / 2 == pytest.approx(230)
    # the fade: values fall monotonically to 0 within RAMP of the shorter side outside the window
    row = out[230, int(x1):int(x1 + region_gate.RAMP * 480) + 2]
    assert (row[1:] <= row[:-1]).all() and row[0] > 0.9 and row[-1] == 0


def test_absent_and_frame_sized_objects_are_not_gated_and_objects_are_independent():
    prev = torch.zeros(3, 1, 480, 864)
    prev[1, 0, 5:475, 5:860] = 1                          # covers the frame
    prev[2, 0, 100:110, 100:110] = 1                      # small, on the left
    raw = _ones(3) * 0.7
    out = region_gate.gate(raw, prev, VALID)
    assert torch.equal(out[0], raw[0]) and torch.equal(out[1], raw[1])   # absent, frame-sized
    assert out[2, 0, 105, 105] == pytest.approx(0.7) and out[2, 0, 400, 800] == 0
    none = torch.zeros(1, 1, 480, 864)
    assert region_gate.gate(_ones(), none, VALID) is not None
    assert torch.equal(region_gate.gate(_ones(), none, VALID), _ones())
    # padding: the window is measured in the frame, not the padded canvas
    padded = torch.zeros(1, 1, 496, 864)
    padded[0, 0, 250:300, 400:450] = 1
    y0, _, y1, _ = region_gate.window(padded[0, 0] > 0.5, (8, 0, 480, 864))
    assert y1 - y0 == pytest.approx(region_gate.MIN_SIDE * 480)


def look_alike_clip(n=20, h=480, w=864, seed=5):
    """Two identical textured ellipses (~2% of the frame each) moving towards each other on a
    textured background; only the left one is labelled (1)."""
    rng = np.random.default_rng(seed)
    bg = textured_background(rng, h, w)
    texture = rng.integers(0, 60, (90, 70, 3)) + np.array([170, 50, 10])
    yy, xx = np.mgrid[0:h, 0:w]
    frames, labels = [], []
    for t in range(n):
        img, lab = bg.copy(), np.zeros((h, w), np.uint8)
        for k, (cx, cy) in enumerate([(220 + 6 * t, 240 + 2 * t), (640 - 6 * t, 240 - 2 * t)]):
            inside = ((xx - cx) / 35) ** 2 + ((yy - cy) / 45) ** 2 <= 1
            patch = np.zeros((h, w, 3), np.int64)
            patch[cy - 45:cy + 45, cx - 35:cx + 35] = texture
            img[inside] = np.clip(patch, 0, 255)[inside]
            if k == 0:
                lab[inside] = 1
        frames.append(img)
        labels.append(lab)
    return np.stack(frames), np.stack(labels)


@pytest.mark.skipif(not (WEIGHTS / 'propagation_lite.pth').is_file(),
                    reason='bundled weights are not in weights/')
def test_a_look_alike_far_away_is_not_taken():
    from model.lite_networks import load_bundled
    from scripts.eval_session import propagate_sequence
    from util.metrics import jaccard
    torch.manual_seed(0)
    prop, _, _ = load_bundled(WEIGHTS)
    frames, labels = look_alike_clip()
    gated = propagate_sequence(prop, frames, labels[0], gate=True)
    j = [jaccard(labels[t] == 1, gated[t] == 1) for t in range(1, len(frames))]
    assert np.mean(j) > 0.8, np.round(j, 2)
    right = np.s_[:, :, 500:]                       # the look-alike's half of the frames
    assert (gated[right] == 1).mean() < 0.002
    plain = propagate_sequence(prop, frames, labels[0], gate=False)
    j_off = [jaccard(labels[t] == 1, plain[t] == 1) for t in range(1, len(frames))]
    assert np.mean(j) > np.mean(j_off) + 0.2, (np.mean(j), np.mean(j_off))
