"""Bundled scribble/click-to-mask network on the frozen EfficientNet-Lite0 backbone.

forward(x (B,6,H,W) = [ImageNet-normalised image(3), prev_mask(1), pos(1), neg(1)]) -> logits (B,1,H,W).

The image goes through the same frozen ImageNet backbone as the propagation net (at the same
processing size, short side 240); the three guidance maps go through a small conv encoder whose
features are fused with the image features at strides 16, 4 and 2. Positive/negative maps are
max-pooled (not averaged) when shrunk, so 1-pixel scribbles and small click disks survive.
Scribbles and clicks (small disks) use the same inputs.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.efficientnet_lite import from_imagenet_norm
from model.lite_propagation import LiteBackbone, proc_size, resize_to
from model.modules import ResBlock


class DilatedResBlock(nn.Module):
    def __init__(self, ch, dilation):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def shrink_guidance(g, size):
    """(B,3,H,W) [prev, pos, neg] -> size: prev area-averaged, scribbles max-pooled."""
    if tuple(g.shape[-2:]) == tuple(size):
        return g
    prev = F.adaptive_avg_pool2d(g[:, :1], size)
    scr = F.adaptive_max_pool2d(g[:, 1:], size)
    return torch.cat([prev, scr], 1)


class LiteInteractionNet(nn.Module):
    def __init__(self, variant='lite0', pretrained=True, proc_short=240):
        super().__init__()
        self.backbone = LiteBackbone(variant, pretrained)
        ch = self.backbone.channels
        self.proc_short = proc_short
        self.g2 = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True),
                                nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True))
        self.g4 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(inplace=True))
        self.g8 = nn.Sequential(nn.Conv2d(32, 48, 3, 2, 1), nn.ReLU(inplace=True))
        self.g16 = nn.Sequential(nn.Conv2d(48, 64, 3, 2, 1), nn.ReLU(inplace=True))
        self.fuse16 = ResBlock(ch[16] + 64, 128)
        self.ctx1 = DilatedResBlock(128, 2)
        self.ctx2 = DilatedResBlock(128, 4)
        self.skip4 = nn.Conv2d(ch[4] + 32, 48, 3, padding=1)
        self.up4 = nn.Conv2d(128, 48, 1)
        self.block4 = ResBlock(48, 48)
        self.skip2 = nn.Conv2d(ch[2] + 16, 16, 3, padding=1)
        self.up2 = nn.Conv2d(48, 16, 1)
        self.refine2 = nn.Conv2d(16, 16, 3, padding=1)
        self.pred = nn.Conv2d(16, 1, 3, padding=1)

    def head(self, f2, f4, f16, guide):
        """Backbone maps (processing size) + guidance (B,3,h,w) -> logits at stride 2 of the processing size."""
        b = guide.shape[0]
        g2 = self.g2(shrink_guidance(guide, f2.shape[-2:]))
        g4 = self.g4(g2)
        g16 = self.g16(self.g8(g4))
        g16 = resize_to(g16, f16.shape[-2:])
        x = self.fuse16(torch.cat([f16.expand(b, -1, -1, -1), g16], 1))
        x = self.ctx2(self.ctx1(x))
        x = self.skip4(torch.cat([f4.expand(b, -1, -1, -1), resize_to(g4, f4.shape[-2:])], 1)) \
            + resize_to(self.up4(x), f4.shape[-2:])
        x = self.block4(x)
        x = F.relu(self.skip2(torch.cat([f2.expand(b, -1, -1, -1), g2], 1))
                   + resize_to(self.up2(F.relu(x)), f2.shape[-2:]))
        x = F.relu(self.refine2(x))
        return self.pred(x)

    def forward(self, x):
        h, w = x.shape[-2:]
        ps = proc_size(h, w, self.proc_short)
        img = from_imagenet_norm(resize_to(x[:, :3], ps))
        f2, f4, _, f16 = self.backbone(img)
        logits = self.head(f2, f4, f16, x[:, 3:6])
        return resize_to(logits, (h, w))

    def trainable_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith('backbone.')]

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()
        return self
