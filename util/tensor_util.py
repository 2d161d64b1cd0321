"""Image tensors as the networks expect them."""
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_frames(frames):
    """uint8 RGB (H,W,3) or (T,H,W,3) numpy -> float32 tensor (1 or T,3,H,W), ImageNet-normalised.

    Same arithmetic as MiVOS `images_to_torch` (x/255 then (x-mean)/std with a true division),
    which the golden fixtures reproduce bit-exactly.
    """
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # read-only views (memory-mapped store); torch wants writable memory
        arr = arr.copy()
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def argmax0(x):
    """Index of the largest value along dim 0 (the first one on ties, like torch.argmax), as a
    tensor; max(dim=0).indices is >10x faster than torch.argmax(dim=0) on the CPU for
    (C, H, W) maps."""
    return x.max(dim=0).indices
