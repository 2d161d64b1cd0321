"""A training-free label propagation on frozen ImageNet EfficientNet-Lite0 features: the reference
row every trained propagation network is compared against (scripts.eval_semi_davis
--training-free). Not a product model: it is slow (about 1 frame/s on a 2-core CPU).

Recipe (as measured on the reserved DAVIS 2016 val split in issue #13):
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


def _local_affinity(q, k, radius):
    """Cosine affinity of each query position to the key positions within `radius` cells:
    (C, H, W) x (C, H, W) -> ((2r+1)^2, H*W), -inf outside the frame."""
    c, h, w = q.shape
    kp = F.pad(k, (radius, radius, radius, radius))
    valid = F.pad(torch.ones(1, h, w), (radius, radius, radius, radius))
    out = []
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            a = (q * kp[:, dy:dy + h, dx:dx + w]).sum(0)
            a = a.masked_fill(valid[0, dy:dy + h, dx:dx + w] == 0, float('-inf'))
            out.append(a.reshape(-1))
    return torch.stack(out)


def propagate(frames, first_labels, num_objects=None, progress=None):
    """frames (T, H, W, 3) uint8, first_labels (H, W) ids -> labels (T, H, W) uint8."""
    feats = FrozenFeatures()
    t_n, h, w = frames.shape[:3]
    k = int(num_objects or first_labels.max())
    f0 = feats(frames[0])
    _, fh, fw = f0.shape[1:]
    onehot = torch.from_numpy(np.stack([first_labels == i for i in range(k + 1)]).astype(np.float32))
    m0 = F.interpolate(onehot[None], size=(fh, fw), mode='area')[0]          # (K+1, fh, fw)
    first = (f0[0], m0)
    recent = []                  # (keys (C, fh, fw), padded soft masks (K+1, fh+2r, fw+2r))
    out = np.zeros((t_n, h, w), np.uint8)
    out[0] = first_labels
    side = 2 * RADIUS + 1
    ys, xs = np.divmod(np.arange(fh * fw), fw)
    ys, xs = torch.from_numpy(ys), torch.from_numpy(xs)
    with torch.no_grad():
        for t in range(1, t_n):
            q = feats(frames[t])[0]                                            # (C, fh, fw)
            c = q.shape[0]
            cands = [first[0].reshape(c, -1).t() @ q.reshape(c, -1)]           # (fhw, fhw)
            cands += [_local_affinity(q, key, RADIUS) for key, _ in recent]    # (side^2, fhw) each
            a = torch.cat(cands, 0)
            top, idx = torch.topk(a, TOP_K, dim=0)                             # (TOP_K, fhw)
            wts = torch.softmax(top / TEMPERATURE, dim=0)
            n_first = cands[0].shape[0]
            first_vals = first[1].reshape(k + 1, -1)
            padded = torch.stack([v for _, v in recent]) if recent else None
            prob = torch.zeros(k + 1, fh * fw)
            for j in range(TOP_K):
                ij = idx[j]
                v = torch.empty(k + 1, fh * fw)
                f_mask = ij < n_first
                v[:, f_mask] = first_vals[:, ij[f_mask]]
                rest = ~f_mask
                if rest.any():
                    r = ij[rest] - n_first
                    mi, off = r // (side * side), r % (side * side)
                    dy, dx = off // side, off % side
                    v[:, rest] = padded[mi, :, ys[rest] + dy, xs[rest] + dx].t()
                prob += wts[j] * v
            soft = prob.reshape(k + 1, fh, fw)
            recent.append((q, F.pad(soft, (RADIUS, RADIUS, RADIUS, RADIUS))))
            recent = recent[-(MEMORY_FRAMES - 1):]
            up = F.interpolate(soft[None], size=(h, w), mode='bilinear', align_corners=False)[0]
            best = up[1:].max(0)
            lab = torch.where(best.values > THRESHOLD, best.indices + 1, torch.zeros_like(best.indices))
            out[t] = lab.numpy().astype(np.uint8)
            if progress is not None:
                progress(t, t_n - 1)
    return out
