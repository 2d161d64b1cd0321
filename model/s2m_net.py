"""Official MiVOS scribble-to-mask network: DeepLabV3+ on ResNet-50, output stride 16.

Loads `saves/s2m.pth` strictly. Input (B,6,H,W) = [image(3, ImageNet-normalised), previous mask,
positive scribble, negative scribble]; output logits (B,1,H,W).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.resnet import resnet50


def _conv_bn_relu(cin, cout, k=1, dilation=1):
    pad = 0 if k == 1 else dilation
    return [nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ASPPPooling(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(cin, cout))

    def forward(self, x):
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode='bilinear', align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin, rates, cout=256):
        super().__init__()
        branches = [nn.Sequential(*_conv_bn_relu(cin, cout))]
        branches += [nn.Sequential(*_conv_bn_relu(cin, cout, 3, r)) for r in rates]
        branches.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(*_conv_bn_relu(len(branches) * cout, cout), nn.Dropout(0.1))

    def forward(self, x):
        return self.project(torch.cat([b(x) for b in self.convs], 1))


class DeepLabHeadV3Plus(nn.Module):
    def __init__(self, in_channels=2048, low_level_channels=256, num_classes=1, rates=(6, 12, 18)):
        super().__init__()
        self.project = nn.Sequential(*_conv_bn_relu(low_level_channels, 48))
        self.aspp = ASPP(in_channels, rates)
        self.classifier = nn.Sequential(*_conv_bn_relu(304, 256, 3), nn.Conv2d(256, num_classes, 1))

    def forward(self, low_level, out):
        low = self.project(low_level)
        x = F.interpolate(self.aspp(out), size=low.shape[-2:], mode='bilinear', align_corners=False)
        return self.classifier(torch.cat([low, x], 1))     # [low-level, aspp]


class S2MNet(nn.Module):
    """`deeplabv3plus_resnet50(num_classes=1, output_stride=16)` with a 6-channel conv1."""
    checkpoint_kind = 'MiVOS scribble-to-mask (s2m.pth)'

    def __init__(self):
        super().__init__()
        # Output stride 16: layer4 dilated; its first block keeps dilation 1 (torchvision rule).
        self.backbone = resnet50(in_channels=6, replace_stride_with_dilation=(False, False, True))
        self.classifier = DeepLabHeadV3Plus()
        self.eval()      # inference network: BatchNorm always uses running stats

    @torch.no_grad()
    def forward(self, x):
        """x (B,6,H,W) -> logits (B,1,H,W)."""
        size = x.shape[-2:]
        feats = self.backbone(x)
        out = self.classifier(feats[0], feats[3])
        return F.interpolate(out, size=size, mode='bilinear', align_corners=False)


def s2m_input(image, prev_mask, pos, neg):
    """Network input [image (1,3,H,W), prev (B,1,H,W), pos (B,1,H,W), neg (B,1,H,W)] -> (B,6,H,W)."""
    b = prev_mask.shape[0]
    dt = image.dtype
    return torch.cat([image.expand(b, -1, -1, -1), prev_mask.to(dt), pos.to(dt), neg.to(dt)], 1)
