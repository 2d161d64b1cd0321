"""How scripts.propagate propagates given masks through one video: the schedule of Session
calls for the given frames (plan_steps) and the sessions of a run (Runner: the caller's, plus
the horizontally flipped one of --flip, optionally with an adapted network)."""
import time

import numpy as np
import torch

from inference_core.session import DEFAULT_LONG_TERM_FRAMES, DEFAULT_WORKING_FRAMES
from util.tensor_util import argmax0


def plan_steps(mask_frames, mode, num_frames):
    """The propagation calls for the given mask frames (sorted): [(t, direction, end), ...].

    'first'/'all': at each given frame propagate both ways; the forward side stops before the
    next given frame (which then propagates backwards to it, fused). 'appear': forward only,
    each pass ends AT the next given frame (its prediction is merged with the new objects)."""
    fs = sorted(mask_frames)
    steps = []
    for i, t in enumerate(fs):
        nxt = fs[i + 1] if i + 1 < len(fs) else None
        if mode == 'appear':
            if t < num_frames - 1:
                steps.append((t, 'forward', nxt))
        elif nxt is None:
            steps.append((t, 'both', None))
        elif nxt == t + 1:
            steps.append((t, 'backward', None))
        else:
            steps.append((t, 'both', nxt - 1))
    return steps


def count_work(steps, num_frames):
    """Frames processed by `steps` (for the progress total). Given frames are committed in
    ascending order, so a backward pass runs down to the previous step's frame."""
    n, prev = 0, -1
    for t, direction, end in steps:
        if direction in ('both', 'forward'):
            n += (num_frames - 1 if end is None else end) - t
        if direction in ('both', 'backward'):
            n += t - prev - 1
        prev = t
    return n


class Propagation:
    """The sessions of one propagation run (the caller's, plus the flipped one of --flip);
    prob(t) gives the final soft result."""

    def __init__(self, sessions, appear_at=None, adapt_s=0.0):
        self.sessions = sessions
        self.appear_at = appear_at or {}
        self.adapt_s = adapt_s       # time spent adapting the network before propagating

    def prob(self, t):
        """(K+1, H, W) float32 CPU probabilities at processing size (flip runs averaged).
        Objects that have not appeared yet at t ('appear' mode) get probability 0."""
        p = torch.from_numpy(self.sessions[0].probabilities(t))
        if len(self.sessions) > 1:
            p1 = torch.from_numpy(self.sessions[1].probabilities(t))
            p = (p + torch.flip(p1, dims=[-1])) / 2
        late = [k for k, first in self.appear_at.items() if t < first and k < p.shape[0]]
        if late:
            p = p.clone()           # may share memory with the session's cache: no in-place edits
            p[late] = 0
        return p

    def labels(self, t):
        if len(self.sessions) == 1 and not self.appear_at:
            return self.sessions[0].get_mask(t)
        return argmax0(self.prob(t)).to(torch.uint8).numpy()

    def close(self):
        """Free the sessions' memory and close the flipped one (the caller's session stays
        open, with its masks)."""
        for i, s in enumerate(self.sessions):
            if i > 0:
                s.close()
            else:
                s.release_memory()
        self.sessions = []


class Runner:
    """Propagates given masks through a video with one Session, or two for --flip (the second
    on a horizontally flipped copy; both run the same schedule step by step)."""

    def __init__(self, networks, args):
        self.networks = networks
        working = getattr(args, 'working_frames', DEFAULT_WORKING_FRAMES)
        self.kw = dict(mem_freq=args.mem_freq, top_k=args.top_k,
                       max_memory_frames=args.max_memory_frames,
                       working_frames=working or None,
                       long_term_frames=getattr(args, 'long_term_frames', DEFAULT_LONG_TERM_FRAMES),
                       amp=args.amp, history_bytes=0)
        self.flip = args.flip
        self.adapt = getattr(args, 'adapt', 0) or 0
        self.adapt_seed = getattr(args, 'adapt_seed', 0)

    def open(self, path, resolution, progress=None, should_cancel=None):
        """A Session on a video file or image folder with this run's networks and settings
        (None when cancelled while loading)."""
        from inference_core.session import Session
        return Session.open(path, resolution=resolution, networks=self.networks,
                            progress=progress, should_cancel=should_cancel, **self.kw)

    def from_frames(self, frames, **kwargs):
        """A Session on frames in memory (Session.from_frames) with this run's networks and
        settings."""
        from inference_core.session import Session
        return Session.from_frames(frames, networks=self.networks, **self.kw, **kwargs)

    def _flipped(self, session):
        """A session on the horizontally mirrored frames of `session`."""
        n = session.num_frames
        frames = (np.ascontiguousarray(session.frame(t)[:, ::-1]) for t in range(n))
        return self.from_frames(frames, num_frames=n,
                                orig_size=(session.orig_height, session.orig_width),
                                frame_names=session.frame_names, num_objects=session.num_objects)

    def _adapt(self, sessions, given, mode, progress, should_cancel):
        """Adapt the propagation network to this video's given masks (the first mask with
        --use-masks first, all of them otherwise; nothing when no mask holds an object): one
        adapted copy for every session of the run. False when cancelled."""
        frames = [min(given)] if mode == 'first' else sorted(given)
        frames = [t for t in frames if given[t].any()]
        if not frames:
            return True
        return sessions[0].adapt(frames, iters=self.adapt, seed=self.adapt_seed,
                                 progress=progress, should_cancel=should_cancel,
                                 labels={t: given[t] for t in frames}, share_with=sessions[1:])

    def run(self, session, given, mode, progress=None, should_cancel=None):
        """Propagate in `session` (from `open` / `from_frames`; its objects exist). given:
        {t: labels at processing size}. Returns a Propagation (call .close()), or None when
        cancelled."""
        T = session.num_frames
        steps = plan_steps(given, mode, T)
        done = self.adapt
        total = count_work(steps, T) * (2 if self.flip else 1) + done
        sessions = [session]
        appear_at = {}
        if mode == 'appear':
            for t in sorted(given):
                for k in np.unique(given[t]).tolist():
                    if k:
                        appear_at.setdefault(int(k), t)
        result = Propagation(sessions, appear_at)
        ok = False
        try:
            if self.flip:
                sessions.append(self._flipped(session))
            if self.adapt:
                cb = None if progress is None else (lambda d, _t: progress(d, total))
                t0 = time.time()
                if not self._adapt(sessions, given, mode, cb, should_cancel):
                    return None
                result.adapt_s = time.time() - t0
            first = min(given)
            for t, direction, end in steps:
                labels = given[t]
                if mode == 'appear' and t != first:
                    # keep the prediction; the newly appearing objects come from the annotation
                    pred = result.labels(t)
                    pred[np.isin(pred, np.unique(labels[labels > 0]))] = 0
                    labels = np.where(labels > 0, labels, pred).astype(np.uint8)
                for i, s in enumerate(sessions):
                    s.set_labels(t, labels if i == 0 else np.ascontiguousarray(labels[:, ::-1]))
                    seen = [0]

                    def cb(d, _tot, base=done, seen=seen):
                        seen[0] = d
                        if progress is not None:
                            progress(base + d, total)
                    if not s.propagate(t, direction=direction, end=end, progress=cb,
                                       should_cancel=should_cancel):
                        return None
                    done += seen[0]
            if progress is not None:
                progress(total, total)
            ok = True
            return result
        finally:
            if not ok:
                result.close()
