"""Generate the demo clip: example/clip/ (JPEG frames 00000.jpg ...), example/masks/ (ground
truth, indexed DAVIS-palette PNGs, 2 objects) and example/masks_first/00000.png (first-frame
mask only, for semi-supervised demos).

Two textured objects cut out of scikit-image sample photos (1 = a cat's head, 2 = a coffee
cup on its saucer) move along smooth curved paths, scaling and turning slightly, over the
`rocket` photo with a slow camera pan; the cup passes in front of the cat half-way (occlusion).
Deterministic, nothing downloaded, takes a few seconds. Skips work when the outputs exist
unless --force.

    python example/make_example.py [--force] [--frames 60] [--size 480x854]
"""
import argparse
import os
import sys

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from util.atomic import write_bytes  # noqa: E402
from util.errors import UserError, run_cli  # noqa: E402
from util.export import indexed_png_bytes  # noqa: E402
from util.frames_io import encode_image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _cutout(img, center, axes, angle=0.0, pad=6):
    """RGBA crop of an elliptical region of `img` (alpha feathered over ~1.5 px)."""
    cx, cy = center
    ax, ay = axes
    x0, x1 = max(int(cx - ax - pad), 0), min(int(cx + ax + pad), img.shape[1])
    y0, y1 = max(int(cy - ay - pad), 0), min(int(cy + ay + pad), img.shape[0])
    crop = img[y0:y1, x0:x1]
    # Render the ellipse at 4x and area-downsample: an anti-aliased edge.
    s = 4
    big = np.zeros(((y1 - y0) * s, (x1 - x0) * s), np.uint8)
    cv2.ellipse(big, (int((cx - x0) * s), int((cy - y0) * s)), (int(ax * s), int(ay * s)),
                angle, 0, 360, 255, -1, lineType=cv2.LINE_AA)
    alpha = cv2.resize(big, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return np.dstack([crop, alpha])


def _objects():
    import skimage.data as data
    cat = _cutout(data.chelsea(), center=(200, 160), axes=(150, 128), angle=-5)
    cup = _cutout(data.coffee(), center=(262, 212), axes=(200, 170), angle=0)
    return [cat, cup]   # object ids 1, 2 (the cup is drawn last: it occludes the cat)


def _ease(u):
    return u * u * (3 - 2 * u)


def _path(u, pts):
    """Quadratic Bezier through control points pts at parameter u in [0, 1]."""
    (x0, y0), (x1, y1), (x2, y2) = pts
    a, b, c = (1 - u) ** 2, 2 * u * (1 - u), u * u
    return a * x0 + b * x1 + c * x2, a * y0 + b * y1 + c * y2


def render(num_frames=60, height=480, width=854):
    """Yield (rgb_frame, labels) for each frame."""
    import skimage.data as data
    rng = np.random.default_rng(2024)
    bg_src = data.rocket()
    pan_x, pan_y = 0.14 * width, 0.06 * height
    scale = max((height + pan_y) / bg_src.shape[0], (width + pan_x) / bg_src.shape[1])
    bg = cv2.resize(bg_src, (int(np.ceil(bg_src.shape[1] * scale)), int(np.ceil(bg_src.shape[0] * scale))),
                    interpolation=cv2.INTER_CUBIC)
    objs = _objects()
    unit = min(height, width)
    # Per object: path control points (fractions of the frame), target height (fraction of
    # the short side), scale change, rotation amplitude/frequency and phase.
    specs = [
        dict(pts=[(0.18, 0.62), (0.45, 0.35), (0.80, 0.55)], size=0.40, grow=0.18, rot=9, freq=1.0),
        dict(pts=[(0.85, 0.28), (0.55, 0.78), (0.22, 0.42)], size=0.36, grow=-0.12, rot=7, freq=1.4),
    ]
    phases = rng.uniform(0, 2 * np.pi, len(specs))
    for t in range(num_frames):
        u = t / max(num_frames - 1, 1)
        e = _ease(u)
        ox, oy = int(round(pan_x * e)), int(round(pan_y * (0.5 - 0.5 * np.cos(np.pi * u))))
        frame = bg[oy:oy + height, ox:ox + width].astype(np.float32)
        labels = np.zeros((height, width), np.uint8)
        for k, (obj, sp) in enumerate(zip(objs, specs)):
            cx, cy = _path(e, sp['pts'])
            cx, cy = cx * width, cy * height
            s = sp['size'] * unit / obj.shape[0] * (1 + sp['grow'] * e)
            ang = sp['rot'] * np.sin(2 * np.pi * sp['freq'] * u + phases[k])
            m = cv2.getRotationMatrix2D((obj.shape[1] / 2, obj.shape[0] / 2), ang, s)
            m[0, 2] += cx - obj.shape[1] / 2
            m[1, 2] += cy - obj.shape[0] / 2
            warped = cv2.warpAffine(obj, m, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
            a = warped[..., 3:].astype(np.float32) / 255
            # Soft drop shadow (not part of the mask) makes the composite less flat.
            sh = cv2.GaussianBlur(np.roll(a[..., 0], (int(0.02 * unit), int(0.015 * unit)), (0, 1)),
                                  (0, 0), 0.02 * unit)[..., None]
            frame *= 1 - 0.45 * sh
            frame = frame * (1 - a) + warped[..., :3].astype(np.float32) * a
            labels[a[..., 0] > 0.5] = k + 1
        # Slight sensor noise so frames are not perfectly clean.
        frame += rng.normal(0, 2.0, frame.shape).astype(np.float32)
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8), labels


def _complete(out, n):
    clip, masks = os.path.join(out, 'clip'), os.path.join(out, 'masks')
    return (all(os.path.isfile(os.path.join(clip, f'{t:05d}.jpg')) for t in range(n))
            and all(os.path.isfile(os.path.join(masks, f'{t:05d}.png')) for t in range(n))
            and os.path.isfile(os.path.join(out, 'masks_first', '00000.png'))
            and not os.path.isfile(os.path.join(clip, f'{n:05d}.jpg')))


def make_example(num_frames=60, height=480, width=854, force=False, out=HERE):
    """Write the clip under `out` (default: this folder). Returns True when files were written."""
    clip, masks, first = (os.path.join(out, d) for d in ('clip', 'masks', 'masks_first'))
    if not force and _complete(out, num_frames):
        return False
    for d in (clip, masks, first):
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):      # stale frames of an earlier, longer clip
            if name[:5].isdigit() and name.endswith(('.jpg', '.png')):
                os.remove(os.path.join(d, name))
    for t, (rgb, labels) in enumerate(render(num_frames, height, width)):
        write_bytes(os.path.join(clip, f'{t:05d}.jpg'),
                    encode_image(rgb, '.jpg', (cv2.IMWRITE_JPEG_QUALITY, 92)))
        png = indexed_png_bytes(labels)
        write_bytes(os.path.join(masks, f'{t:05d}.png'), png)
        if t == 0:
            write_bytes(os.path.join(first, '00000.png'), png)
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--force', action='store_true', help='regenerate even if the clip exists')
    p.add_argument('--frames', type=int, default=60)
    p.add_argument('--size', default='480x854', help='HEIGHTxWIDTH (default 480x854)')
    p.add_argument('--output', default=HERE, help='output folder (default: example/)')
    a = p.parse_args(argv)
    try:
        h, w = (int(v) for v in a.size.lower().split('x'))
    except ValueError:
        raise UserError(f'--size must look like 480x854, got {a.size!r}') from None
    if h < 64 or w < 64 or a.frames < 1:
        raise UserError('--size must be at least 64x64 and --frames at least 1')
    out = os.path.abspath(a.output)
    if make_example(a.frames, h, w, force=a.force, out=out):
        print(f'wrote {a.frames} frames to {os.path.join(out, "clip")} and masks to '
              f'{os.path.join(out, "masks")}')
    else:
        print(f'example clip already present in {out} (use --force to regenerate)')


if __name__ == '__main__':
    run_cli(main)
