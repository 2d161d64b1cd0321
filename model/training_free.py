"""A training-free label propagation on frozen ImageNet EfficientNet-Lite0 features: the reference
row every trained propagation network is compared against (scripts.eval_semi_davis
--training-free, through inference_core.networks.training_free_propagation). Not a product
model: it is slow (0.5 frames/s at 480p on a 2-core CPU, most of it in the memory read).

Recipe (as measured on the reserved DAVIS 2016 val split):
  * features: input (x - 127) / 128 at 480p; the block-4 output (stride 8, 40 channels)
    concatenated with the block-10 output (112 channels; blocks 5-10 run with stride 1 and
    dilation 2 so they stay at stride 8), each L2-normalised per position;
  * memory: the first frame and the most recent frames (20 in all), with their soft masks;
    a query position matches every position of the first frame, and positions of the recent
    frames only within a local window of radius 8 cells;
  * read: cosine affinities, top-10 over all candidates, softmax with temperature 0.05, the
    soft masks averaged with those weights; object k where its probability is the largest and
    above 0.3 (background otherwise); upsampled bilinearly to the frame size.
"""
import functools

import numpy as np
import torch
import torch.nn.functional as F

from model.efficientnet_lite import EfficientNetLite

MEMORY_FRAMES = 20
RADIUS = 8
TOP_K = 10
TEMPERATURE = 0.05
THRESHOLD = 0.3
SHALLOW_BLOCK, DEEP_BLOCK = 4, 10


class DilatedLite0(EfficientNetLite):
    """ImageNet Lite0 (stride 16) whose blocks after SHALLOW_BLOCK up to DEEP_BLOCK run their
    depthwise convolutions with stride 1 and dilation 2, so they stay at stride 8."""

    def __init__(self):
        super().__init__('lite0', head=False, max_stride=16)
        self.load_imagenet()
        for i in range(SHALLOW_BLOCK + 1, DEEP_BLOCK + 1):
            for conv in self._blocks[i].modules():
                if isinstance(conv, torch.nn.Conv2d) and conv.groups > 1:      # the depthwise one
                    k = conv.kernel_size[0]
                    conv.stride, conv.dilation, conv.padding = (1, 1), (2, 2), (k - 1, k - 1)

    def shallow_and_deep(self, x):
        """The outputs of blocks SHALLOW_BLOCK and DEEP_BLOCK for a lite-normalised input."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        shallow = None
        for i, b in enumerate(self._blocks[:DEEP_BLOCK + 1]):
            x = b(x)
            if i == SHALLOW_BLOCK:
                shallow = x
        return shallow, x


class FrozenFeatures(torch.nn.Module):
    """Lite0 up to block 10 with the stride-16 stage dilated: (1, 152, H/8, W/8) normalised."""

    def __init__(self):
        super().__init__()
        self.net = DilatedLite0().eval()

    @torch.no_grad()
    def forward(self, rgb):
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
        x = (x - 127.0) / 128.0
        shallow, x = self.net.shallow_and_deep(x)
        return torch.cat([F.normalize(shallow, dim=1), F.normalize(x, dim=1)], 1)


TILE = 8


def _windows(x, tile, radius):
    """(D, H, W) -> (n_tiles, D, S*S): for each `tile` x `tile` block of cells (row-major, the map
    zero-padded to whole tiles), the cells within `radius` of it (S = tile + 2 radius)."""
    d, h, w = x.shape
    s = tile + 2 * radius
    pad_h, pad_w = -h % tile, -w % tile
    xp = F.pad(x, (radius, radius + pad_w, radius, radius + pad_h))
    return F.unfold(xp[None], s, stride=tile).view(d, s * s, -1).permute(2, 0, 1)


def _untile(x, h, w, tile):
    """(n_tiles, D, tile*tile, k) in _windows' tile order -> (D, k, h*w)."""
    n_ty, n_tx = -(-h // tile), -(-w // tile)
    d, k = x.shape[1], x.shape[3]
    x = x.reshape(n_ty, n_tx, d, tile, tile, k).permute(2, 5, 0, 3, 1, 4)
    return x.reshape(d, k, n_ty * tile, n_tx * tile)[:, :, :h, :w].reshape(d, k, h * w)


@functools.lru_cache(maxsize=4)
def _dropped(h, w, tile, radius):
    """(n_tiles, T*T, S*S) bool: the window cells a tile's query must not match: farther than
    `radius` from it, or outside the map. The same for every frame of a video."""
    s = tile + 2 * radius
    # query (a, b) of a tile sees window cell (u, v) when 0 <= u - a, v - b <= 2 radius
    d = torch.arange(s)[None] - torch.arange(tile)[:, None]
    near = (d >= 0) & (d <= 2 * radius)                                        # (tile, S)
    local = (near[:, None, :, None] & near[None, :, None, :]).reshape(tile * tile, s * s)
    inside = _windows(torch.ones(1, h, w), tile, radius)[:, 0] > 0             # (n, S*S)
    return ~(local[None] & inside[:, None, :])


def memory_frame(key, vals, radius=RADIUS, tile=TILE):
    """A recent frame as read_memory uses it: its features (C, H, W) and soft masks (V, H, W)
    cut into the windows around each tile (computed once per frame, read by every later one)."""
    return _windows(key, tile, radius), _windows(vals, tile, radius)


def read_memory(q, first_key, first_vals, recent=(), radius=RADIUS, top_k=TOP_K,
                temperature=TEMPERATURE, tile=TILE):
    """Soft masks (V, H*W) read for the query features q (C, H, W): cosine affinities to every
    position of the first frame (first_key (C, H, W), first_vals (V, H, W)) and, for each recent
    frame (memory_frame(key, vals) with the same radius and tile), to its positions within
    `radius` cells (|dy|, |dx| <= radius); the top-k of all of them, softmax with `temperature`,
    the values averaged with those weights.

    The local windows are small matrix products (a tile of queries against the keys around it)
    rather than one shifted product per offset: the same candidates, faster on a CPU."""
    c, h, w = q.shape
    v_n = first_vals.shape[0]
    qf = q.reshape(c, -1)
    a0 = qf.t() @ first_key.reshape(c, -1)                                   # (HW queries, HW keys)
    top, idx = torch.topk(a0, min(top_k, a0.shape[1]), dim=1)
    cand_a, cand_v = [top.t()], [first_vals.reshape(v_n, -1)[:, idx.t()]]    # (k, HW), (V, k, HW)
    if len(recent):
        qt = F.unfold(F.pad(q, (0, -w % tile, 0, -h % tile))[None], tile, stride=tile)
        qt = qt.view(c, tile * tile, -1).permute(2, 1, 0)                    # (n, T*T, C)
        drop = _dropped(h, w, tile, radius)                                    # (n, T*T, S*S)
        k = min(top_k, drop.shape[2])
        for kw, vw in recent:
            aff = torch.bmm(qt, kw).masked_fill_(drop, float('-inf'))          # (n, T*T, S*S)
            tv, ti = torch.topk(aff, k, dim=2)                                 # (n, T*T, k)
            vv = torch.gather(vw, 2, ti.reshape(ti.shape[0], 1, -1).expand(-1, v_n, -1))
            cand_a.append(_untile(tv[:, None], h, w, tile)[0])
            cand_v.append(_untile(vv.reshape(ti.shape[0], v_n, tile * tile, k), h, w, tile))
    a = torch.cat(cand_a, 0)                                                   # (candidates, HW)
    vals = torch.cat(cand_v, 1)                                                # (V, candidates, HW)
    top, idx = torch.topk(a, min(top_k, a.shape[0]), dim=0)
    wts = torch.softmax(top / temperature, dim=0)
    picked = torch.gather(vals, 1, idx[None].expand(v_n, -1, -1))             # (V, k, HW)
    return (picked * wts[None]).sum(1)


def propagate(frames, first_labels, num_objects=None, progress=None):
    """frames (T, H, W, 3) uint8, first_labels (H, W) ids -> labels (T, H, W) uint8."""
    feats = FrozenFeatures()
    t_n, h, w = frames.shape[:3]
    k = int(num_objects or first_labels.max())
    f0 = feats(frames[0])[0]
    fh, fw = f0.shape[1:]
    onehot = torch.from_numpy(np.stack([first_labels == i for i in range(k + 1)]).astype(np.float32))
    m0 = F.interpolate(onehot[None], size=(fh, fw), mode='area')[0]          # (K+1, fh, fw)
    recent = []                  # the recent frames (memory_frame: features and soft masks)
    out = np.zeros((t_n, h, w), np.uint8)
    out[0] = first_labels
    with torch.no_grad():
        for t in range(1, t_n):
            q = feats(frames[t])[0]                                            # (C, fh, fw)
            soft = read_memory(q, f0, m0, recent).reshape(k + 1, fh, fw)
            recent = (recent + [memory_frame(q, soft)])[-(MEMORY_FRAMES - 1):]
            up = F.interpolate(soft[None], size=(h, w), mode='bilinear', align_corners=False)[0]
            best = up[1:].max(0)
            lab = torch.where(best.values > THRESHOLD, best.indices + 1, torch.zeros_like(best.indices))
            out[t] = lab.numpy().astype(np.uint8)
            if progress is not None:
                progress(t, t_n - 1)
    return out
