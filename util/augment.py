"""Random geometric warps of a frame and its mask: affine and smooth elastic (STCN's static-image
clips, the interaction samples and the online adaptation of inference_core/adaptation.py)."""
import cv2
import numpy as np


def random_affine(rng, h, w, rot=20, scale=(0.85, 1.15), shear=10, trans=0.1):
    """A random 2x3 affine matrix around the image centre."""
    a = np.deg2rad(rng.uniform(-rot, rot))
    s = rng.uniform(*scale)
    sh = np.deg2rad(rng.uniform(-shear, shear))
    c, si = np.cos(a), np.sin(a)
    m = np.array([[c, -si + np.tan(sh) * c], [si, c + np.tan(sh) * si]]) * s
    cx, cy = w / 2, h / 2
    t = np.array([cx, cy]) - m @ np.array([cx, cy]) + rng.uniform(-trans, trans, 2) * np.array([w, h])
    return np.concatenate([m, t[:, None]], 1).astype(np.float32)


def warp(img, m, size, nearest=False):
    h, w = size
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(img, m, (w, h), flags=interp, borderMode=cv2.BORDER_REFLECT_101)


def elastic_field(rng, h, w, alpha=6.0, grid=6):
    """Smooth random displacement (dx, dy) maps in pixels (a coarse random grid, bicubic-upsampled)."""
    d = rng.normal(0, alpha, (2, grid, grid)).astype(np.float32)
    dx = cv2.resize(d[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(d[1], (w, h), interpolation=cv2.INTER_CUBIC)
    return dx, dy


def elastic(img, field, nearest=False):
    h, w = img.shape[:2]
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(img, xx + field[0], yy + field[1], interp, borderMode=cv2.BORDER_REFLECT_101)


def warped_clip(img, mask, rng, keep_first=True, n=3):
    """`n` random affine + elastic warps of one frame and its mask (STCN's static-image clips):
    uint8 frames (n,h,w,3), masks (n,h,w). keep_first: frame 0 is the unwarped original."""
    h, w = img.shape[:2]
    frames, masks = [], []
    for j in range(n):
        if j == 0 and keep_first:
            f, m = img, mask
        else:
            a = random_affine(rng, h, w)
            f, m = warp(img, a, (h, w)), warp(mask, a, (h, w), nearest=True)
            fld = elastic_field(rng, h, w)
            f, m = elastic(f, fld), elastic(m, fld, nearest=True)
        frames.append(f)
        masks.append(m)
    return np.stack(frames), np.stack(masks)
