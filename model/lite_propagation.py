"""Bundled propagation network: an STCN-style space-time memory network on a frozen
EfficientNet-Lite0 backbone, small enough to run at >= 10 FPS on a laptop CPU.

Same method names and argument conventions as the official `PropagationNetwork`, so the same
engine runs it; its features are opaque to the engine and have different shapes:

* Frames arrive ImageNet-normalised and padded to /16 at size (H, W). The network resizes them to
  a processing size (short side `proc_short`, default 240, each side a multiple of 16; 480p ->
  240x432) and runs the backbone there. "16" in the names below is stride 16 of that processing
  size (stride 32 of a 480p frame).
* encode_key -> (k16 (B,64,h,w), qv16 (B,128,h,w), f16 (B,112,h,w), f8, f4) where the skip slots
  carry the backbone's stride-4 (`f8` slot) and stride-2 (`f4` slot) maps of the processing size.
* Outputs (probabilities, attention) are returned at the input size (H, W). The input size of each
  processing size is remembered by `encode_key` (one video at a time is the normal case; a
  processing size that was never seen falls back to scaling by the processing factor).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.efficientnet_lite import EfficientNetLite, from_imagenet_norm
from model.memory_reader import attention_readout, memory_readout
from model.modules import ResBlock
from util.tensor_util import normalize_frames

KEY_DIM = 64
QV_DIM = 128
VALUE_DIM = 128


def proc_size(h, w, short=240):
    """Processing size for an input of (h, w): short side ~`short` (never upscaled), /16 sides."""
    s = min(1.0, short / min(h, w))
    return max(16, int(round(h * s / 16)) * 16), max(16, int(round(w * s / 16)) * 16)


class LiteBackbone(nn.Module):
    """EfficientNet-Lite0 up to stride 16: returns (f2, f4, f8, f16) of a lite-normalised input.

    Frozen at ImageNet weights, except that a trainer may fine-tune the stride-16 stages
    (`tail`, fed from the stride-8 map) of the propagation net; its BN statistics stay fixed.
    """

    def __init__(self, variant='lite0', pretrained=True):
        super().__init__()
        self.net = EfficientNetLite(variant, head=False, max_stride=16)
        if pretrained:
            self.net.load_imagenet()
        self.channels = self.net.channels
        self.tail_start = self.net.stage_ends[8] + 1      # first block of the stride-16 stages
        self.train(False)

    def train(self, mode=True):
        # Always in eval mode: BatchNorm normalises with (and never updates) the ImageNet running
        # statistics. A module starts in training mode, and the first trainers built their
        # feature caches that way: the cached maps were normalised by batch statistics and the
        # shipped propagation network's running statistics drifted (see scripts/train/README.md).
        return super().train(False)

    def forward(self, x):
        # channels-last: the depthwise convolutions run ~30% faster on CPU (oneDNN); the maps are
        # handed on in the usual layout
        f = self.net.forward_features(x.contiguous(memory_format=torch.channels_last))
        return tuple(f[s].contiguous() for s in (2, 4, 8, 16))

    def tail(self, f8):
        """Stride-8 map -> stride-16 map (the blocks after the stride-8 stage)."""
        x = f8.contiguous(memory_format=torch.channels_last)
        for b in self.net._blocks[self.tail_start:]:
            x = b(x)
        return x.contiguous()

    def tail_parameters(self):
        return [p for b in self.net._blocks[self.tail_start:] for p in b.parameters()]


@torch.no_grad()
def backbone_maps(backbone, frames_u8, batch=8, with_f8=False):
    """uint8 (N,h,w,3) frames already at the processing size -> f2, f4, f16 float tensors of the
    frozen backbone, on its device (f2, f4, f8, f16 with with_f8=True)."""
    device = next(backbone.parameters()).device
    outs = []
    for s in range(0, len(frames_u8), batch):
        x = from_imagenet_norm(normalize_frames(frames_u8[s:s + batch]).to(device))
        f2, f4, f8, f16 = backbone(x)
        outs.append((f2, f4, f8, f16) if with_f8 else (f2, f4, f16))
    return [torch.cat(o, 0) for o in zip(*outs)]


def with_others(masks):
    """masks (K,1,H,W) -> (K,2,H,W) [mask, others]: 'others' is the sum of the other objects."""
    others = masks.sum(0, keepdim=True) - masks if masks.shape[0] > 1 else torch.zeros_like(masks)
    return torch.cat([masks, others], 1)


def resize_to(x, size, mode='bilinear'):
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == 'area':
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


class ValueEncoder(nn.Module):
    """[mask, others] at the stride-4 processing size -> conv stack to stride 16, fused with f16."""

    def __init__(self, f16_dim, out_dim=VALUE_DIM):
        super().__init__()
        self.mask_net = nn.Sequential(
            nn.Conv2d(2, 32, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 48, 3, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(48, 64, 3, 2, 1), nn.ReLU(inplace=True))
        self.fuse1 = ResBlock(64 + f16_dim, out_dim)
        self.fuse2 = ResBlock(out_dim, out_dim)

    def forward(self, masks4, f16):
        x = self.mask_net(masks4)
        x = resize_to(x, f16.shape[-2:])
        x = self.fuse1(torch.cat([x, f16.expand(x.shape[0], -1, -1, -1)], 1))
        return self.fuse2(x)


class Decoder(nn.Module):
    """[readout, qv16] at stride 16 -> stride 4 (skip f4) -> stride 2 (skip f2) -> 1 logit map.

    The stride-2 stage is deliberately thin (16 channels): it only sharpens boundaries.
    `prior` (optional, (K,2,h4,w4) at stride 4: [previous-frame mask, others]) is added at
    strides 16 and 4. The memory readout of this small network matches at a coarse grid (stride
    32 of a 480p frame); the previous frame's mask says where the boundaries were one frame ago,
    as the previous-frame inputs of RGMP / CFBI do. Its convs start at zero, so a network
    trained without the prior computes the same function.
    """

    def __init__(self, f4_dim, f2_dim, in_dim=VALUE_DIM + QV_DIM):
        super().__init__()
        self.compress = ResBlock(in_dim, 128)
        self.prior16 = nn.Conv2d(2, 128, 3, padding=1)
        self.context = ResBlock(128, 128)
        self.prior4 = nn.Conv2d(2, 48, 3, padding=1)
        self.skip4 = nn.Conv2d(f4_dim, 48, 3, padding=1)
        self.up4 = nn.Conv2d(128, 48, 1)
        self.block4 = ResBlock(48, 48)
        self.skip2 = nn.Conv2d(f2_dim, 16, 3, padding=1)
        self.up2 = nn.Conv2d(48, 16, 1)
        self.refine2 = nn.Conv2d(16, 16, 3, padding=1)
        self.pred = nn.Conv2d(16, 1, 3, padding=1)
        for conv in (self.prior16, self.prior4):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x, f4, f2, prior=None):
        """x (K,C,h16,w16); f4, f2: backbone maps with batch K or 1 (shared by the K objects)."""
        x = self.compress(x)
        if prior is not None:
            x = x + self.prior16(resize_to(prior, x.shape[-2:], 'area'))
        x = self.context(x)
        x = self.skip4(f4) + resize_to(self.up4(x), f4.shape[-2:])
        if prior is not None:
            x = x + self.prior4(prior)
        x = self.block4(x)
        x = F.relu(self.skip2(f2) + resize_to(self.up2(F.relu(x)), f2.shape[-2:]))
        x = F.relu(self.refine2(x))
        return self.pred(x)


def dense_readout(mk, mv, qk):
    """Full-softmax memory read (training): mk (B,Ck,T,h,w), mv (B,Cv,T,h,w), qk (B,Ck,h,w)."""
    b, ck = qk.shape[:2]
    h, w = qk.shape[-2:]
    mkf = mk.flatten(2)                                        # B, Ck, N
    qkf = qk.flatten(2)                                        # B, Ck, M
    a = 2 * mkf.transpose(1, 2) @ qkf - mkf.pow(2).sum(1).unsqueeze(2)
    a = torch.softmax(a / math.sqrt(ck), dim=1)                # over memory positions
    out = mv.flatten(2) @ a                                    # B, Cv, M
    return out.view(b, -1, h, w)


class LitePropagationNet(nn.Module):
    """Bundled STCN-style propagation network (see the module docstring)."""

    def __init__(self, variant='lite0', pretrained=True, proc_short=240, top_k=20):
        super().__init__()
        self.backbone = LiteBackbone(variant, pretrained)
        ch = self.backbone.channels
        self.key_proj = nn.Conv2d(ch[16], KEY_DIM, 3, padding=1)
        self.key_comp = nn.Conv2d(ch[16], QV_DIM, 3, padding=1)
        self.value_encoder = ValueEncoder(ch[16])
        self.decoder = Decoder(ch[4], ch[2])
        # the size the heads were trained at travels with the weights (a state-dict entry):
        # heads trained at one size lose objects at another (scripts/train/README.md)
        self.register_buffer('trained_short', torch.tensor(int(proc_short)))
        self.top_k = top_k
        self._input_size = {}   # processing size -> input size, set by encode_key

    @property
    def proc_short(self):
        """Short side of the processing size (240 for weights saved without one)."""
        return int(self.trained_short)

    @proc_short.setter
    def proc_short(self, value):
        self.trained_short.fill_(int(value))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # files and checkpoints saved before the size was stored were trained at 240; every
        # load (strict or not: resumes, --init, the bundled loader) reads them so
        key = prefix + 'trained_short'
        if key not in state_dict:
            state_dict[key] = torch.tensor(240)     # load_state_dict passes its own copy
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ size bookkeeping
    def _proc(self, frame):
        h, w = frame.shape[-2:]
        ps = proc_size(h, w, self.proc_short)
        self._input_size.pop(ps, None)        # keep the most recent size last
        self._input_size[ps] = (h, w)
        return ps

    def _out_size(self, proc_hw):
        size = self._input_size.get(tuple(proc_hw))
        if size is None:
            if not self._input_size:     # never saw a frame: assume no resizing happened
                return tuple(proc_hw)
            (ph, pw), (h, w) = next(reversed(self._input_size.items()))
            size = (round(proc_hw[0] * h / ph), round(proc_hw[1] * w / pw))
        return size

    # ------------------------------------------------------------------ features from cached backbone maps
    def keys_from_features(self, f16):
        return self.key_proj(f16), self.key_comp(f16)

    def encode_features(self, frame):
        """ImageNet-normalised (B,3,H,W) -> backbone maps (f2, f4, f16) at the processing size."""
        ps = self._proc(frame)
        x = from_imagenet_norm(resize_to(frame, ps))
        f2, f4, _, f16 = self.backbone(x)
        return f2, f4, f16

    def value_from_features(self, f16, masks, proc_hw):
        """f16 (1,C,h,w), masks (K,1,H,W) -> (K,Cv,1,h,w)."""
        m4 = (proc_hw[0] // 4, proc_hw[1] // 4)
        x = with_others(resize_to(masks.to(f16.dtype), m4, 'area'))   # shrink first: cheaper, same sums
        return self.value_encoder(x, f16).unsqueeze(2)

    def decode(self, readout, qv16, f4, f2, out_size=None, prev_mask=None):
        """readout (K,Cv,h,w) -> logits (K,1,out_size) (processing size when out_size is None).
        prev_mask: optional (K,1,H',W') previous-frame probabilities (any size)."""
        k = readout.shape[0]
        # channels-last: the thin stride-4/2 convs run 1.3-4x faster on CPU; f4 and f2 stay one
        # batch entry, their skip convs are computed once and broadcast over the objects
        cl = torch.channels_last
        x = torch.cat([readout, qv16.expand(k, -1, -1, -1)], 1).contiguous(memory_format=cl)
        prior = None
        if prev_mask is not None:
            prior = with_others(resize_to(prev_mask.to(f4.dtype), f4.shape[-2:], 'area'))
            prior = prior.contiguous(memory_format=cl)
        logits = self.decoder(x, f4.contiguous(memory_format=cl), f2.contiguous(memory_format=cl),
                              prior)
        size = out_size or (f2.shape[-2] * 2, f2.shape[-1] * 2)
        return resize_to(logits, size).contiguous()

    # ------------------------------------------------------------------ engine contract
    def encode_key(self, frame):
        f2, f4, f16 = self.encode_features(frame)
        k16, qv16 = self.keys_from_features(f16)
        return k16, qv16, f16, f4, f2

    def encode_value(self, frame, f16, masks):
        proc_hw = (f16.shape[-2] * 16, f16.shape[-1] * 16)
        return self.value_from_features(f16, masks, proc_hw)

    # The engine passes the previous frame's probabilities of the pass (prev_mask) to networks
    # that set this flag.
    uses_previous_mask = True
    # zero-initialised: weights trained before the prior existed load without them; weights
    # saved before the processing size was stored load as 240 (_load_from_state_dict)
    neutral_when_missing = ('decoder.prior16.', 'decoder.prior4.', 'trained_short')

    def segment_with_query(self, mk16, mv16, qf8, qf4, qk16, qv16, prev_mask=None):
        readout = memory_readout(mk16, mv16, qk16, top_k=self.top_k)
        proc_hw = (qf4.shape[-2] * 2, qf4.shape[-1] * 2)
        logits = self.decode(readout.to(qv16.dtype), qv16, qf8, qf4, self._out_size(proc_hw), prev_mask)
        return torch.sigmoid(logits)

    def get_attention(self, mk16, pos_mask, neg_mask, qk16):
        h, w = qk16.shape[-2:]
        b = pos_mask.shape[0]
        size = pos_mask.shape[-2:]
        pos = F.adaptive_avg_pool2d(pos_mask.float(), (h, w)).view(b, -1)
        neg = F.adaptive_avg_pool2d(neg_mask.float(), (h, w)).view(b, -1)
        vals = attention_readout(mk16, qk16, torch.cat([pos, neg], 0))       # (2b, hw)
        attn = torch.stack([vals[:b], vals[b:]], 1).view(b, 2, h, w)
        return F.interpolate(attn, size=size, mode='bilinear', align_corners=False).to(qk16.dtype)

    def trainable_parameters(self, backbone_tail=False):
        """The heads' parameters (+ the backbone's stride-16 stages with backbone_tail=True)."""
        own = [p for n, p in self.named_parameters() if not n.startswith('backbone.')]
        return own + (self.backbone.tail_parameters() if backbone_tail else [])
