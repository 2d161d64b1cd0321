"""Training data for the bundled networks: DAVIS-2016-style folders, a backbone feature cache and
clip / sample synthesis.

Folder layout (../shared/data/davis2016-train): `videos/<seq>.mp4` and `masks/<seq>/%05d.png`
(0/255). ../shared/data/video-extra has the same layout with object-id masks (0 background,
1..N objects) at other resolutions; util/davis_io.py reads both kinds (`load_labels` fits them
to one size). Only the training split (`util.davis_split.train_sequences`) is ever read for
training.

CPU strategy: the EfficientNet-Lite backbone is frozen, so its maps of every training frame at
the processing size are computed once and kept in `<cache>/` as fp16 memory-mapped arrays
(f2, f4, f8, f16 + the resized frames and masks). Real-clip samples then cost only the small trainable
heads. Synthetic samples (affine-warped single frames, objects pasted from another sequence) need
new images, so they run the frozen backbone online.
"""
import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from util.davis_io import list_sequences, load_labels
from util.davis_split import TWIN_SUFFIX, is_held_out, train_sequences
from util.errors import UserError
from model.lite_propagation import backbone_maps, proc_size
from util.augment import random_affine, warp, warped_clip

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'davis2016-train'
EXTRA_ROOT = DEFAULT_ROOT.parent / 'video-extra'
PROC_SIZE = proc_size(480, 854, 240)   # (240, 432): the processing size of a DAVIS 480p frame


def cache_folder(runs, short=240, with_report=False, extra=False):
    """Default feature cache of a processing size (short side of a 480p frame): runs/cache_lite0
    at 240, runs/cache_lite0_<short> otherwise; `_with_report` appended for runs that also train
    on the report videos and `_extra` for runs with the video-extra sequences (a cache of other
    sequences would be rebuilt over the usual one)."""
    name = 'cache_lite0' if short == 240 else f'cache_lite0_{short}'
    return Path(runs) / (name + ('_with_report' if with_report else '') + ('_extra' if extra else ''))


def short_side(text):
    """argparse type of --proc-short: a multiple of 16, at least 64."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 64 or n % 16:
        raise argparse.ArgumentTypeError(f'{text!r}: a multiple of 16, at least 64')
    return n


def cache_size(short=240):
    """Processing size (h, w) of a DAVIS 480x854 frame at short side `short`."""
    return proc_size(480, 854, short)


class FeatureCache:
    """Memory-mapped frames, masks and frozen-backbone maps of the training sequences."""

    FILES = ('frames', 'masks', 'f2', 'f4', 'f8', 'f16')   # masks: object ids (0 background)
    # caches without this mark were computed with the backbone's BatchNorm in training mode
    # (batch statistics; see model.lite_propagation.LiteBackbone.train) and are rebuilt
    NORMALISATION = 'imagenet-running-statistics'

    MAPS = {'f2': 0, 'f4': 1, 'f8': 2, 'f16': 3}     # position in backbone_maps(with_f8=True)

    def __init__(self, cache_dir):
        self.dir = Path(cache_dir)
        meta = json.loads((self.dir / 'index.json').read_text())
        self.sequences = meta['sequences']          # name -> [start, length]
        self.size = tuple(meta['size'])
        self.arrays = {k: np.load(self.dir / f'{k}.npy', mmap_mode='r') for k in self.FILES}
        self.names = sorted(self.sequences)

    def __len__(self):
        return len(self.arrays['frames'])

    def seq_range(self, seq):
        s, n = self.sequences[seq]
        return s, n

    def get(self, idx, keys):
        return {k: np.asarray(self.arrays[k][idx]) for k in keys}

    @classmethod
    def build(cls, root, cache_dir, backbone, sequences=None, size=PROC_SIZE, progress=None,
              with_report=False, extra_root=None):
        """Compute the cache (skipped when it exists for the same sequences, size and
        normalisation). `with_report`: the report videos are training videos too. `extra_root`
        (../shared/data/video-extra): also its training sequences, object ids kept; a davis
        video whose `-mo` twin is cached is left out (the same frames; the twin's objects are
        its object)."""
        cache_dir = Path(cache_dir)
        items = [(Path(root), s) for s in (sequences if sequences is not None
                                             else train_sequences(list_sequences(root), with_report))]
        if extra_root is not None:
            items += [(Path(extra_root), s) for s in train_sequences(list_sequences(extra_root), with_report)]
            twins = {s[:-len(TWIN_SUFFIX)] for _, s in items if s.endswith(TWIN_SUFFIX)}
            items = [(r, s) for r, s in items if s not in twins]
        seqs = [s for _, s in items]
        if len(set(seqs)) != len(seqs):
            raise UserError(f'a sequence name is in both folders: {sorted(s for s in seqs if seqs.count(s) > 1)}')
        leak = sorted(s for s in seqs if is_held_out(s, with_report))
        if leak:
            raise UserError(f'held-out sequences must not be cached for training: {leak}')
        index = cache_dir / 'index.json'
        if index.is_file():
            meta = json.loads(index.read_text())
            if (sorted(meta['sequences']) == sorted(seqs) and tuple(meta['size']) == tuple(size)
                    and meta.get('normalisation') == cls.NORMALISATION):
                missing = [k for k in cls.MAPS if not (cache_dir / f'{k}.npy').is_file()]
                if missing:     # a cache written before a map was added: compute only that map
                    cls._add_maps(cache_dir, backbone, missing, progress)
                return cls(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        index.unlink(missing_ok=True)        # a rebuild cut short leaves no valid-looking cache
        data, starts, total = [], {}, 0
        for src, seq in items:
            fr, mk = load_labels(src, seq, size)
            data.append((fr, mk))
            starts[seq] = [total, len(fr)]
            total += len(fr)
        h, w = size
        for k in ('frames', 'masks'):
            a = np.lib.format.open_memmap(cache_dir / f'{k}.npy.part', mode='w+', dtype=np.uint8,
                                          shape=(total, h, w, 3) if k == 'frames' else (total, h, w))
            for (fr, mk), seq in zip(data, seqs):
                s, n = starts[seq]
                a[s:s + n] = fr if k == 'frames' else mk
            a.flush()
            del a
            os.replace(cache_dir / f'{k}.npy.part', cache_dir / f'{k}.npy')
        cls._add_maps(cache_dir, backbone, list(cls.MAPS), progress)
        index.write_text(json.dumps({'sequences': starts, 'size': list(size),
                                     'normalisation': cls.NORMALISATION}))
        return cls(cache_dir)

    @classmethod
    def _add_maps(cls, cache_dir, backbone, names, progress=None):
        """Compute the backbone maps `names` of the cached frames into <cache>/<name>.npy (fp16)."""
        frames = np.load(cache_dir / 'frames.npy', mmap_mode='r')
        total = len(frames)
        backbone.eval()          # a LiteBackbone always is; any other module must be too
        with torch.no_grad():
            probe = backbone_maps(backbone, np.asarray(frames[:1]), with_f8=True)
        arr = {k: np.lib.format.open_memmap(cache_dir / f'{k}.npy.part', mode='w+', dtype=np.float16,
                                            shape=(total,) + tuple(probe[cls.MAPS[k]].shape[1:]))
               for k in names}
        for b in range(0, total, 16):
            maps = backbone_maps(backbone, np.asarray(frames[b:b + 16]), with_f8=True)
            for k in names:
                arr[k][b:b + len(maps[0])] = maps[cls.MAPS[k]].half().cpu().numpy()
            if progress:
                progress(min(total, b + 16), total)
        for k, a in arr.items():
            a.flush()
            del a
            os.replace(cache_dir / f'{k}.npy.part', cache_dir / f'{k}.npy')


# ---------------------------------------------------------------------------- propagation samples
class ClipSampler:
    """3-frame training clips: real cached clips (growing frame skip), static warped clips and
    two-object clips made by pasting an object from another sequence."""

    def __init__(self, cache, seed=0, p_near=0.0, static_fg=None, p_twin=0.0):
        self.cache = cache
        self.rng = np.random.default_rng(seed)
        self.p_near = p_near
        self.static_fg = static_fg         # scripts.train.static_fg.StaticFG or None
        # share of composites and pasted clips whose extra object is a look-alike of another
        # (static_fg.add_twin; paste_clip pastes the clip's own object)
        self.p_twin = float(p_twin)

    def static_fg_clip(self):
        """A static-image clip (STCN's static stage): with equal chance one static-fg photo
        warped three times, or 1-3 static-fg objects composited, moving and occluding each
        other, over a DAVIS training frame or another photo. Returns frames, labels, objects."""
        from scripts.train.static_fg import random_composite
        fg, rng = self.static_fg, self.rng
        h, w = self.cache.size
        if rng.random() < 0.5:
            frames, labels = fg.warped_clip(int(rng.integers(len(fg))), rng, size=(h, w))
            return frames, labels, 1

        def davis_frame(r):
            seq = self.cache.names[r.integers(len(self.cache.names))]
            s, n = self.cache.seq_range(seq)
            return np.asarray(self.cache.arrays['frames'][s + int(r.integers(n))])
        bg = davis_frame if rng.random() < 0.5 else None
        return random_composite(fg, rng, size=(h, w), backgrounds=bg, p_twin=self.p_twin)

    def max_skip(self, it):
        # curriculum of STCN: short gaps first, wider gaps later
        return int(min(25, 5 + it // 400))

    def real_indices(self, seq, it):
        s, n = self.cache.seq_range(seq)
        skip = self.max_skip(it)
        rng = self.rng
        if rng.random() < self.p_near:
            # as at run time: the first frame far away, the previous frame (whose result is the
            # decoder's previous-mask prior) 1-3 frames away, in either direction
            g1, g2 = int(rng.integers(1, skip + 1)), int(rng.integers(1, 4))
            t0 = int(rng.integers(0, max(1, n - g1 - g2)))
            idx = [min(n - 1, t) for t in (t0, t0 + g1, t0 + g1 + g2)]
            if rng.random() < 0.5:
                idx = [min(n - 1, t) for t in (t0 + g1 + g2, t0 + g2, t0)]
            return [s + t for t in idx]
        span = min(n - 1, 2 * skip)
        t0 = rng.integers(0, n - span) if n - span > 0 else 0
        t1 = min(n - 1, t0 + rng.integers(1, skip + 1))
        t2 = min(n - 1, t1 + rng.integers(1, skip + 1))
        idx = [t0, t1, t2]
        if rng.random() < 0.5:
            idx = idx[::-1]
        return [s + t for t in idx]

    def cached_clip(self, it):
        """Real clip from the cache: dict with f2, f4, f8, f16 (3,...) float tensors and labels (3,h,w)."""
        seq = self.cache.names[self.rng.integers(len(self.cache.names))]
        idx = self.real_indices(seq, it)
        d = {k: np.stack([np.asarray(self.cache.arrays[k][i]) for i in idx]) for k in ('f2', 'f4', 'f8', 'f16', 'masks')}
        flip = self.rng.random() < 0.5
        out = {}
        for k in ('f2', 'f4', 'f8', 'f16'):
            t = torch.from_numpy(d[k].astype(np.float32))
            out[k] = t.flip(-1) if flip else t
        labels, k = self.pick_objects(d['masks'])
        lab = torch.from_numpy(labels)
        out['labels'] = lab.flip(-1) if flip else lab
        out['num_objects'] = k
        return out

    def pick_objects(self, ids, max_objects=3, p_union=0.2):
        """Labels (3,h,w) int64 of 1..k and k for a real clip's object ids: up to `max_objects`
        of the objects visible in its first frame, in random order (the others are background,
        as objects nobody annotated are at run time), or with chance `p_union` all of them as
        one object (as a single-object annotation of the same video would have it)."""
        ids = np.asarray(ids)
        present = [int(v) for v in np.unique(ids[0]) if v]
        if len(present) <= 1 or self.rng.random() < p_union:
            return (ids > 0).astype(np.int64), 1
        chosen = self.rng.permutation(present)[:max_objects]
        remap = np.zeros(max(256, int(ids.max()) + 1), np.int64)
        remap[chosen] = np.arange(1, len(chosen) + 1)
        return remap[ids], len(chosen)

    def _frames_masks(self, seq, idx_local):
        s, _ = self.cache.seq_range(seq)
        fr = np.stack([np.asarray(self.cache.arrays['frames'][s + t]) for t in idx_local])
        mk = np.stack([np.asarray(self.cache.arrays['masks'][s + t]) for t in idx_local])
        return fr, mk

    def zoom_clip(self, it, context=2.5, min_side=0.15, max_side=0.8):
        """A real clip as the engine's small-object zoom (inference_core/small_object_zoom.py)
        sees it: one object alone (the others are background, k = 1), each frame cut to a
        window around the object's box x `context` (shifted and scaled a little, as a window
        placed from the frame before is; kept where the object is gone), at least `min_side` of
        the frame, with the frame's aspect ratio, resized to the zoom size (2/3 of the
        processing size): upsampled, blurrier frames than the full ones. Objects whose window
        would exceed `max_side` are not used: a few draws, then None."""
        for _ in range(8):
            clip = self._zoom_clip(it, context, min_side, max_side)
            if clip is not None:
                return clip
        return None

    def _zoom_clip(self, it, context, min_side, max_side):
        names = self.cache.names
        seq = names[self.rng.integers(len(names))]
        start, _ = self.cache.seq_range(seq)
        fr, mk = self._frames_masks(seq, [i - start for i in self.real_indices(seq, it)])
        present = [int(v) for v in np.unique(mk[0]) if v]
        if not present:
            return None
        k = int(self.rng.choice(present))
        h, w = fr.shape[1:3]
        zh, zw = self.zoom_hw
        frames, labels, win = [], [], None
        for j in range(3):
            obj = mk[j] == k
            if obj.any():
                ys, xs = np.nonzero(obj)
                side = max(ys.max() - ys.min() + 1, (xs.max() - xs.min() + 1) * h / w)
                side = max(side * context * self.rng.uniform(0.85, 1.15), min_side * h)
                if side > max_side * h:
                    return None
                sw = side * w / h
                cy = (ys.min() + ys.max()) / 2 + self.rng.normal(0, 0.05 * side)
                cx = (xs.min() + xs.max()) / 2 + self.rng.normal(0, 0.05 * sw)
                y0 = int(round(np.clip(cy - side / 2, 0, h - side)))
                x0 = int(round(np.clip(cx - sw / 2, 0, w - sw)))
                win = (y0, x0, y0 + int(round(side)), x0 + int(round(sw)))
            y0, x0, y1, x1 = win
            frames.append(cv2.resize(fr[j, y0:y1, x0:x1], (zw, zh), interpolation=cv2.INTER_LINEAR))
            labels.append(cv2.resize((mk[j, y0:y1, x0:x1] == k).astype(np.uint8), (zw, zh),
                                     interpolation=cv2.INTER_NEAREST))
        labels = np.stack(labels).astype(np.int64)
        if not labels[0].any():
            return None
        return np.stack(frames), labels, 1

    @property
    def zoom_hw(self):
        """The zoom pass's window size for the cache's frames: 2/3 of their short side, /16."""
        h, w = self.cache.size
        return proc_size(h, w, max(64, int(round(min(h, w) * 2 / 3 / 16)) * 16))

    def static_clip(self):
        """One frame warped three times (affine + elastic): uint8 frames (3,h,w,3), labels (3,h,w)."""
        seq = self.cache.names[self.rng.integers(len(self.cache.names))]
        _, n = self.cache.seq_range(seq)
        fr, mk = self._frames_masks(seq, [self.rng.integers(n)])
        frames, labels = warped_clip(fr[0], (mk[0] > 0).astype(np.uint8), self.rng)
        return frames, labels.astype(np.int64), 1

    def paste_clip(self, it):
        """Real clip of sequence A with an object (+mask) of sequence B pasted on every frame:
        two objects (1 = A's object where visible, 2 = pasted).

        With chance `p_twin`, B is A itself: the clip's own objects pasted elsewhere as a
        look-alike, half the time a second object to track (2), half the time an unlabelled
        distractor (background), as the look-alikes of a crowd or a herd are."""
        names = self.cache.names
        a, b = self.rng.choice(len(names), 2, replace=False)
        twin = bool(self.p_twin) and self.rng.random() < self.p_twin
        sa, sb = names[a], names[b]
        fa, ma = self._frames_masks(sa, [i - self.cache.seq_range(sa)[0] for i in self.real_indices(sa, it)])
        if twin:
            fb, mb = fa, ma
            twin_label = 2 if self.rng.random() < 0.5 else 0
        else:
            fb, mb = self._frames_masks(sb, [i - self.cache.seq_range(sb)[0] for i in self.real_indices(sb, it)])
        h, w = fa.shape[1:3]
        # one random placement for the clip, plus a small drift per frame
        base = random_affine(self.rng, h, w, rot=10, scale=(0.5, 0.9), shear=5, trans=0.25)
        frames, labels, pasted = [], [], []
        for j in range(3):
            m = base.copy()
            m[:, 2] += self.rng.normal(0, 4, 2)
            ob = warp(fb[j], m, (h, w))
            obm = cv2.warpAffine(mb[j], m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
            soft = cv2.GaussianBlur(obm.astype(np.float32), (3, 3), 0)[..., None]
            f = (fa[j] * (1 - soft) + ob * soft).astype(np.uint8)
            lab = np.zeros((h, w), np.int64)
            lab[ma[j].astype(bool)] = 1
            lab[obm] = twin_label if twin else 2
            frames.append(f)
            labels.append(lab)
            pasted.append(obm)
        labels = np.stack(labels)
        if twin and twin_label == 0 and not (labels[0] == 1).any():
            labels[np.stack(pasted)] = 2      # the distractor hides the object: track it instead
        present = [v for v in (1, 2) if (labels[0] == v).any()]
        if present == [1, 2]:
            return np.stack(frames), labels, 2
        # an object hidden on the first frame is background for this clip; renumber the rest
        remap = np.zeros(3, np.int64)
        remap[present] = np.arange(1, len(present) + 1)
        return np.stack(frames), remap[labels], max(1, len(present))


# ---------------------------------------------------------------------------- crops
def crop_window(labels0, rng, full_hw, crop_hw, align=16):
    """Top-left (y, x) of a crop_hw window (multiples of `align`) placed near the objects of labels0."""
    H, W = full_hw
    ch, cw = min(crop_hw[0], H), min(crop_hw[1], W)
    ys, xs = np.nonzero(np.asarray(labels0))
    if len(ys):
        cy, cx = ys.mean() + rng.normal(0, ch / 6), xs.mean() + rng.normal(0, cw / 6)
    else:
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
    y = int(np.clip(cy - ch / 2, 0, H - ch)) // align * align
    x = int(np.clip(cx - cw / 2, 0, W - cw)) // align * align
    return y, x, ch // align * align, cw // align * align


def crop_maps(feats, labels, win, strides=(2, 4, 16)):
    """Crop backbone maps (f2, f4, f16 at strides 2, 4, 16 by default) and labels to the window `win`."""
    y, x, ch, cw = win
    out = []
    for f, s in zip(feats, strides):
        out.append(f[..., y // s:(y + ch) // s, x // s:(x + cw) // s])
    return out, labels[..., y:y + ch, x:x + cw]
