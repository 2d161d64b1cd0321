"""Interaction training samples (scripts/train/interaction_samples.py) on generated data: a box
round gives the network what Session.add_box gives it, the click robot clicks into the error it
should fix, click sequences accumulate on the network's own answers, and a two-photo composite's
target is one of its two objects."""
import cv2
import numpy as np
import torch

from inference_core.box_prompt import box_prior, box_strokes, crop_for_box
from scripts.train.interaction_samples import (box_sample, click_sequences, error_click,
                                               jittered_box, photo_paste_sample)
from scripts.train.static_fg import StaticFG
from tests.test_static_fg import _fake_static_fg


def _ellipse(h=120, w=200, centre=(120, 60), axes=(40, 25)):
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, centre, axes, 0, 0, 360, 1, -1)
    return m.astype(bool)


def test_box_round_is_what_the_session_gives_the_network_for_that_box():
    gt = _ellipse()
    frame = np.random.default_rng(0).integers(0, 255, gt.shape + (3,), dtype=np.uint8)
    rng = np.random.default_rng(1)
    frame2, gt2, soft2, guide = box_sample(frame, gt, gt.astype(np.float32), rng, (96, 160))
    assert frame2.shape == (96, 160, 3) and gt2.shape == soft2.shape == (96, 160)
    # replay the draw: the same box, then box_prompt's own planes on the zoomed crop
    box = jittered_box(gt, np.random.default_rng(1))
    x0, y0, x1, y1 = crop_for_box(box, *gt.shape)
    sy, sx = 96 / (y1 - y0), 160 / (x1 - x0)
    local = ((box[0] - x0) * sx, (box[1] - y0) * sy, (box[2] - x0) * sx, (box[3] - y0) * sy)
    scr = box_strokes(96, 160, local, (), min(sx, sy))
    assert np.array_equal(guide[0], box_prior(96, 160, local).astype(np.float32))
    assert np.array_equal(guide[1] > 0, scr == 1) and np.array_equal(guide[2] > 0, scr == 0)
    # the centre disk is on the object, the negative lines off it, and the object is zoomed in
    assert gt2[guide[1] > 0].mean() > 0.9 and gt2[guide[2] > 0].mean() < 0.05
    assert gt2.mean() > 2 * gt.mean()


def test_jittered_box_stays_close_to_the_objects_box():
    gt = _ellipse()
    for seed in range(20):
        x0, y0, x1, y1 = jittered_box(gt, np.random.default_rng(seed))
        assert abs(x0 - 80) <= 6 and abs(x1 - 161) <= 6 and abs(y0 - 35) <= 4 and abs(y1 - 86) <= 4
    assert jittered_box(np.zeros((10, 10), bool), np.random.default_rng(0)) is None


def test_error_click_goes_into_the_deeper_error():
    gt = _ellipse()
    rng = np.random.default_rng(0)
    missed = gt.copy()
    missed[:, 120:] = False                           # the right half of the object is missed
    disk, positive = error_click(missed, gt, rng)
    assert positive and (gt & ~missed)[disk].all()
    spill = gt | _ellipse(centre=(40, 60), axes=(25, 25))   # a false blob on the left
    disk, positive = error_click(spill, gt, rng)
    assert not positive and (spill & ~gt)[disk].all()
    assert error_click(gt, gt, rng) is None


def test_click_sequences_accumulate_on_the_networks_answers():
    gts = [_ellipse(96, 160, (80, 48), (30, 20))] * 3
    answers = []

    def head(f2, f4, f16, guide):
        # a network that answers only the left half of the object: the robot must click the right
        answers.append(guide.shape[0])
        out = torch.full((guide.shape[0], 1, 96, 160), -5.0)
        out[..., 28:69, 50:80] = 5.0
        return out

    maps = (torch.zeros(3, 1, 1, 1),) * 3
    guides = click_sequences(head, maps, gts, np.array([1, 2, 4]), np.random.default_rng(0), p_prev=0.0)
    assert guides.shape == (3, 3, 96, 160) and not guides[:, 0].any()      # prev stays empty
    assert answers == [2, 1, 1]            # one answer per later click, only for longer sequences
    pos = guides[:, 1].numpy() > 0
    assert all(gts[0][p].all() for p in pos)                              # positives on the object
    right = np.zeros((96, 160), bool)
    right[:, 80:] = True
    assert not (pos[0] & right).any() and (pos[1] & right).any()          # the later click fixes
    assert not guides[:, 2].any()                                         # nothing false to remove


def test_photo_composite_target_is_one_of_its_two_objects(tmp_path):
    # the generated photos' objects are RGB (30, 50 + 25 * i, 200): one green level per photo
    fg = StaticFG(_fake_static_fg(tmp_path, n=6))
    rng = np.random.default_rng(0)
    two_objects = 0
    for _ in range(16):
        frame, gt, soft = photo_paste_sample(fg, rng, (96, 160))
        assert frame.shape == (96, 160, 3) and gt.shape == soft.shape == (96, 160) and gt.any()
        assert (soft[gt] == 1).all() and set(np.unique(soft)) <= {0.0, 0.5, 1.0}
        k = np.ones((5, 5), np.uint8)
        inner = cv2.erode(gt.astype(np.uint8), k) > 0
        objects = cv2.erode(((frame[..., 2] > 185) & (frame[..., 0] < 50)).astype(np.uint8), k) > 0
        greens = frame[inner][:, 1].astype(int)
        level = np.median(greens)
        assert (np.abs(greens - level) < 12).mean() > 0.95     # the target is one object (jpeg)
        other = objects & ~cv2.dilate(gt.astype(np.uint8), k).astype(bool)
        if other.sum() > 20 and abs(np.median(frame[other][:, 1]) - level) > 15:
            two_objects += 1                                   # ... and the other one is not in it
    assert two_objects >= 5


def test_a_pasted_look_alike_is_never_the_target(tmp_path, monkeypatch):
    """p_twin=1: a copy of the pasted object appears elsewhere in every composite (made pure red
    here to find it) and is never part of the target; p_twin=0 draws exactly as before."""
    from scripts.train import static_fg
    fg = StaticFG(_fake_static_fg(tmp_path, n=6))
    a = photo_paste_sample(fg, np.random.default_rng(7), (96, 160))
    b = photo_paste_sample(fg, np.random.default_rng(7), (96, 160), p_twin=0.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    red = lambda rgb, rng: (np.full_like(rgb, (255, 0, 0)), False)      # noqa: E731
    monkeypatch.setattr(static_fg, 'twin', red)
    rng = np.random.default_rng(1)
    for _ in range(12):
        frame, gt, soft = photo_paste_sample(fg, rng, (96, 160), p_twin=1.0)
        copy = (frame[..., 0] > 240) & (frame[..., 1] < 15) & (frame[..., 2] < 15)
        assert copy.sum() >= 8 and gt.any()
        assert not (gt & copy).any() and (soft[copy] == 0).all()


class TwoObjectCache:
    """A feature cache of one 64x96 frame holding objects 1 and 2."""
    masks = np.zeros((1, 64, 96), np.uint8)
    masks[0, 10:30, 10:40] = 1
    masks[0, 35:60, 50:90] = 2
    arrays = {'masks': masks, 'f2': np.zeros((1, 2, 32, 48), np.float16),
              'f4': np.zeros((1, 2, 16, 24), np.float16), 'f16': np.zeros((1, 2, 4, 6), np.float16)}


def test_a_multi_object_frame_trains_one_object_against_the_others():
    from scripts.train.train_interaction import _cached_item

    rng = np.random.default_rng(0)
    seen = {'one': 0, 'two': 0, 'both': 0}
    for _ in range(200):
        gt = _cached_item(TwoObjectCache, rng, 0, (64, 96), 'f16')['gt']
        one, two = TwoObjectCache.masks[0] == 1, TwoObjectCache.masks[0] == 2
        kinds = {'one': one, 'two': two, 'both': one | two}
        kind = [k for k, m in kinds.items()                        # (maybe flipped)
                if np.array_equal(gt, m) or np.array_equal(gt, np.fliplr(m))]
        assert len(kind) == 1
        seen[kind[0]] += 1
    assert 0.6 < (seen['one'] + seen['two']) / 200 < 0.8 and min(seen.values()) > 20


def test_neighbour_marks_are_negative_strokes_on_the_other_objects():
    """A multi-object frame whose target is one object: the other object's id comes along, and
    neighbour_marks draws the strokes a person would draw for it, on it only."""
    from scripts.train.train_interaction import _cached_item, neighbour_marks

    rng = np.random.default_rng(3)
    drawn = 0
    for _ in range(60):
        it = _cached_item(TwoObjectCache, rng, 0, (64, 96), 'f16')
        if 'others' not in it:                    # all objects as the target: nobody else
            assert it['gt'].sum() == (TwoObjectCache.masks[0] > 0).sum()
            continue
        gt, others = it['gt'], it['others']
        assert gt.any() and others.any() and not (gt & (others > 0)).any()
        assert set(np.unique(others)) <= {0, 1, 2} and len(np.unique(others)) == 2
        neg = neighbour_marks(others, rng, p_each=1.0) > 0
        assert neg.any() and not (neg & gt).any() and (others[neg] > 0).all()
        drawn += 1
    assert drawn > 30


def test_photo_composites_can_paste_small_objects():
    # the generated photos' own objects cover ~20% of the frame; pasted ones what `area` asks
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        fg = StaticFG(_fake_static_fg(Path(d), n=6))

        def shares(area):
            rng = np.random.default_rng(1)
            return np.array([photo_paste_sample(fg, rng, (192, 320), area)[1].mean() for _ in range(24)])
        default, small = shares(None), shares((0.004, 0.008))
    assert default.min() > 0.012                      # uniform 3-35% (partly covered: less)
    pasted = small[small < 0.01]
    assert len(pasted) >= 6 and pasted.min() > 0.002  # the pasted targets are the small ones
