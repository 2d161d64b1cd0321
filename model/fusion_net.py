"""Official MiVOS fusion network (loads `saves/fusion_stcn.pth` strictly)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class FusionNet(nn.Module):
    checkpoint_kind = 'MiVOS-STCN fusion (fusion_stcn.pth)'

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(9, 32, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
        self.conv3 = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
        self.final_conv = nn.Conv2d(32, 1, 3, padding=1)
        self.eval()

    @torch.no_grad()
    def forward(self, im, seg1, seg2, attn, time):
        """Logits (B,1,H,W) for B objects at once (B = 1 in MiVOS).

        im (1 or B,3,H,W) target frame; seg1 (B,1,H,W) its previous probability (prev round);
        seg2 (B,1,H,W) the new propagation result; attn (B,2,H,W) the object's pos/neg attention;
        time (1 or B, 2) = [nc, nr] (distance to the other interacted frame, to the current one).
        """
        b = seg1.shape[0]
        h, w = im.shape[-2:]
        dt = im.dtype
        time = torch.as_tensor(time, dtype=dt, device=im.device).reshape(-1, 2, 1, 1)
        x = torch.cat([im.expand(b, -1, -1, -1), seg1.to(dt), seg2.to(dt), attn.to(dt),
                       time.expand(b, 2, h, w)], 1)
        x = self.conv1(x)
        x = F.relu(x + self.conv2(x))
        x = F.relu(x + self.conv3(x))
        return self.final_conv(x)
