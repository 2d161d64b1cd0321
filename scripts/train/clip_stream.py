"""Training clips of the propagation trainer, drawn in the training loop or by worker processes.

`draw_clip` makes one cropped 3-frame clip on the CPU: either uint8 frames (warped photos,
composites, pasted objects: their backbone maps are computed on the training device) or the
cached backbone maps of a real clip. On a GPU the heads train much faster than one process can
warp and composite photos, so `ClipStream` lets `torch.utils.data.DataLoader` workers draw clips
in parallel (`train_propagation --workers N`), each with its own random stream.
"""
import signal

import cv2
import numpy as np
import torch

from scripts.train.data import ClipSampler, FeatureCache, crop_maps, crop_window


def draw_clip(sampler, it, mix, crop, tune_tail=False):
    """One training clip: dict with 'labels' (3,h,w) int64 tensor, 'k' (objects) and either
    'frames' (uint8 (3,h,w,3) array) or 'maps' ((f2, f4, f16) float tensors; (f2, f4, f8) with
    tune_tail, for the trainable stride-16 stages). mix: shares of the synthetic kinds,
    {'static_fg', 'static', 'paste'} and optionally 'zoom' (real clips cut as the small-object
    zoom sees them); the rest are real cached clips."""
    rng = sampler.rng
    r = rng.random()
    p_fg = mix['static_fg'] if sampler.static_fg is not None else 0.0
    synthetic = p_fg + mix['static'] + mix['paste']
    drawn = None
    if r < synthetic:
        if r < p_fg:
            drawn = sampler.static_fg_clip()
        elif r < p_fg + mix['static']:
            drawn = sampler.static_clip()
        else:
            drawn = sampler.paste_clip(it)
    elif r < synthetic + mix.get('zoom', 0.0):
        drawn = sampler.zoom_clip(it)          # None: the object was too large, a real clip instead
    if drawn is not None:
        fr, lab, k = drawn
        y, x, ch, cw = crop_window(lab[0], rng, lab.shape[1:], crop)
        return {'frames': np.ascontiguousarray(fr[:, y:y + ch, x:x + cw]),
                'labels': torch.from_numpy(np.ascontiguousarray(lab[:, y:y + ch, x:x + cw])), 'k': k}
    c = sampler.cached_clip(it)
    win = crop_window(c['labels'][0].numpy(), rng, c['labels'].shape[1:], crop)
    if tune_tail:
        maps, labels = crop_maps((c['f2'], c['f4'], c['f8']), c['labels'], win, (2, 4, 8))
    else:
        maps, labels = crop_maps((c['f2'], c['f4'], c['f16']), c['labels'], win)
    return {'maps': tuple(m.contiguous() for m in maps), 'labels': labels.contiguous(),
            'k': c['num_objects']}


class ClipStream(torch.utils.data.IterableDataset):
    """Endless clips for DataLoader workers (batch_size=None). Each worker opens the feature
    cache and the photos itself and draws from its own seed (seed, first iteration, worker);
    the frame-skip curriculum follows the iteration estimated from the clips drawn so far."""

    def __init__(self, cache_dir, static_fg_root, mix, crop, batch, p_near, seed, start_it,
                 tune_tail=False, p_twin=0.0):
        super().__init__()
        self.cache_dir, self.static_fg_root = str(cache_dir), static_fg_root
        self.mix, self.crop, self.batch, self.p_near = dict(mix), tuple(crop), batch, p_near
        self.seed, self.start_it, self.tune_tail = seed, start_it, tune_tail
        self.p_twin = p_twin

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # ctrl-c reaches the whole process group: only the training loop handles it (it stops,
        # saves and then shuts the workers down)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        torch.set_num_threads(1)            # one core per worker
        cv2.setNumThreads(1)
        fg = None
        if self.static_fg_root:
            from scripts.train.static_fg import StaticFG
            fg = StaticFG(self.static_fg_root)
        sampler = ClipSampler(FeatureCache(self.cache_dir), seed=[self.seed, self.start_it, wid],
                              p_near=self.p_near, static_fg=fg, p_twin=self.p_twin)
        drawn = 0
        while True:
            it = self.start_it + drawn * workers // max(1, self.batch)
            yield draw_clip(sampler, it, self.mix, self.crop, self.tune_tail)
            drawn += 1
