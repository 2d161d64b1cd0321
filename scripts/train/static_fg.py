"""Static-image training data (../shared/data/static-fg): still photos with one foreground mask
each, turned into short training clips as STCN / XMem do with static image sets.

    fg = StaticFG(root)                       # StaticFG.available(root) first: the data is optional
                                              # (training part; part='validation' for the ~1 in 20
                                              # photos kept out for validation_clips)
    rgb, mask, ignore = fg.load(i)            # uint8 (h,w,3), bool object, bool "uncertain" band
    frames, labels = fg.warped_clip(i, rng)   # one photo, affine + elastic warps (n frames)
    frames, labels = composite_clip([...objects], background, rng)
                                              # several objects pasted over a background, each
                                              # moving on its own; later objects occlude earlier

Masks: 255 = object, 0 = background, 128 = the uncertain border of the pet trimaps (returned as
`ignore`; composites treat it as background, cut out with the object's hard mask).
"""
import os
from pathlib import Path

import cv2
import numpy as np

from util.augment import random_affine, warped_clip
from util.frames_io import cover
from util.photo_split import is_validation_photo

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'static-fg'


IMAGE_SUFFIXES = ('.jpg', '.webp', '.png')


def photo_roots(roots):
    """A static-fg-style folder or several of them (a path or a list) as a list of Paths."""
    return [Path(r) for r in ([roots] if isinstance(roots, (str, os.PathLike)) else roots)]


class StaticFG:
    """The photos and masks of one or several static-fg-style folders (images/<id>.jpg +
    masks/<id>.png; a photo may also be .webp or .png, as in the compact copy
    scripts.train.device_pack writes): ../shared/data/static-fg and ../shared/data/static-sal
    share this layout. part: 'train' (the photos training may use), 'validation' (the others:
    synthetic validation clips, scripts.train.static_fg.validation_clips) or 'all'."""

    def __init__(self, root=DEFAULT_ROOT, part='train'):
        self.roots = photo_roots(root)
        self.root = self.roots[0]
        for r in self.roots:
            if not self.available(r):
                raise FileNotFoundError(f'{r}: not a static-fg folder (needs images/ and masks/)')
        if part not in ('train', 'validation', 'all'):
            raise ValueError(f'part must be train, validation or all, not {part!r}')
        self._images, self._masks = {}, {}
        for r in self.roots:
            masks = {p.stem: p for p in (r / 'masks').glob('*.png')}
            for p in (r / 'images').iterdir():
                if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in masks and p.stem not in self._images:
                    self._images[p.stem] = p
                    self._masks[p.stem] = masks[p.stem]
        ids = sorted(self._images)
        if part != 'all':
            ids = [i for i in ids if is_validation_photo(i) == (part == 'validation')]
        self.part = part
        self.ids = ids

    def image_path(self, name):
        return self._images.get(name, self.root / 'images' / f'{name}.jpg')

    def mask_path(self, name):
        return self._masks.get(name, self.root / 'masks' / f'{name}.png')

    @staticmethod
    def available(root=DEFAULT_ROOT):
        return all((r / 'images').is_dir() and (r / 'masks').is_dir() for r in photo_roots(root))

    def __len__(self):
        return len(self.ids)

    def load(self, i):
        """(rgb uint8 (h,w,3), object bool (h,w), ignore bool (h,w)) of photo i (index or id)."""
        name = self.ids[i] if isinstance(i, (int, np.integer)) else str(i)
        bgr = cv2.imread(os.fspath(self.image_path(name)), cv2.IMREAD_COLOR)
        m = cv2.imread(os.fspath(self.mask_path(name)), cv2.IMREAD_GRAYSCALE)
        if bgr is None or m is None or bgr.shape[:2] != m.shape:
            raise ValueError(f'static-fg {name}: unreadable image or mask')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), m > 191, (m > 63) & (m <= 191)

    def warped_clip(self, i, rng, n=3, size=None):
        """One photo warped n times (frame 0 unwarped): frames (n,h,w,3), labels (n,h,w) int64
        (1 = the object, 0 = background); resized to size=(h, w) when given."""
        rgb, mask, _ = self.load(i)
        if size is not None:
            rgb, mask = _fit(rgb, mask, size)
        frames, masks = warped_clip(rgb, mask.astype(np.uint8), rng, n=n)
        return frames, masks.astype(np.int64)

    def cutout(self, i):
        """(rgb, mask) cropped to the object's bounding box (plus a margin)."""
        rgb, mask, _ = self.load(i)
        ys, xs = np.nonzero(mask)
        if not len(ys):
            return rgb, mask
        m = 8
        y0, y1 = max(0, ys.min() - m), min(mask.shape[0], ys.max() + m + 1)
        x0, x1 = max(0, xs.min() - m), min(mask.shape[1], xs.max() + m + 1)
        return rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def fit(rgb, masks, size):
    """Resize-and-crop a photo and its masks (a tuple of bool maps) to size (h, w), keeping the
    aspect ratio (the middle kept). Returns (rgb, masks)."""
    h, w = size
    s, (nh, nw), (y0, x0) = cover(rgb.shape[:2], size)
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = []
    for m in masks:
        m = cv2.resize(m.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
        out.append(m[y0:y0 + h, x0:x0 + w])
    return rgb[y0:y0 + h, x0:x0 + w], tuple(out)


def _fit(rgb, mask, size):
    rgb, (mask,) = fit(rgb, (mask,), size)
    return rgb, mask


def fit_background(rgb, size):
    return _fit(rgb, np.zeros(rgb.shape[:2], bool), size)[0]


def object_path(rng, obj_hw, frame_hw, n, scale=(0.3, 0.7), motion=1.0):
    """Per-frame 2x3 affine matrices placing an object of size obj_hw in the frame: a random
    size (the object's longer side a `scale` fraction of the frame's shorter side), position and
    rotation, then a smooth drift (translation, small rotation and zoom) frame to frame, its
    speed times `motion`."""
    oh, ow = obj_hw
    fh, fw = frame_hw
    s = rng.uniform(*scale) * min(fh, fw) / max(oh, ow)
    ang = rng.uniform(-20, 20)
    cx, cy = rng.uniform(0.2, 0.8) * fw, rng.uniform(0.2, 0.8) * fh
    v = rng.normal(0, 0.04 * motion * min(fh, fw), 2)            # pixels per frame
    dang, dzoom = rng.normal(0, 3 * motion), rng.normal(0, 0.04 * motion)
    mats = []
    for j in range(n):
        a = cv2.getRotationMatrix2D((ow / 2, oh / 2), ang + j * dang, s * (1 + j * dzoom))
        a[:, 2] += (cx + j * v[0] - ow / 2, cy + j * v[1] - oh / 2)
        mats.append(a)
    return mats


def composite_clip(objects, background, rng, n=3, size=(240, 432), background_motion=True,
                   labelled=None, scale=(0.3, 0.7), motion=1.0):
    """Paste `objects` [(rgb, mask bool), ...] (in that order: later ones occlude earlier ones)
    over `background` (an RGB image, resized to `size`), each moving on its own path.

    Returns frames (n,h,w,3) uint8 and labels (n,h,w) int64: k for pixels where object k
    (1-based) is visible, 0 elsewhere. Every object is visible in frame 0 (a clip whose object
    would start hidden is re-drawn). `labelled` (one bool per object, default all True): an
    unlabelled object is a distractor, pasted and occluding like the others but background in
    the labels; the labelled ones are numbered 1.. in order. `scale`, `motion`: the objects'
    sizes and speeds (object_path)."""
    h, w = size
    bg = fit_background(background, size)
    bg_mats = [np.float32([[1, 0, 0], [0, 1, 0]])] * n
    if background_motion:                                # a slow camera pan / zoom
        c = motion
        bg_mats = [random_affine(rng, h, w, rot=2 * c * j, scale=(1 - 0.03 * c * j, 1 + 0.03 * c * j),
                                 shear=1, trans=0.02 * c * j) for j in range(n)]
    frames = np.stack([cv2.warpAffine(bg, m, (w, h), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REFLECT_101) for m in bg_mats]).astype(np.float32)
    labels = np.zeros((n, h, w), np.int64)
    labelled = [True] * len(objects) if labelled is None else [bool(v) for v in labelled]
    ids = np.cumsum(labelled) * np.asarray(labelled, np.int64)     # 1.. for labelled, 0 otherwise
    for (rgb, mask), k in zip(objects, ids):
        for _try in range(10):
            mats = object_path(rng, mask.shape, size, n, scale, motion)
            m0 = cv2.warpAffine(mask.astype(np.uint8), mats[0], (w, h), flags=cv2.INTER_NEAREST)
            if m0.sum() > 64:
                break
        for j, a in enumerate(mats):
            obj = cv2.warpAffine(rgb, a, (w, h), flags=cv2.INTER_LINEAR)
            m = cv2.warpAffine(mask.astype(np.uint8), a, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
            alpha = cv2.GaussianBlur(m.astype(np.float32), (3, 3), 0)[..., None]
            frames[j] = frames[j] * (1 - alpha) + obj.astype(np.float32) * alpha
            labels[j][m] = k
    frames = np.clip(frames, 0, 255).astype(np.uint8)
    # objects fully hidden by later ones in frame 0 cannot be tracked: renumber the rest
    count = int(ids.max()) if len(ids) else 0
    present = [k for k in range(1, count + 1) if (labels[0] == k).any()]
    if len(present) < count:
        remap = np.zeros(count + 1, np.int64)
        for new, old in enumerate(present, start=1):
            remap[old] = new
        labels = remap[labels]
    return frames, labels


def random_composite(fg, rng, n=3, size=(240, 432), backgrounds=None, max_objects=3, p_twin=0.0):
    """A composite clip of 1..max_objects random static-fg objects over a background: a frame
    from `backgrounds` (a callable rng -> RGB image, e.g. a DAVIS training frame) or another
    static-fg photo. Returns frames, labels, number of objects.

    With chance `p_twin` one object also appears a second time on its own path (see `twin`):
    a look-alike, as in a crowd or a herd, that only its position and motion tell apart."""
    k = int(rng.integers(1, max_objects + 1))
    ids = rng.choice(len(fg), k + 1, replace=False)
    objects = [fg.cutout(int(i)) for i in ids[:k]]
    bg = backgrounds(rng) if backgrounds is not None else fg.load(int(ids[k]))[0]
    labelled = None
    if p_twin and rng.random() < p_twin:     # (no draw at 0: validation clips stay the same)
        objects, labelled = add_twin(objects, rng)
    frames, labels = composite_clip(objects, bg, rng, n=n, size=size, labelled=labelled)
    if labelled is not None and not labels[0].any():
        # the distractor hides every object on the first frame: it is the object to track
        frames, labels = composite_clip(objects, bg, rng, n=n, size=size)
    return frames, labels, int(labels.max())


def twin(rgb, rng):
    """A look-alike of an object's cutout: mirrored half the time, brightness and colour
    changed by a few percent (two dogs of one breed, two girls in one uniform)."""
    out = rgb[:, ::-1] if rng.random() < 0.5 else rgb
    gain = rng.uniform(0.9, 1.1) * rng.uniform(0.95, 1.05, 3)
    return np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8), out is not rgb


def add_twin(objects, rng):
    """objects [(rgb, mask)] -> (objects with a twin of one of them inserted at a random
    depth, labelled flags). Half the time the twin is another object to track, half the time
    an unlabelled distractor (a look-alike nobody annotated)."""
    src = int(rng.integers(len(objects)))
    rgb, mask = objects[src]
    trgb, mirrored = twin(rgb, rng)
    tmask = mask[:, ::-1] if mirrored else mask
    labelled = [True] * len(objects)
    at = int(rng.integers(len(objects) + 1))
    objects = objects[:at] + [(np.ascontiguousarray(trgb), np.ascontiguousarray(tmask))] + objects[at:]
    labelled.insert(at, bool(rng.random() < 0.5))
    return objects, labelled


def validation_clips(fg, count=24, n=8, seed=0, size=(240, 432)):
    """Fixed synthetic validation clips: `count` composites of 1-3 objects of `fg` (its
    validation part: photos training never sees) over another of its photos, `n` frames each,
    the same for the same folder and seed. Returns [(frames, labels, objects), ...]."""
    if fg.part == 'train':
        raise ValueError('validation clips must come from photos training does not use')
    if len(fg) < 4:
        raise ValueError(f'{fg.root}: too few validation photos ({len(fg)}) for composites')
    rng = np.random.default_rng(seed)
    return [random_composite(fg, rng, n=n, size=size) for _ in range(count)]
