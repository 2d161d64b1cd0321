"""Generated frames shared by the engine's quality tests."""
import cv2
import numpy as np


def textured_background(rng, h, w):
    """(h, w, 3) uint8: smooth random colour blobs (a cubic upscale of 1/24-size noise), so
    every position has features to match but no object stands out."""
    bg = cv2.resize(rng.random((h // 24, w // 24, 3)).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    return np.clip(bg * 160 + 40, 0, 255).astype(np.uint8)
