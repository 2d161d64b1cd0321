"""Object-centred zoomed propagation for small objects.

A bundled network matches at stride 16 of its processing size: at 288 a 480p frame becomes an
18x32 grid, and an object covering ~1% of the frame is a handful of cells, too few to be matched
and decoded reliably. For every object of a pass whose box is small in the pass's first frame,
`SmallObjectZoom` keeps a second, object-centred memory: a window around the object (the box
times CONTEXT, the frame's aspect ratio, at least MIN_SIDE of the frame), cut from the frame and
resized to the zoom size (2/3 of the network's processing size, so one zoomed object costs
about half a frame). Each frame's window follows the object's previous result; the zoomed
result replaces the object's full-frame probability inside the window (and the object is absent
outside it), unless the zoomed pass finds nothing (then the full-frame result stands and the
window follows it). Objects whose window would exceed MAX_SIDE of the frame are not zoomed.

Works with networks that expose `proc_short` (the bundled ones); the official networks run at
full resolution and are left as they are.
"""
import torch
import torch.nn.functional as F

from inference_core.masks import mask_box
from model.lite_propagation import proc_size

CONTEXT = 2.5        # window side / object box side
MIN_SIDE = 0.15      # smallest window side, a share of the frame's (at most ~4x zoom)
MAX_SIDE = 0.4       # objects whose window would be larger are not zoomed
ZOOM_SCALE = 2 / 3   # zoom size: this share of the processing size's short side
MEMORY_FRAMES = 6    # the first frame of the pass + the latest temporary frames


def supported(net):
    return hasattr(net, 'proc_short') and hasattr(net, 'encode_key') and hasattr(net, 'encode_value')


def zoom_size(net, h, w):
    """(zh, zw) the windows are resized to: sides /16, never reaching the processing size of
    the whole frame (the network must see them unresized, and the size must differ from the
    frame's, see LitePropagationNet._out_size)."""
    ph, pw = proc_size(h, w, net.proc_short)
    zs = max(64, int(round(min(ph, pw) * ZOOM_SCALE / 16)) * 16)
    zh, zw = proc_size(h, w, zs) if min(h, w) > zs else (ph, pw)
    return (zh, zw) if (zh, zw) != (ph, pw) else (max(16, zh - 16), max(16, zw - 16))


def object_window(mask, valid):
    """Window (y0, x0, y1, x1) around the pixels of `mask` (H, W bool tensor), or None when the
    object is absent or too large to gain from zooming. valid: (top, left, height, width) of the
    frame inside its padding; the window stays inside it."""
    oy, ox, vh, vw = valid
    box = mask_box(mask)
    if box is None:
        return None
    y0, x0, y1, x1 = box
    side_h = max(y1 - y0, (x1 - x0) * vh / vw) * CONTEXT
    side_h = max(side_h, MIN_SIDE * vh)
    if side_h > MAX_SIDE * vh:
        return None
    side_w = side_h * vw / vh
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    wy0 = int(round(min(max(cy - side_h / 2, oy), oy + vh - side_h)))
    wx0 = int(round(min(max(cx - side_w / 2, ox), ox + vw - side_w)))
    return wy0, wx0, wy0 + int(round(side_h)), wx0 + int(round(side_w))


class _Track:
    """One zoomed object: its window, memory (keys, values) and the frame of the last memory entry."""

    def __init__(self, window, key, value, frame):
        self.window = window
        self.keys, self.values = [key], [value]
        self.last_memory = frame
        self._memory = None              # (keys, values) concatenated, until the next entry

    def memory(self):
        if self._memory is None:
            self._memory = torch.cat(self.keys, 2), torch.cat(self.values, 2)
        return self._memory

    def add(self, key, value, frame):
        self.keys.append(key)
        self.values.append(value)
        if len(self.keys) > MEMORY_FRAMES:      # keep the first frame's entry
            del self.keys[1], self.values[1]
        self.last_memory = frame
        self._memory = None


class SmallObjectZoom:
    """The zoomed memories of one propagation pass (see the module docstring).

    net: the propagation network; valid: (top, left, height, width) of the frame inside its
    padding (the windows stay inside it); mem_freq: a zoomed memory entry every that many
    frames, as the full-frame pass does."""

    def __init__(self, net, valid, mem_freq):
        self.net = net
        self.valid = tuple(int(v) for v in valid)
        self.mem_freq = mem_freq
        self.size = zoom_size(net, *self.valid[2:])
        self.tracks = {}                 # object id -> _Track

    def _crop(self, x, window, mode='bilinear'):
        y0, x0, y1, x1 = window
        return F.interpolate(x[..., y0:y1, x0:x1], size=self.size, mode=mode,
                             align_corners=False if mode == 'bilinear' else None)

    def begin(self, t, image, prob):
        """Start the zoomed memories from the pass's first frame t: image (1,3,H,W) normalised,
        prob (K+1,1,H,W) its committed probabilities."""
        self.tracks = {}
        for k in range(1, prob.shape[0]):
            window = object_window(prob[k, 0] > 0.5, self.valid)
            if window is None:
                continue
            crop = self._crop(image, window)
            k16, _, f16, _, _ = self.net.encode_key(crop)
            value = self.net.encode_value(crop, f16, self._crop(prob[k:k + 1], window, 'area'))
            self.tracks[k] = _Track(window, k16.unsqueeze(2), value, t)

    def refine(self, image, raw, prev):
        """Replace the full-frame sigmoids raw (K,1,H,W) of zoomed objects by their zoomed
        results inside their windows. prev: the previous frame's probabilities (K,1,H,W) of the
        pass (the decoder's prior) or None. Returns raw (a new tensor when anything changed)."""
        if not self.tracks:
            return raw
        raw = raw.clone()
        for k, tr in self.tracks.items():
            crop = self._crop(image, tr.window)
            k16, qv16, _, fa, fb = self.net.encode_key(crop)
            extra = {}
            if prev is not None:
                extra['prev_mask'] = self._crop(prev[k - 1:k], tr.window, 'area')
            mk, mv = tr.memory()
            out = self.net.segment_with_query(mk, mv, fa, fb, k16, qv16, **extra).float()
            if float(out.max()) < 0.5:         # the zoomed pass lost it: the full frame decides
                continue
            y0, x0, y1, x1 = tr.window
            pasted = torch.zeros_like(raw[k - 1:k])
            pasted[..., y0:y1, x0:x1] = F.interpolate(out, size=(y1 - y0, x1 - x0), mode='bilinear',
                                                      align_corners=False)
            raw[k - 1:k] = pasted
        return raw

    def observe(self, t, image, result):
        """After frame t's result (K+1,1,H,W) is final: move each window onto the object's new
        position and add a memory entry every mem_freq frames."""
        for k, tr in self.tracks.items():
            if k >= result.shape[0]:
                continue
            window = object_window(result[k, 0] > 0.5, self.valid)
            if window is None:                 # lost or grown: keep the last window
                continue
            tr.window = window
            if abs(t - tr.last_memory) >= self.mem_freq:
                crop = self._crop(image, window)
                k16, _, f16, _, _ = self.net.encode_key(crop)
                value = self.net.encode_value(crop, f16, self._crop(result[k:k + 1], window, 'area'))
                tr.add(k16.unsqueeze(2), value, t)
