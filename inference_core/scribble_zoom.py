"""Zoomed corrections: a corrective scribble on a small object is segmented on an enlarged crop.

The interaction networks see a whole 480p frame at a fixed size (the bundled one at short sides
208 and 272), so a small object's correction is decided on a few dozen pixels: a ball of 45x45
pixels at 480p is ~20x20 there, and one stroke that strays off a thin error band cuts the object
in half. When the scribbled object already has a mask on the frame (a correction, not a first
scribble), the frame is cropped around that mask and every stroke of the interaction (RITM's
zoom-in: the box enlarged 1.4x, then to the frame's aspect ratio), the crop is enlarged to the frame's
short side and segmented there, and the result is pasted back. Outside the crop the labels stay
as they were: every stroke lies inside it, so nothing the person pointed at is outside.

A first scribble is never zoomed: its strokes cover only part of the object, so a box around them
would cut the object off. A scribble for an object that is missing on this frame but present on a
nearby one (it was lost: occluded, tiny, out of view) is zoomed too, on a box around the strokes at
least as large as the object is on that nearby frame: at the network's full-frame size such an
object is a few pixels, and its result was seen to spill over a sixth of the frame (DAVIS
bmx-bumps, a 142-pixel rider), which the propagation then carried to the frames around it.
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inference_core.interaction import NO_SCRIBBLE
from inference_core.local_refine import enlarged_size
from inference_core.padding import pad_divide_by, unpad
from util.labels import resize_labels
from util.tensor_util import normalize_frames

EXPAND = 1.4            # box around the mask and strokes, enlarged by this factor (RITM's zoom-in)
MIN_SIDE_FRAC = 0.2     # the box is at least this share of the frame's short side
MAX_AREA_FRAC = 0.5     # a box larger than this share of the frame: no zoom (little to gain)
NEARBY_REACH = 10       # a lost object's size is read from a frame at most this far away


def focus_box(prev_labels, scribbles, obj_id, expand=EXPAND, min_side_frac=MIN_SIDE_FRAC,
              max_area_frac=MAX_AREA_FRAC, nearby_size=None):
    """(x0, y0, x1, y1) integer box to zoom on for a correction of obj_id, or None.

    prev_labels: (H, W) labels before the interaction; scribbles: (H, W) uint8 stroke map
    (NO_SCRIBBLE where none); nearby_size: (h, w) of obj_id's bounding box on a nearby frame, or
    None. Without a mask of obj_id in prev_labels the box is made only from nearby_size (a lost
    object; the box is at least that size around the strokes) and None without it (a first
    scribble). None also when there are no strokes, or when the box would cover more than
    max_area_frac of the frame."""
    prev_labels = np.asarray(prev_labels)
    H, W = prev_labels.shape
    obj = prev_labels == obj_id
    marks = np.asarray(scribbles) != NO_SCRIBBLE
    lost = not obj.any()
    if not marks.any() or (lost and nearby_size is None):
        return None
    ys, xs = np.nonzero(obj | marks)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = min_side_frac * min(H, W)
    bw, bh = max((x1 - x0) * expand, side), max((y1 - y0) * expand, side)
    if lost:
        bw, bh = max(bw, nearby_size[1] * expand), max(bh, nearby_size[0] * expand)
    # the frame's aspect ratio: the network sees a scaled-down frame, with context on the short
    # side of an elongated object rather than an elongated image it was never trained on
    bw, bh = max(bw, bh * W / H), max(bh, bw * H / W)
    if bw * bh > max_area_frac * H * W:
        return None
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # shift (not shrink) a box that crosses the frame's border, so the zoom stays the same
    bx0 = int(round(min(max(cx - bw / 2, 0), W - bw)))
    by0 = int(round(min(max(cy - bh / 2, 0), H - bh)))
    bx1, by1 = min(W, bx0 + int(round(bw))), min(H, by0 + int(round(bh)))
    return max(bx0, 0), max(by0, 0), bx1, by1


def nearby_object_size(store, t, obj_id, reach=NEARBY_REACH):
    """(h, w) of obj_id's bounding box on the frame nearest to t (at most `reach` frames away,
    t itself excluded) that holds it, or None. Reads only frames that hold any object."""
    nonempty = store.nonempty_frames()
    for d in range(1, reach + 1):
        for u in (t - d, t + d):
            if 0 <= u < len(nonempty) and nonempty[u]:
                ys, xs = np.nonzero(store.get_mask(u) == obj_id)
                if len(ys):
                    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
    return None


def zoomed_predict(scribbler, frame_rgb, prev_labels, scribbles, num_objects, obj_id, box):
    """(K+1, 1, H, W) probabilities of the whole frame: the scribble network's output on the
    enlarged crop `box` pasted into a one-hot of prev_labels (unchanged outside the box).

    frame_rgb: (H, W, 3) uint8; prev_labels, scribbles: (H, W) uint8 as for
    ScribbleController.predict."""
    x0, y0, x1, y1 = box
    prev_labels = np.asarray(prev_labels)
    H, W = prev_labels.shape
    ch, cw = y1 - y0, x1 - x0
    _, lh, lw = enlarged_size(ch, cw, H, W)      # as local refinement enlarges its region
    crop = cv2.resize(np.ascontiguousarray(frame_rgb[y0:y1, x0:x1]), (lw, lh),
                      interpolation=cv2.INTER_CUBIC)
    # strokes and labels: nearest neighbour, so a stroke keeps its width relative to the image
    scr = resize_labels(np.ascontiguousarray(scribbles[y0:y1, x0:x1]), lh, lw)
    prev = resize_labels(np.ascontiguousarray(prev_labels[y0:y1, x0:x1]), lh, lw)
    image, pad = pad_divide_by(normalize_frames(crop[None]), 16)
    prev_p = pad_divide_by(torch.from_numpy(prev)[None, None], 16)[0][0, 0].numpy()
    prob = scribbler.predict(image.to(scribbler.device), prev_p, scr, num_objects,
                             claim_for=obj_id)
    prob = unpad(prob, pad).float().cpu()
    prob = F.interpolate(prob.transpose(0, 1), size=(ch, cw), mode='bilinear',
                         align_corners=False).transpose(0, 1)
    out = F.one_hot(torch.from_numpy(prev_labels.astype(np.int64)), num_objects + 1)
    out = out.permute(2, 0, 1)[:, None].float()
    out[:, :, y0:y1, x0:x1] = prob
    return out
