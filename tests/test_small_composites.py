"""Synthetic clips of small look-alike objects (scripts/train/small_composites.py): fixed, small,
from held-out photos only; the CLI scores the engine's zoomed pass on them (generated photos)."""
import json
from pathlib import Path

import numpy as np
import pytest

from scripts.train.small_composites import main, small_object_clips
from scripts.train.static_fg import StaticFG
from tests.test_static_fg import _fake_static_fg


def test_small_object_clips_hold_small_objects_and_are_fixed(tmp_path):
    held = StaticFG(_fake_static_fg(tmp_path, n=2, validation=8), part='validation')
    clips = small_object_clips(held, count=3, n=5, size=(240, 432))
    again = small_object_clips(held, count=3, n=5, size=(240, 432))
    for (frames, labels, k), (f2, l2, k2) in zip(clips, again):
        assert np.array_equal(frames, f2) and np.array_equal(labels, l2) and k == k2
        assert frames.shape == (5, 240, 432, 3) and 2 <= k <= 5 and labels.max() == k
        shares = [(labels[0] == j).mean() for j in range(1, k + 1)]
        assert all(0 < s < 0.02 for s in shares), shares
    with pytest.raises(ValueError):
        small_object_clips(StaticFG(held.root), count=1)        # the training part: refused


@pytest.mark.slow
def test_the_cli_scores_the_zoom(tmp_path, capsys):
    root = _fake_static_fg(tmp_path, n=0, validation=8)
    scores = {}
    for zoom in ('', '--no-zoom'):
        out = tmp_path / f'res{zoom}.json'
        argv = ['--clips', '1', '--photos', str(root), '--output', str(out)] + ([zoom] if zoom else [])
        assert main(argv) == 0
        scores[zoom] = json.loads(out.read_text())
    assert 'small-object composites (1 clip,' in capsys.readouterr().out
    assert set(scores['']['by_size']) == {'small'} and scores['--no-zoom']['zoom'] is False
    assert scores['']['J&F-Mean'] > scores['--no-zoom']['J&F-Mean'], scores


def test_bad_photo_folder_is_a_one_line_error(tmp_path):
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, '-m', 'scripts.train.small_composites', '--photos', str(tmp_path)],
                       cwd=repo, capture_output=True, text=True)
    assert r.returncode != 0 and 'not photo folders' in r.stderr and 'Traceback' not in r.stderr
