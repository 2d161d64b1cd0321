"""Bundled scribble/click-to-mask network on the frozen EfficientNet-Lite0 backbone.

forward(x (B,6,H,W) = [ImageNet-normalised image(3), prev_mask(1), pos(1), neg(1)]) -> logits (B,1,H,W).

The image goes through the same frozen ImageNet backbone as the propagation net (at the same
processing size, short side 240); the three guidance maps go through a small conv encoder whose
features are fused with the image features at strides 16, 4 and 2. Positive/negative maps are
max-pooled (not averaged) when shrunk, so 1-pixel scribbles and small click disks survive.
Scribbles and clicks (small disks) use the same inputs.

Test-time scales: the network is trained at one processing size (short side 240); the shipped
configuration (`TEST_SCALES`, used by model.lite_networks.build / load_bundled) runs it at short
sides 208 and 272 and averages the logits (`proc_short` + `extra_scales`). On the held-out
sequences that lifts J from the DAVIS robot's first scribble on frame 0 from 84.7 to 85.6 and
helps a little on every other measure (scripts/train/README.md), for about 1.5x the time of one
size (81-91 instead of 56-60 ms per scribble through the Session at 480p on a 2-core CPU).

Edge refinement (`edge_refine`, on in the shipped configuration, inference only): the logits,
predicted at stride 2 of a processing size well below the frame's and upsampled, have smooth
boundaries that ignore the image's edges; a colour guided filter (model/guided_filter.py) fits the
mask to the frame's colours near its boundary. It lifts the DAVIS robot's first-scribble J on
the selection videos from 81.4 to 83.2 for ~5-15 ms per interaction at 480p (docs/MODELS.md).

Post-processing (`keep_connected`, on by default): connected regions of the predicted mask that
touch neither a positive scribble/click nor the previous mask are dropped. The small network
has a saliency bias (it sometimes also fires on another salient thing far from the strokes);
a user marks every part they want, so such islands are nearly always wrong.
"""
import cv2
import numpy as np
from scipy import ndimage
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.efficientnet_lite import from_imagenet_norm
from model.guided_filter import EdgeRefine
from model.lite_propagation import LiteBackbone, proc_size, resize_to
from model.modules import ResBlock
from util.tensor_util import IMAGENET_MEAN, IMAGENET_STD


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


LIMIT_FRAC = 0.25
TEST_SCALES = (208, 272)     # short sides the shipped configuration runs at (logits averaged)


def drop_unmarked_regions(logits, guide, min_dist=10.0):
    """logits (B,1,H,W); guide (B,2,H,W) = [prev mask, positive marks]. Regions of logits > 0 that
    touch no positive mark and no previous mask, and lie far from the ones that do (farther than
    a quarter of the size of the marked object, and than min_dist pixels), get logit -10. Items
    without any mark are unchanged."""
    out = logits.clone()
    fg = (logits[:, 0] > 0).cpu().numpy().astype(np.uint8)
    marks = (guide > 0.5).any(1).cpu().numpy()
    for b in range(fg.shape[0]):
        if not marks[b].any() or not fg[b].any():
            continue
        n, lab = cv2.connectedComponents(fg[b], connectivity=8)
        if n <= 2:
            continue
        keep = np.zeros(n, bool)
        keep[np.unique(lab[marks[b] & (fg[b] > 0)])] = True
        keep[0] = False
        anchor = keep[lab] | marks[b]
        # distance of every pixel to the marked object (or the marks themselves)
        dist = cv2.distanceTransform((~anchor).astype(np.uint8), cv2.DIST_L2, 3)
        limit = max(min_dist, LIMIT_FRAC * np.sqrt(max(1, int(keep[lab].sum()))))
        near = np.asarray(ndimage.minimum(dist, labels=lab, index=np.arange(n))) <= limit
        drop_ids = ~(keep | near)
        drop_ids[0] = False   # background stays as it is
        if drop_ids.any():
            out[b, 0][torch.from_numpy(drop_ids[lab]).to(logits.device)] = -10.0
    return out


class LiteInteractionNet(nn.Module):
    def __init__(self, variant='lite0', pretrained=True, proc_short=240, keep_connected=True,
                 extra_scales=(), edge_refine=False):
        super().__init__()
        self.keep_connected = keep_connected
        # guided-filter refinement of the upsampled mask along the frame's edges (inference only)
        self.edge_refine = EdgeRefine() if edge_refine else None
        # test-time multi-scale: also run at these short sides and average the logits
        self.extra_scales = tuple(extra_scales)
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
        """x (B,6,H,W) = [image, prev, pos, neg] -> logits (B,1,H,W)."""
        return self.segment(x[:, :3], x[:, 3:6])

    def processing_sizes(self, h, w, shorts=None):
        """The processing sizes of an (h, w) input, base size first (`shorts`: these short sides
        instead of the configured ones)."""
        sizes = []
        for short in (self.proc_short, *self.extra_scales) if shorts is None else shorts:
            ps = proc_size(h, w, short)
            if ps not in sizes:       # small frames are never upscaled: sizes can coincide
                sizes.append(ps)
        return sizes

    def image_features(self, image, shorts=None):
        """Backbone maps (f2, f4, f16) of `image` (1 or B,3,H,W) at each processing size (or at
        the short sides `shorts`). They depend on the image only: a caller may keep them for the
        next strokes on the same frame (inference_core/interaction.py does) and pass them to
        `segment`, which segments at the sizes they were computed at."""
        feats = []
        for ps in self.processing_sizes(*image.shape[-2:], shorts):
            f2, f4, _, f16 = self.backbone(from_imagenet_norm(resize_to(image, ps)))
            feats.append((f2, f4, f16))
        return feats

    def segment(self, image, guidance, features=None):
        """image (1 or B,3,H,W), guidance (B,3,H,W) = [prev, pos, neg] -> logits (B,1,H,W).
        With one image for B guidance maps (the objects of a frame) the backbone runs once per
        processing size for all of them: only the small head runs per object. `features`: the
        image's `image_features`, when the caller kept them."""
        h, w = guidance.shape[-2:]
        if features is None:
            features = self.image_features(image)
        logits = guide = None
        for f2, f4, f16 in features:
            g = shrink_guidance(guidance, f2.shape[-2:])       # the head's own size: used as is
            out = self.head(f2, f4, f16, g)
            if logits is None:
                logits, guide = out, g
            else:
                logits = logits + resize_to(out, logits.shape[-2:])
        logits = logits / len(features)
        if self.keep_connected and not self.training:
            # at the head's resolution (stride 2 of the first processing size), with that size's
            # shrunk guidance: the same regions, at 1/16 of the cost of the full-resolution analysis
            logits = drop_unmarked_regions(logits, guide[:, :2], min_dist=10.0 * logits.shape[-1] / w)
        logits = resize_to(logits, (h, w))
        if self.edge_refine is not None and not self.training:
            logits = self.edge_refine(image, logits, colour=(IMAGENET_STD, IMAGENET_MEAN), inplace=True)
        return logits

    def trainable_parameters(self, backbone_tail=False):
        """The heads' parameters (+ the backbone's stride-16 stages with backbone_tail=True)."""
        own = [p for n, p in self.named_parameters() if not n.startswith('backbone.')]
        return own + (self.backbone.tail_parameters() if backbone_tail else [])
