"""A FrameStore seen through other label maps: export labels computed elsewhere through the
same export code as the store's own.

scripts.propagate computes each frame's labels at the original resolution from the upsampled
probabilities (sharper than the store's processing-size labels resized by nearest neighbour);
its COCO / YouTube-VIS / soft / overlay exports must show those same labels. util.export reads
labels only through `mask_at_original(t)`, so this view replaces that one method and passes
everything else (frames, objects, names, timestamps, source) through to the store.
"""
import numpy as np


class LabelView:
    def __init__(self, store, labels_at):
        self._store = store
        self._labels_at = labels_at

    def mask_at_original(self, t):
        labels = np.asarray(self._labels_at(t))
        want = (self._store.orig_height, self._store.orig_width)
        if labels.shape != want or labels.dtype != np.uint8:
            raise ValueError(f'labels of frame {t} are {labels.dtype} {labels.shape}, '
                             f'expected uint8 {want}')
        return labels

    def __getattr__(self, name):
        return getattr(self._store, name)
