"""Bundled fusion network: decides, per pixel, between the previous round's mask of a frame and
the new propagation result (MiVOS fusion; same inputs as the official FusionNet).

forward(im (1|B,3,H,W), seg1 (B,1,H,W) previous prob, seg2 (B,1,H,W) new prob,
        attn (B,2,H,W) pos/neg attention, time (1|B,2) = [nc, nr]) -> logits (B,1,H,W)

The official FusionNet runs five 3x3 convs at full resolution (~30 GFLOP per frame at 480p: about
a second on a laptop CPU). This one computes a gate alpha and a correction at a quarter of the
resolution and applies them at full resolution:

    p = alpha * seg1 + (1 - alpha) * seg2;   logits = logit(p) + delta

so mask boundaries still come from the full-resolution inputs. alpha starts near 0 and delta at
0, so an untrained net returns the new propagation result (MiVOS without fusion).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE = 4


class LiteFusionNet(nn.Module):
    def __init__(self, ch=32):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(9, ch, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1))
        self.conv3 = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=2, dilation=2), nn.ReLU(),
                                   nn.Conv2d(ch, ch, 3, padding=1))
        self.final_conv = nn.Conv2d(ch, 2, 3, padding=1)       # [gate logit, correction]
        nn.init.zeros_(self.final_conv.weight)
        with torch.no_grad():
            self.final_conv.bias.copy_(torch.tensor([-6.0, 0.0]))

    def forward(self, im, seg1, seg2, attn, time):
        b = seg1.shape[0]
        h, w = seg1.shape[-2:]
        dt = seg2.dtype if seg2.is_floating_point() else torch.float32
        lh, lw = max(1, h // SCALE), max(1, w // SCALE)
        small = lambda t: F.adaptive_avg_pool2d(t.to(dt), (lh, lw))   # noqa: E731
        time = torch.as_tensor(time, dtype=dt, device=seg1.device).reshape(-1, 2, 1, 1)
        x = torch.cat([small(im).expand(b, -1, -1, -1), small(seg1), small(seg2), small(attn),
                       time.expand(b, 2, lh, lw)], 1)
        x = self.conv1(x)
        x = F.relu(x + self.conv2(x))
        x = F.relu(x + self.conv3(x))
        out = F.interpolate(self.final_conv(x), size=(h, w), mode='bilinear', align_corners=False)
        alpha = torch.sigmoid(out[:, :1])
        p = (alpha * seg1.to(dt) + (1 - alpha) * seg2.to(dt)).clamp(1e-6, 1 - 1e-6)
        return torch.log(p) - torch.log1p(-p) + out[:, 1:]
