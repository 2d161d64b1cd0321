"""f-BRS click model: DeepLabV3+ on a dilated ResNet-v1s with distance-map click fusion.

Compatible with the official f-BRS release file `resnet50_dh128_lvis.pth` (MiVOS `saves/fbrs.pth`):
module names and shapes match it key for key (see ../shared/reference/mivos/keys/fbrs.txt).

Layout (f-BRS `DistMapsModel` + `DeepLabV3Plus` + `SepConvHead`):
    coord = tanh(2 * dist / 260)                         2 planes: positive, negative clicks
    x = rgb_conv([image, coord])                          1x1 5->8, LeakyReLU(0.2), BN, 1x1 8->3
    c1, c4 = backbone(x)                                  ResNet-v1s, deep stem, output stride 8
    feats = [resize(aspp(c4)), skip_project(c1)]          ch + 32 channels ("after_aspp" point)
    logits = head(feature_extractor.head(feats))          resized to the image, align_corners=True

The f-BRS-B predictor (inference_core/fbrs_predictor.py) optimises a scale/bias on `feats`,
so the forward pass is split into `backbone_features` and `head_logits`.
"""
import logging
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.checkpoint import CheckpointError, check_state_dict, read_state_dict

log = logging.getLogger(__name__)

NORM_RADIUS = 260
# Bottleneck blocks per stage of the supported backbones.
_BLOCKS = {'resnet50': (3, 4, 6, 3), 'resnet101': (3, 4, 23, 3)}


class FBRSCheckpointError(CheckpointError):
    """The file is not a usable f-BRS checkpoint (message names the offending keys)."""


# ----------------------------------------------------------------------------------------------
# Click encoding
# ----------------------------------------------------------------------------------------------

def dist_maps(points, height, width, norm_radius=NORM_RADIUS, valid=None):
    """Click distance features (B, 2, H, W): tanh(2 * d), d = distance to the nearest click / radius.

    points: (B, 2P, 2) tensor of (row, col); the first P are positive clicks, the next P negative.
    valid: optional (B, 2P) bool; by default a point is unused when max(row, col) < 0 (the (-1, -1)
    padding of f-BRS). d^2 = min over clicks of ((r - r_c)/R)^2 + ((c - c_c)/R)^2 in float32, 1e6
    for a plane without clicks (f-BRS `DistMaps`, exact form).
    """
    points = points.to(torch.float32)
    bsz, n2 = points.shape[:2]
    num = n2 // 2
    if valid is None:
        valid = points.max(dim=2).values >= 0
    dev = points.device
    rows = torch.arange(height, dtype=torch.float32, device=dev)
    cols = torch.arange(width, dtype=torch.float32, device=dev)
    # Separable form of the same float32 ops: ((r - rc) / R)^2 + ((c - cc) / R)^2.
    dr = ((rows.view(1, 1, -1) - points[:, :, :1]) / norm_radius) ** 2          # (B, 2P, H)
    dc = ((cols.view(1, 1, -1) - points[:, :, 1:]) / norm_radius) ** 2          # (B, 2P, W)
    d = dr.unsqueeze(3) + dc.unsqueeze(2)                                          # (B, 2P, H, W)
    d = d.masked_fill(~valid.to(dev).view(bsz, n2, 1, 1), 1e6)
    out = d.view(bsz, 2, num, height, width).amin(dim=2)
    return out.sqrt_().mul_(2).tanh_()


# ----------------------------------------------------------------------------------------------
# Backbone: ResNet-v1s (gluon-cv ResNetV1b with deep stem), dilated to output stride 8
# ----------------------------------------------------------------------------------------------

class BottleneckV1b(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class ResNetV1s(nn.Module):
    """Deep-stem ResNet with stride on the 3x3 conv; layer3/layer4 dilated (2, 4) instead of strided."""

    def __init__(self, blocks=(3, 4, 6, 3), stem_width=64):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, stem_width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width * 2, 3, padding=1, bias=False))
        self.bn1 = nn.BatchNorm2d(stem_width * 2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.inplanes = stem_width * 2
        self.layer1 = self._make_layer(64, blocks[0])
        self.layer2 = self._make_layer(128, blocks[1], stride=2)
        self.layer3 = self._make_layer(256, blocks[2], dilation=2)
        self.layer4 = self._make_layer(512, blocks[3], dilation=4)

    def _make_layer(self, planes, num_blocks, stride=1, dilation=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        # gluon-cv rule: the first block of a dilation-2 stage is undilated, of a dilation-4 stage uses 2.
        first_dilation = 2 if dilation == 4 else 1
        layers = [BottleneckV1b(self.inplanes, planes, stride, first_dilation, downsample)]
        self.inplanes = planes * 4
        layers += [BottleneckV1b(self.inplanes, planes, 1, dilation) for _ in range(1, num_blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c4 = self.layer4(self.layer3(self.layer2(c1)))
        return c1, c4


# ----------------------------------------------------------------------------------------------
# DeepLabV3+ parts
# ----------------------------------------------------------------------------------------------

def _conv_bn_relu(cin, cout, k=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=dilation if k == 3 else 0, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 -> pointwise 1x1 (no biases) -> BN -> ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                                  nn.Conv2d(cin, cout, 1, bias=False),
                                  nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        return self.body(x)


class _AsppPooling(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        return F.interpolate(self.gap(x), size=x.shape[2:], mode='bilinear', align_corners=True)


class ASPP(nn.Module):
    def __init__(self, cin, ch, rates=(12, 24, 36), dropout=0.2):
        super().__init__()
        self.concurent = nn.ModuleList([_conv_bn_relu(cin, ch)]  # sic: the checkpoint's spelling
                                       + [_conv_bn_relu(cin, ch, 3, r) for r in rates]
                                       + [_AsppPooling(cin, ch)])
        self.project = nn.Sequential(nn.Conv2d(5 * ch, ch, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(),
                                     nn.Dropout(dropout))

    def forward(self, x):
        return self.project(torch.cat([b(x) for b in self.concurent], dim=1))


class _SkipProject(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.skip_project = _conv_bn_relu(cin, cout)

    def forward(self, x):
        return self.skip_project(x)


class _DeepLabHead(nn.Module):
    def __init__(self, cin, ch):
        super().__init__()
        self.block = nn.Sequential(SeparableConv2d(cin, ch), SeparableConv2d(ch, ch), nn.Conv2d(ch, ch, 1))

    def forward(self, x):
        return self.block(x)


class DeepLabV3Plus(nn.Module):
    """`feature_extractor`: backbone + ASPP + skip projection + DeepLab head."""

    def __init__(self, backbone='resnet50', ch=128, dropout=0.2):
        super().__init__()
        self.ch = ch
        # Registration order follows the official state_dict order.
        self.backbone = ResNetV1s(_BLOCKS[backbone])
        self.head = _DeepLabHead(ch + 32, ch)
        self.skip_project = _SkipProject(256, 32)
        self.aspp = ASPP(2048, ch, dropout=dropout)

    def pre_head(self, x):
        """The (ch + 32)-channel [aspp, skip] concatenation at stride 4 (f-BRS-B insertion point)."""
        c1, c4 = self.backbone(x)
        c1 = self.skip_project(c1)
        a = F.interpolate(self.aspp(c4), size=c1.shape[2:], mode='bilinear', align_corners=True)
        return torch.cat([a, c1], dim=1)

    def forward(self, x):
        return self.head(self.pre_head(x))


class SepConvHead(nn.Module):
    def __init__(self, cin, mid, num_outputs=1):
        super().__init__()
        self.layers = nn.Sequential(SeparableConv2d(cin, mid), SeparableConv2d(mid, mid),
                                    nn.Conv2d(mid, num_outputs, 1))

    def forward(self, x):
        return self.layers(x)


class FBRSNet(nn.Module):
    """f-BRS DistMaps + DeepLabV3+ click model. `forward(image, points) -> logits (B,1,H,W)`."""

    def __init__(self, backbone='resnet50', deeplab_ch=128, norm_radius=NORM_RADIUS):
        super().__init__()
        if backbone not in _BLOCKS:
            raise FBRSCheckpointError(f'f-BRS backbone {backbone!r} is not supported (supported: resnet50, resnet101)')
        self.backbone_name = backbone
        self.deeplab_ch = deeplab_ch
        self.norm_radius = norm_radius
        self.rgb_conv = nn.Sequential(nn.Conv2d(5, 8, 1), nn.LeakyReLU(0.2), nn.BatchNorm2d(8), nn.Conv2d(8, 3, 1))
        self.feature_extractor = DeepLabV3Plus(backbone, deeplab_ch, dropout=0.5 if deeplab_ch == 256 else 0.2)
        self.head = SepConvHead(deeplab_ch, deeplab_ch // 2)

    @property
    def num_opt_channels(self):
        """Channels of the f-BRS-B scale/bias (the pre-head concatenation)."""
        return self.deeplab_ch + 32

    def coord_features(self, image, points, valid=None):
        return dist_maps(points, image.shape[2], image.shape[3], self.norm_radius, valid)

    def backbone_features(self, image, coord):
        """Everything up to the f-BRS-B insertion point: (B, ch + 32, H/4, W/4)."""
        x = self.rgb_conv(torch.cat([image, coord], dim=1))
        return self.feature_extractor.pre_head(x)

    def head_logits(self, feats, size):
        """Heads on (possibly scaled) pre-head features, resized to `size` (align_corners=True)."""
        out = self.head(self.feature_extractor.head(feats))
        return F.interpolate(out, size=tuple(size), mode='bilinear', align_corners=True)

    def forward(self, image, points):
        coord = self.coord_features(image, points)
        return self.head_logits(self.backbone_features(image, coord), image.shape[2:])


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------

def _list_keys(keys, n=5):
    keys = list(keys)
    more = f' (+{len(keys) - n} more)' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


def detect_architecture(sd):
    """(backbone, deeplab_ch) from a state dict, by the f-BRS loader's rules.

    Raises FBRSCheckpointError for HRNet / ResNet-34 variants and for files that are not f-BRS.
    """
    sd = {k: v for k, v in sd.items() if isinstance(k, str)}
    if any('feature_extractor.stage2.0.branches' in k for k in sd):
        raise FBRSCheckpointError('f-BRS HRNet checkpoints are not supported; use resnet50_dh128_lvis.pth')
    n = sum(1 for k in sd if 'feature_extractor.backbone' in k and 'num_batches_tracked' not in k)
    if n == 0 or 'feature_extractor.aspp.project.0.weight' not in sd:
        missing = [k for k in ('feature_extractor.backbone.conv1.0.weight', 'feature_extractor.aspp.project.0.weight',
                               'rgb_conv.0.weight', 'head.layers.2.weight') if k not in sd]
        raise FBRSCheckpointError(f'not an f-BRS checkpoint: missing keys {_list_keys(missing)}')
    if n <= 181:
        raise FBRSCheckpointError(f'f-BRS ResNet-34 checkpoints are not supported ({n} backbone keys); '
                                  'use resnet50_dh128_lvis.pth')
    if n <= 276:
        backbone = 'resnet50'
    elif n <= 531:
        backbone = 'resnet101'
    else:
        raise FBRSCheckpointError(f'unrecognised f-BRS backbone with {n} keys; use resnet50_dh128_lvis.pth')
    w = sd['feature_extractor.aspp.project.0.weight']
    if not torch.is_tensor(w) or w.dim() != 4:
        raise FBRSCheckpointError('not an f-BRS checkpoint: feature_extractor.aspp.project.0.weight '
                                  'is not a conv weight')
    return backbone, int(w.shape[0])


def load_fbrs(source, device='cpu'):
    """Build the f-BRS model for a checkpoint (path or state dict) and load it strictly.

    Every entry the model needs must be present with the right shape; otherwise
    FBRSCheckpointError names the offending keys. Entries the model does not use (e.g. a scalar
    `aspp_dropout`) are logged and returned, not rejected (the official loader is non-strict).
    Returns (net in eval mode on `device`, list of ignored keys).
    """
    sd = read_state_dict(source)
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else 'the state dict'
    try:
        backbone, ch = detect_architecture(sd)
    except FBRSCheckpointError as e:
        raise FBRSCheckpointError(f'{where}: {e}') from None
    net = FBRSNet(backbone, ch)
    rep = check_state_dict(net, sd)
    if rep.missing or rep.mismatched:
        rep.unexpected = []
        raise FBRSCheckpointError(f'{where} is not a usable f-BRS checkpoint ({backbone}, {ch} channels): '
                                  f'{rep.summary()}')
    own = net.state_dict()
    net.load_state_dict({k: sd[k] for k in own}, strict=True)
    if rep.unexpected:
        log.warning('f-BRS checkpoint: ignored %d unused entries: %s', len(rep.unexpected),
                    _list_keys(rep.unexpected))
    return net.to(device).eval(), rep.unexpected
