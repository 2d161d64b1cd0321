"""Label-map helpers shared by the store, mask I/O, exports and the CLIs."""
import cv2
import numpy as np


def resize_labels(labels, height, width):
    """Nearest-neighbour (pixel-centre) resize of a uint8 label map to (height, width)."""
    if labels.shape[:2] == (height, width):
        return np.array(labels)
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
