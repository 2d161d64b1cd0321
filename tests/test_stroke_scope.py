"""A stroke changes only what it speaks for: an object without a positive stroke may shrink where
a stroke touches it, never grow, and keeps its untouched parts (interaction.keep_unscribbled)."""
import cv2
import numpy as np
import pytest
import torch

from inference_core.interaction import NO_SCRIBBLE, keep_unscribbled
from inference_core.session import Session
from inference_core.store import FrameStore
from tests.test_engine import make_clip


def _one_hot(labels, k):
    return torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), k + 1) \
        .permute(2, 0, 1)[:, None].float()


def test_unstroked_object_keeps_untouched_parts_and_cannot_grow():
    prev = np.zeros((40, 60), np.uint8)
    prev[5:15, 5:15] = 1         # object 1, part A: a background stroke crosses it
    prev[25:35, 40:50] = 1       # object 1, part B: far from every stroke
    prev[25:35, 5:15] = 2        # object 2: its positive stroke
    scr = np.full(prev.shape, NO_SCRIBBLE, np.uint8)
    scr[10, 2:18] = 0
    scr[30, 8:12] = 2
    # what a network might answer: object 1 drops part B, halves part A and spreads to the
    # right of A; object 2 grows downwards
    net = np.zeros_like(prev)
    net[5:15, 5:10] = 1
    net[5:15, 20:30] = 1
    net[25:40, 5:15] = 2
    prob = _one_hot(net, 2) * 0.85 + 0.05             # sums to 1
    out = keep_unscribbled(prob.clone(), prev, scr)
    assert torch.allclose(out.sum(0), torch.ones(1, 40, 60))
    lab = out.argmax(0)[0].numpy()
    one = lab == 1
    assert not (one & (prev != 1)).any()                      # no new pixel for object 1
    assert one[25:35, 40:50].all()                            # part B kept
    assert one[5:15, 5:10].all() and not one[5:15, 10:15].any()   # part A as the network says
    assert (lab[25:40, 5:15] == 2).all()                      # object 2 had a stroke: it grows
    assert (lab[5:15, 20:30] == 0).all()                      # refused pixels keep their old label
    # every object stroked: nothing to do
    scr[12, 12] = 1
    assert torch.equal(keep_unscribbled(prob.clone(), prev, scr), prob)


def _frame_with_false_blob(nets, seed):
    """A 480p frame whose mask holds the object and a false blob on the background."""
    frames, gt = make_clip(num_frames=2, height=480, width=854, radius=(60, 45), seed=seed)
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(1)
    s = Session(store, nets)
    false = np.zeros((480, 854), np.uint8)
    cv2.ellipse(false, (600, 300), (70, 50), 0, 0, 360, 1, -1)
    s.set_labels(1, np.maximum(false, gt[1]))
    s.end_interaction()
    return s, gt[1] == 1, false == 1


@pytest.mark.parametrize('seed', [0, 4])
def test_background_stroke_on_a_false_blob_leaves_the_object_alone(lite, seed):
    s, obj, false = _frame_with_false_blob(lite, seed)
    old = s.get_mask(1) == 1
    new = s.scribble(1, 1, negative=[[(540, 300), (660, 300)]], brush=3) == 1
    assert not (new & ~old).any()
    assert np.array_equal(new & obj, obj)                    # the untouched object stays whole
    assert (new & false).sum() < 0.1 * false.sum()           # the blob the stroke crossed goes
    s.undo()
    assert np.array_equal(s.get_mask(1) == 1, old)


def test_negative_click_cannot_grow_the_object(lite):
    s, obj, false = _frame_with_false_blob(lite, 1)
    old = s.get_mask(1) == 1
    new = s.click(1, 1, 600, 300, positive=False) == 1
    assert not (new & ~old).any() and np.array_equal(new & obj, obj)
    assert (new & false).sum() < 0.5 * false.sum()           # the clicked blob shrinks


def _two_object_frame(nets):
    """A 480p frame whose textured ellipse (x 197-316, y 196-284) is object 2, with object 1 a
    box on the right."""
    frames, gt = make_clip(num_frames=1, height=480, width=854, radius=(60, 45), seed=2)
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(2)
    labels = np.zeros((480, 854), np.uint8)
    labels[200:300, 600:700] = 1
    labels[gt[0] == 1] = 2
    s = Session(store, nets)
    s.set_labels(0, labels)
    s.end_interaction()
    return s, labels


def test_scribble_runs_the_network_only_for_objects_a_stroke_can_change(lite, monkeypatch):
    s, labels = _two_object_frame(lite)
    batches = []
    segment = lite.interaction.segment

    def counting_segment(image, guidance, features=None):
        batches.append(guidance.shape[0])
        return segment(image, guidance, features)
    monkeypatch.setattr(lite.interaction, 'segment', counting_segment)
    # a positive stroke inside object 2, far from object 1: only object 2 is asked, and
    # object 1 keeps every pixel
    new = s.scribble(0, 2, positive=[[(230, 240), (280, 240)]], brush=3)
    assert batches == [1]
    assert np.array_equal(new == 1, labels == 1)
    assert (new == 2).sum() > 0.5 * (labels == 2).sum()
    # a background stroke across object 1 may take pixels from it: both objects are asked
    s.scribble(0, 2, negative=[[(620, 250), (680, 250)]], brush=3)
    assert batches == [1, 2]
