"""The evaluations' runs through the Session (scripts/eval_semi_davis.py and the trainers'
validations): a first mask propagated through a clip, flipped and adapted runs as
scripts.propagate makes them, and one frame's scribble."""
import time

import numpy as np
import torch


def _networks(prop_net, fusion=None, inter_net=None):
    """The networks under evaluation as the Session takes them (on the CPU)."""
    from inference_core.networks import Networks
    return Networks('bundled', prop_net, fusion, inter_net, None, torch.device('cpu'))


def propagate_sequence(prop_net, frames, first_labels, fusion=None, mem_freq=5, top_k=20, zoom=True,
                       adapt=0, seed=0, timing=None, gate=True):
    """Semi-supervised propagation of `first_labels` (H,W uint8) through frames (T,H,W,3): a
    Session, the labels set on frame 0, propagated forward. adapt > 0: the network is first
    adapted to that mask for `adapt` steps (Session.adapt, with `seed`; the seconds it took go
    to timing['adapt_s']). Returns predicted labels (T,H,W) uint8."""
    from inference_core.session import Session
    with Session.from_frames(np.ascontiguousarray(frames), storage='memory',
                             num_objects=int(first_labels.max()),
                             networks=_networks(prop_net, fusion), mem_freq=mem_freq,
                             top_k=top_k, amp=False, history_bytes=0, zoom_small_objects=zoom,
                             gate_regions=gate) as s:
        s.set_labels(0, first_labels)
        if adapt:
            t0 = time.time()
            s.adapt([0], iters=adapt, seed=seed)
            if timing is not None:
                timing['adapt_s'] = time.time() - t0
        s.propagate(0, direction='forward')
        return np.stack([s.get_mask(t) for t in range(s.num_frames)])


def propagate_flipped(prop_net, frames, first_labels, fusion=None, adapt=0, seed=0):
    """Like propagate_sequence plus flip test-time augmentation (and optional adaptation), through
    the same code as `scripts.propagate --flip [--adapt N]`. Returns labels (T,H,W) uint8."""
    from types import SimpleNamespace

    from scripts.propagate_runner import Runner
    args = SimpleNamespace(mem_freq=5, top_k=20, max_memory_frames=None, amp='off', flip=True,
                           adapt=adapt, adapt_seed=seed)
    runner = Runner(_networks(prop_net, fusion), args)
    with runner.from_frames(np.ascontiguousarray(frames), storage='memory',
                            num_objects=int(first_labels.max())) as session:
        run = runner.run(session, {0: first_labels}, 'first')
        try:
            return np.stack([run.labels(t) for t in range(len(frames))])
        finally:
            run.close()


def _frame_session(inter_net, img, num_objects):
    """A Session on one frame (H,W,3 uint8) with the interaction net `inter_net`, as the
    evaluations score a frame's scribbles: at full resolution, no zoomed corrections, no
    history, the caller's threads."""
    from inference_core.session import Session
    return Session.from_frames(np.ascontiguousarray(img)[None], storage='memory',
                               num_objects=num_objects, networks=_networks(None, None, inter_net),
                               amp=False, history_bytes=0, zoom_corrections=False,
                               interaction_threads=None)


def interaction_mask(inter_net, img, prev, pos, neg):
    """(mask (H,W) bool, seconds) of a Session's scribble with `inter_net` on one frame (H,W,3
    uint8) whose previous mask is `prev`, with positive / negative marks (H,W), at full
    resolution: the interaction as the GUI runs it (no zoom: the frame is the whole picture;
    an object without a positive stroke may shrink, not grow). The seconds are the scribble's."""
    prev = np.asarray(prev, bool)
    pos, neg = np.asarray(pos) > 0, np.asarray(neg) > 0
    if not pos.any() and not neg.any():
        return prev, 0.0
    with _frame_session(inter_net, img, 1) as s:
        if prev.any():
            s.set_labels(0, prev.astype(np.uint8))
        t0 = time.time()
        s.scribble(0, 1, positive=pos, negative=neg)
        seconds = time.time() - t0
        return s.get_mask(0) == 1, seconds


def interaction_labels(inter_net, img, by_object, num_objects):
    """(labels (H,W) uint8, seconds) of one frame's first scribbles for several objects through
    a Session with `num_objects` objects: `by_object` {object id: normalised robot paths} (0 =
    background) drawn as scripts/eval_interactive_davis.py draws a robot round (every object's
    strokes on the frame; the last call segments every object from all of them)."""
    from scripts.eval_interactive_davis import scribble_robot_round
    with _frame_session(inter_net, img, num_objects) as s:
        t0 = time.time()
        scribble_robot_round(s, 0, by_object, list(range(1, num_objects + 1)), zoom=False)
        return s.get_mask(0), time.time() - t0
