"""Official MiVOS-STCN propagation network (loads `saves/stcn.pth` strictly, no renaming).

Key encoder: torchvision ResNet-50 up to layer3 (first stage named `res2`), key projection
(3x3 conv 1024->64) and key compression (3x3 conv 1024->512, the query value `qv16`).
Value encoder: MiVOS's ResNet-18 with biases on every conv, input [RGB, mask, others], fused with
the key f16 (ResBlock, CBAM, ResBlock). Memory read: L2 affinity with top-k softmax
(`model.memory_reader`). Decoder: ResBlock + two upsample stages + 3x3 pred conv, x4 bilinear.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model import memory_reader
from model.modules import FeatureFusionBlock, ResBlock, UpsampleBlock
from model.resnet import resnet18, resnet50


class KeyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        r = resnet50(num_layers=3)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.res2 = r.layer1      # 1/4, 256
        self.layer2 = r.layer2    # 1/8, 512
        self.layer3 = r.layer3    # 1/16, 1024

    def forward(self, f):
        x = self.maxpool(self.relu(self.bn1(self.conv1(f))))
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4


class ValueEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        r = resnet18(in_channels=5, conv_bias=True, num_layers=3)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1 = r.layer1    # 1/4, 64
        self.layer2 = r.layer2    # 1/8, 128
        self.layer3 = r.layer3    # 1/16, 256
        self.fuser = FeatureFusionBlock(1024 + 256, 512)

    def forward(self, image, key_f16, mask, other_masks):
        x = torch.cat([image, mask, other_masks], 1)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fuser(x, key_f16)


class KeyProjection(nn.Module):
    def __init__(self, indim, keydim):
        super().__init__()
        self.key_proj = nn.Conv2d(indim, keydim, kernel_size=3, padding=1)

    def forward(self, x):
        return self.key_proj(x)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.compress = ResBlock(1024, 512)
        self.up_16_8 = UpsampleBlock(512, 512, 256)   # 1/16 -> 1/8
        self.up_8_4 = UpsampleBlock(256, 256, 256)    # 1/8 -> 1/4
        self.pred = nn.Conv2d(256, 1, kernel_size=3, padding=1)

    def forward(self, f16, f8, f4):
        x = self.compress(f16)
        x = self.up_16_8(f8, x)
        x = self.up_8_4(f4, x)
        x = self.pred(F.relu(x))
        return F.interpolate(x, scale_factor=4, mode='bilinear', align_corners=False)


def others_channel(masks):
    """(K,1,H,W) masks -> (K,1,H,W) where entry i is the sum of all masks j != i (zeros if K == 1)."""
    if masks.shape[0] == 1:
        return torch.zeros_like(masks)
    # Sum of the others, written as an explicit sum so it is exact for hard masks.
    return torch.stack([masks[[j for j in range(masks.shape[0]) if j != i]].sum(0)
                        for i in range(masks.shape[0])], 0)


class PropagationNetwork(nn.Module):
    checkpoint_kind = 'MiVOS-STCN propagation (stcn.pth)'

    def __init__(self, top_k=20, max_bytes=memory_reader.DEFAULT_MAX_BYTES):
        super().__init__()
        self.value_encoder = ValueEncoder()
        self.key_encoder = KeyEncoder()
        self.key_proj = KeyProjection(1024, keydim=64)
        self.key_comp = nn.Conv2d(1024, 512, kernel_size=3, padding=1)
        self.decoder = Decoder()
        self.top_k = top_k
        self.max_bytes = max_bytes     # memory budget of one chunk of the memory read
        self.eval()                    # inference network: BatchNorm always uses running stats

    @torch.no_grad()
    def encode_key(self, frame):
        """frame (B,3,H,W) -> k16 (B,64,h,w), qv16 = f16_thin (B,512,h,w), f16, f8, f4."""
        f16, f8, f4 = self.key_encoder(frame)
        return self.key_proj(f16), self.key_comp(f16), f16, f8, f4

    @torch.no_grad()
    def encode_value(self, frame, f16, masks):
        """frame (1,3,H,W), f16 (1,1024,h,w), masks (K,1,H,W) -> v16 (K,512,1,h,w)."""
        k = masks.shape[0]
        masks = masks.to(frame.dtype)
        v16 = self.value_encoder(frame.expand(k, -1, -1, -1), f16.expand(k, -1, -1, -1),
                                 masks, others_channel(masks))
        return v16.unsqueeze(2)

    @torch.no_grad()
    def read_memory(self, mk16, mv16, qk16):
        """Top-k memory readout (K,512,h,w) for query key qk16 (1,64,h,w)."""
        return memory_reader.memory_readout(mk16, mv16, qk16, self.top_k, self.max_bytes)

    @torch.no_grad()
    def decode(self, readout, qv16, qf8, qf4):
        """Decoder logits (K,1,H,W) from readouts (K,512,h,w) and the query features."""
        k = readout.shape[0]
        x = torch.cat([readout.to(qv16.dtype), qv16.expand(k, -1, -1, -1)], 1)
        return self.decoder(x, qf8, qf4)

    @torch.no_grad()
    def segment_with_query(self, mk16, mv16, qf8, qf4, qk16, qv16):
        """Memory (mk16 (1,64,T,h,w), mv16 (K,512,T,h,w)) + query features -> prob (K,1,H,W)."""
        return torch.sigmoid(self.decode(self.read_memory(mk16, mv16, qk16), qv16, qf8, qf4))

    @torch.no_grad()
    def get_attention(self, mk16, pos_mask, neg_mask, qk16):
        """Fusion attention (K+1,2,H,W): pos/neg mask differences at the interacted frame
        (keys mk16 (1,64,1,h,w)) carried to the query frame through a full-softmax affinity."""
        b, _, h, w = pos_mask.shape
        nh, nw = h // 16, w // 16
        pos = F.interpolate(pos_mask.float(), size=(nh, nw), mode='area').reshape(b, nh * nw)
        neg = F.interpolate(neg_mask.float(), size=(nh, nw), mode='area').reshape(b, nh * nw)
        maps = memory_reader.attention_readout(mk16, qk16, torch.cat([pos, neg], 0), self.max_bytes)
        attn = torch.stack([maps[:b], maps[b:]], 1).reshape(b, 2, nh, nw)
        return F.interpolate(attn, size=(h, w), mode='bilinear', align_corners=False)
