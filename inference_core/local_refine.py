"""Local refinement (MiVOS local mode): scribbles on a region of a frame, enlarged to the
processing size so that small details get as many network pixels as a whole frame.

The region is cut out, enlarged, and run through a small one-frame Session of its own (the same
scribble-to-mask path as a whole frame); its result is shrunk back and pasted into the frame.
Consecutive strokes on the same region accumulate as one interaction, as on a whole frame, until
the frame's labels are changed by something else.
"""
import cv2
import numpy as np

from util.errors import UserError
from util.labels import resize_labels

MAX_LOCAL_SCALE = 8.0   # regions are enlarged to the processing size, at most this much


def enlarged_size(crop_h, crop_w, height, width):
    """(scale, h, w): a crop of a (height, width) frame enlarged so that its short side matches
    the frame's (never shrunk, at most MAX_LOCAL_SCALE)."""
    scale = min(max(1.0, min(height, width) / min(crop_h, crop_w)), MAX_LOCAL_SCALE)
    return scale, int(round(crop_h * scale)), int(round(crop_w * scale))


def region_box(region, height, width):
    """(x0, y0, x1, y1) integer pixel box of a region (x0, y0, x1, y1 floats, clipped)."""
    try:
        x0, y0, x1, y1 = (float(v) for v in region)
    except (TypeError, ValueError):
        raise UserError(f'region must be (x0, y0, x1, y1), got {region!r}') from None
    x0, y0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    x1, y1 = min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise UserError('the region to refine is empty: drag a larger box')
    return x0, y0, x1, y1


class LocalRefiner:
    """Keeps the enlarged one-frame session of the region being refined."""

    def __init__(self, make_session):
        self._make_session = make_session    # (frames (1,H,W,3), num_objects) -> Session
        self._key = None
        self._sub = None
        self._revision = None                # the frame's revision after our last write

    def reset(self):
        if self._sub is not None:
            self._sub.close()
        self._key = self._sub = self._revision = None

    def scribble(self, frame_rgb, labels, revision, box, obj_id, num_objects, positive,
                 negative, brush):
        """New labels of the whole frame after strokes (frame coordinates) in `box`."""
        x0, y0, x1, y1 = box
        H, W = labels.shape
        ch, cw = y1 - y0, x1 - x0
        scale, lh, lw = enlarged_size(ch, cw, H, W)
        key = (box, num_objects)
        if self._key != key or self._sub is None:
            self.reset()
            crop = np.ascontiguousarray(frame_rgb[y0:y1, x0:x1])
            big = cv2.resize(crop, (lw, lh), interpolation=cv2.INTER_CUBIC)
            self._sub = self._make_session(big[None], num_objects)
            self._key = key
        if self._revision != revision:
            # The frame changed since our last write (another edit, undo, a new region): start
            # a new interaction from its current labels.
            self._sub.set_labels(0, resize_labels(labels[y0:y1, x0:x1], lh, lw))
            self._sub.end_interaction()

        def local(strokes):
            if not strokes:
                return None
            return [[((x - x0) * scale, (y - y0) * scale) for x, y in line] for line in strokes]
        self._sub.scribble(0, obj_id, positive=local(positive), negative=local(negative),
                           brush=max(1, int(round(brush * scale))))
        new = np.array(labels, copy=True)
        new[y0:y1, x0:x1] = resize_labels(self._sub.get_mask(0), ch, cw)
        return new

    def written(self, revision):
        """The frame's revision after the caller wrote our result."""
        self._revision = revision
