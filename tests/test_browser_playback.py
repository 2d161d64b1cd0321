"""The exported review video plays in a real web browser (headless Chromium): the <video> element
reaches `ended` and the frame it drew is the overlay. Skips where Chromium is not installed."""
import io

import numpy as np
import pytest
from PIL import Image

from inference_core.store import FrameStore
from scripts.check_browser_playback import check, find_chromium
from util.export import export


@pytest.mark.skipif(find_chromium() is None, reason='Chromium is not installed (apt-get install chromium)')
def test_overlay_mp4_plays_in_chromium(tmp_path):
    frames = np.zeros((12, 60, 80, 3), np.uint8)
    frames[:, :, :, 2] = 90
    s = FrameStore(frames, orig_size=(120, 160))
    s.add_object('box', color=(255, 0, 0))
    for t in range(12):
        m = np.zeros((60, 80), np.uint8)
        m[20:40, 30:50] = 1
        s.set_mask(t, m)
    assert export(s, tmp_path, formats=['mp4'], fps=8, alpha=1.0)
    r = check(str(tmp_path / 'overlay.mp4'), timeout=60)
    assert r['state'] == 'ended', r
    assert (r['width'], r['height']) == (160, 120) and abs(r['duration'] - 1.5) < 0.01
    shot = np.array(Image.open(io.BytesIO(r['png'])).convert('RGB')).astype(int)
    assert shot.shape == (120, 160, 3)
    assert abs(shot[60, 80] - (255, 0, 0)).max() < 40        # the object, in its colour
    assert abs(shot[10, 10] - (0, 0, 90)).max() < 40         # the frame around it
