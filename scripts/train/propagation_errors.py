"""Real propagation errors of the training frames, the previous masks of correction rounds.

The interaction network is asked, at run time, to turn a corrective stroke on a frame the
propagation got wrong (object lost behind an occluder, a limb cut off, a look-alike grabbed) into
a better mask. Perturbed ground truth (scripts/simulated_marks.perturb_mask) does not look like
those errors, so the interaction trainer also draws the previous mask from here: what the
propagation network actually produced on the cached training frames.

A propagation network propagates the first ground-truth mask of each cached sequence through the
Session (as the product does), once per *variant*: every frame (stride 1), and every k-th frame
from a random start (strides > 1: larger motion between frames, the harder cases of unseen
videos; the networks saw these training videos, so at stride 1 they make fewer errors than on new
ones). Results are stored at the cache's resolution in `<cache>/prop_errors/masks.npy`
(variants x frames x H x W, uint8: 0/1, 255 where a variant did not visit the frame), with the
IoU of each against the ground truth in `iou.npy`.
"""
import json
import os
from pathlib import Path

import numpy as np

UNSET = 255


class PropagationErrors:
    """Propagated masks of a FeatureCache's frames (see the module docstring)."""

    def __init__(self, folder):
        self.dir = Path(folder)
        self.meta = json.loads((self.dir / 'index.json').read_text())
        self.masks = np.load(self.dir / 'masks.npy', mmap_mode='r')
        self.iou = np.load(self.dir / 'iou.npy')

    @staticmethod
    def folder(cache):
        return Path(cache.dir) / 'prop_errors'

    @classmethod
    def build(cls, cache, prop_net, strides=(1, 4), seed=0, progress=None, source=''):
        """Compute (or reuse, when built for the same strides and source) the propagated masks
        of every frame of `cache` with `prop_net` (a bundled propagation network)."""
        from scripts.eval_semi_davis import propagate_sequence
        from util.metrics import jaccard
        out = cls.folder(cache)
        index = out / 'index.json'
        want = {'strides': list(strides), 'seed': seed, 'source': str(source),
                'sequences': cache.sequences}
        if index.is_file() and json.loads(index.read_text()).get('key') == want:
            return cls(out)
        out.mkdir(parents=True, exist_ok=True)
        n, (h, w) = len(cache), cache.size
        masks = np.lib.format.open_memmap(out / 'masks.npy.part', mode='w+', dtype=np.uint8,
                                          shape=(len(strides), n, h, w))
        masks[:] = UNSET
        iou = np.full((len(strides), n), np.nan, np.float32)
        rng = np.random.default_rng(seed)
        jobs = [(v, s, name) for v, s in enumerate(strides) for name in cache.names]
        for j, (v, stride, name) in enumerate(jobs):
            start, length = cache.seq_range(name)
            first = 0 if stride == 1 else int(rng.integers(0, max(1, length // 2)))
            idx = np.arange(first, length, stride)
            gt = np.asarray(cache.arrays['masks'][start + idx]).astype(bool)
            if len(idx) >= 2 and gt[0].any():
                frames = np.asarray(cache.arrays['frames'][start + idx])
                pred = propagate_sequence(prop_net, frames, gt[0].astype(np.uint8)) > 0
                for k, t in enumerate(idx[1:], 1):     # frame `first` is the given mask
                    masks[v, start + t] = pred[k]
                    iou[v, start + t] = jaccard(gt[k], pred[k])
            if progress:
                progress(j + 1, len(jobs))
        masks.flush()
        del masks
        os.replace(out / 'masks.npy.part', out / 'masks.npy')
        np.save(out / 'iou.npy', iou)
        index.write_text(json.dumps({'key': want}))
        return cls(out)

    def candidates(self, cache, max_iou=0.95, min_area=0.002):
        """(variant, frame) pairs worth correcting: a propagated mask exists, its IoU is below
        `max_iou`, and the object or the wrong mask covers at least `min_area` of the frame."""
        v, i = np.nonzero(np.nan_to_num(self.iou, nan=2.0) < max_iou)
        h, w = cache.size
        keep = []
        for a, b in zip(v, i):
            area = max(int(np.count_nonzero(cache.arrays['masks'][b])),
                       int(np.count_nonzero(self.masks[a, b] == 1)))
            if area >= min_area * h * w:
                keep.append((int(a), int(b)))
        return keep

    def mask(self, variant, frame):
        m = np.asarray(self.masks[variant, frame])
        if m[0, 0] == UNSET:
            raise KeyError(f'variant {variant} did not visit frame {frame}')
        return m == 1

    def summary(self):
        """Mean IoU and number of propagated frames per variant (for the training log)."""
        return {f'stride{s}': {'frames': int(np.isfinite(self.iou[v]).sum()),
                               'mean_iou': round(float(np.nanmean(self.iou[v])), 4)}
                for v, s in enumerate(self.meta['key']['strides'])}
