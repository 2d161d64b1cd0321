"""Box prompts: a rectangle drawn around an object -> the object's mask.

A box is turned into scribble-network inputs on a zoomed crop (as inference_core/scribble_zoom.py
zooms corrections); the bundled interaction network (v2) is trained on exactly these inputs
(scripts/train/interaction_samples.py), the official S2M network sees them as scribbles:
  * the frame is cropped around the box with some context (the box enlarged `BOX_CONTEXT` times,
    then widened to the frame's aspect ratio), and the crop is enlarged to the frame's short side
    (as local refinement enlarges its region), so a small object is seen at a useful size;
  * the ellipse inscribed in the box is given as the object's previous mask (the networks are
    trained to correct a previous mask), a click-sized positive disk marks the box's centre,
    and negative strokes run just outside the box's edges (nothing outside the box is the
    object); an edge on the frame's border gets none (the object may be cut by it);
  * the network's probability on the crop is resized back and set to 0 outside the box.

The encoding was chosen, before any network was trained with boxes, on 60 photos of the
*training* part of ../shared/data/static-sal + static-fg (never on the held-out photos
scripts/eval_noc.py reports on), IoU of the tight ground-truth box with the v1 network: centre
disk and outside strokes alone 0.47 (v1 answers one click with a blob around it), with the
inscribed ellipse as previous mask 0.74, the whole box as previous mask 0.73; a positive cross
through the centre, a second pass from the first result, other margins and gaps changed it by
less than 0.02 (see scripts/eval_noc.py --box for the held-out number).

`box_probability` does the work; the Session (`Session.add_box`) merges the result into the
frame's labels like a click (other objects keep their pixels except in the part of the new mask
that holds the centre seed) as one undo step, and later clicks / strokes refine the mask.
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inference_core.click import click_radius
from inference_core.interaction import NO_SCRIBBLE
from inference_core.local_refine import enlarged_size
from inference_core.padding import pad_divide_by, unpad
from util.errors import UserError
from util.tensor_util import normalize_frames

BOX_CONTEXT = 1.4       # the crop: the box enlarged by this factor (then to the frame's aspect)
OUTSIDE_GAP = 0.03      # negative strokes run this share of the box's size outside its edges
MIN_BOX_SIDE = 2        # pixels
# The bundled network segments a box's crop at one short side, the one it was trained at, not at
# the two it averages for strokes: every new box needs its crop's backbone maps, and at two sizes
# a box took 0.15-0.17 s at 480p on a 2-core CPU, at one 0.09 s; the IoU from one box on the
# selection videos' frames went from 82.31 to 82.18 (docs/MODELS.md). The official net ignores it.
BOX_SHORTS = (240,)


def check_box(box, height, width):
    """(x0, y0, x1, y1) integer pixel box (x1, y1 exclusive) of a box given as four numbers in
    frame coordinates, corners in any order, clipped to the frame. UserError when it is not four
    finite numbers or is thinner than MIN_BOX_SIDE pixels inside the frame."""
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        raise UserError(f'box must be (x0, y0, x1, y1), got {box!r}') from None
    if len(vals) != 4 or not all(np.isfinite(vals)):
        raise UserError(f'box must be four finite numbers (x0, y0, x1, y1), got {box!r}')
    xa, ya, xb, yb = vals
    x0, x1 = sorted((xa, xb))
    y0, y1 = sorted((ya, yb))
    x0, y0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    x1, y1 = min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height)
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        raise UserError('the box is empty or outside the frame: drag a larger box around the object')
    return x0, y0, x1, y1


def crop_for_box(box, height, width, context=BOX_CONTEXT):
    """(x0, y0, x1, y1) of the crop segmented for `box`: the box enlarged `context` times about
    its centre, widened to the frame's aspect ratio, shifted (not shrunk) into the frame; the
    whole frame when that is larger than the frame."""
    x0, y0, x1, y1 = box
    bw, bh = (x1 - x0) * context, (y1 - y0) * context
    bw, bh = max(bw, bh * width / height), max(bh, bw * height / width)
    bw, bh = min(bw, width), min(bh, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    cx0 = int(round(min(max(cx - bw / 2, 0), width - bw)))
    cy0 = int(round(min(max(cy - bh / 2, 0), height - bh)))
    cx1, cy1 = min(width, cx0 + int(round(bw))), min(height, cy0 + int(round(bh)))
    # the box itself always lies inside the crop
    return min(max(cx0, 0), x0), min(max(cy0, 0), y0), max(cx1, x1), max(cy1, y1)


def box_strokes(h, w, box, on_border=(), scale=1.0, gap=None):
    """The (h, w) uint8 scribble map of a box in crop pixels (NO_SCRIBBLE none, 1 the object,
    0 background): a click-sized positive disk at the box's centre and negative lines just
    outside its edges, `gap` of the box's longer side away (at least 2 frame pixels: `scale` crop
    pixels per frame pixel), except along the edges named in `on_border` ('left', 'top',
    'right', 'bottom'), which lie on the frame's border. box: (x0, y0, x1, y1) floats, x1 / y1
    exclusive."""
    x0, y0, x1, y1 = box
    gap = OUTSIDE_GAP if gap is None else gap
    scr = np.full((h, w), NO_SCRIBBLE, np.uint8)
    r = click_radius(h, w)
    thick = max(1, int(round(r / 2)))
    d = max(2.0 * scale, gap * max(x1 - x0, y1 - y0)) + thick
    ox0, oy0, ox1, oy1 = x0 - d, y0 - d, x1 - 1 + d, y1 - 1 + d
    pt = lambda x, y: (int(round(min(max(x, 0), w - 1))), int(round(min(max(y, 0), h - 1))))  # noqa: E731
    lines = {'left': ((ox0, oy0), (ox0, oy1)), 'right': ((ox1, oy0), (ox1, oy1)),
             'top': ((ox0, oy0), (ox1, oy0)), 'bottom': ((ox0, oy1), (ox1, oy1))}
    for side, (a, b) in lines.items():
        if side in on_border:
            continue
        coord = a[0] if side in ('left', 'right') else a[1]
        limit = w if side in ('left', 'right') else h
        if not 0 <= coord <= limit - 1:
            continue           # the crop ends before the line (cannot happen with context > 1)
        cv2.line(scr, pt(*a), pt(*b), 0, thick)
    cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    cv2.circle(scr, pt(cx, cy), r, 1, -1)
    return scr


def box_guidance(box, frame_hw, crop, out_hw):
    """(scribbles, prior) (out_hw uint8 maps, box_strokes and box_prior) that hand `box` (a frame
    box, x1 / y1 exclusive) to the network on the `crop` (x0, y0, x1, y1) of the frame resized to
    out_hw (h, w). The one encoding of a box: Session.add_box and the trainer's box rounds."""
    H, W = frame_hw
    bx0, by0, bx1, by1 = box
    x0, y0, x1, y1 = crop
    lh, lw = out_hw
    sy, sx = lh / (y1 - y0), lw / (x1 - x0)
    on_border = {s for s, hit in (('left', bx0 == 0), ('top', by0 == 0), ('right', bx1 == W),
                                  ('bottom', by1 == H)) if hit}
    local = ((bx0 - x0) * sx, (by0 - y0) * sy, (bx1 - x0) * sx, (by1 - y0) * sy)
    return box_strokes(lh, lw, local, on_border, min(sx, sy)), box_prior(lh, lw, local)


def box_prior(h, w, box):
    """(h, w) uint8: the ellipse inscribed in `box` (crop pixels, floats), the "previous mask"
    the network refines."""
    x0, y0, x1, y1 = box
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (int(round((x0 + x1 - 1) / 2)), int(round((y0 + y1 - 1) / 2))),
                (max(1, int(round((x1 - x0) / 2))), max(1, int(round((y1 - y0) / 2)))),
                0, 0, 360, 1, -1)
    return m


@torch.inference_mode()
def box_probability(scribbler, frame_rgb, box, context=None):
    """(prob (H, W) float32 in [0, 1], seeds bool (H, W)) of the object in `box` on a frame:
    the interaction network's probability (0 outside the box) and the positive seed (the centre
    disk) in frame pixels.

    scribbler: inference_core.interaction.ScribbleController; frame_rgb: (H, W, 3) uint8;
    box: a checked (x0, y0, x1, y1) integer box (check_box)."""
    frame_rgb = np.asarray(frame_rgb)
    H, W = frame_rgb.shape[:2]
    context = BOX_CONTEXT if context is None else context
    bx0, by0, bx1, by1 = box
    x0, y0, x1, y1 = crop_for_box(box, H, W, context)
    ch, cw = y1 - y0, x1 - x0
    _, lh, lw = enlarged_size(ch, cw, H, W)
    crop = np.ascontiguousarray(frame_rgb[y0:y1, x0:x1])
    if (lh, lw) != (ch, cw):
        crop = cv2.resize(crop, (lw, lh), interpolation=cv2.INTER_CUBIC)
    scr, prev = box_guidance(box, (H, W), (x0, y0, x1, y1), (lh, lw))
    image, pad = pad_divide_by(normalize_frames(crop[None]), 16)
    prev = pad_divide_by(torch.from_numpy(prev)[None, None], 16)[0][0, 0].numpy()
    sig = scribbler.interact(image.to(scribbler.device), prev, scr, 1, shorts=BOX_SHORTS)   # (1, 1, Hp, Wp)
    sig = unpad(sig, pad).float().cpu()
    if (lh, lw) != (ch, cw):
        sig = F.interpolate(sig, size=(ch, cw), mode='bilinear', align_corners=False)
    prob = np.zeros((H, W), np.float32)
    prob[y0:y1, x0:x1] = sig[0, 0].numpy()
    inside = np.zeros((H, W), bool)
    inside[by0:by1, bx0:bx1] = True
    prob[~inside] = 0
    seeds = np.zeros((H, W), bool)
    seeds[y0:y1, x0:x1] = cv2.resize((scr == 1).astype(np.uint8), (cw, ch),
                                     interpolation=cv2.INTER_NEAREST) > 0
    return prob, seeds & inside
