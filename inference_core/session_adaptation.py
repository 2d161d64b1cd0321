"""Online adaptation of a Session's propagation network to its video
(inference_core/adaptation.py): which copy the engine propagates with, what it was adapted to."""
import numpy as np

from inference_core.adaptation import adapt_propagation, supports_adaptation
from util.errors import UserError


class Adaptation:
    """The engine's propagation network: the shipped one, or a copy adapted to `frames`."""

    def __init__(self, engine, shipped):
        self.engine = engine
        self.shipped = shipped
        self.frames = ()         # the frames the network was adapted to (empty: shipped)

    @property
    def supported(self):
        """Whether the propagation network can be adapted (the bundled one can)."""
        return supports_adaptation(self.shipped)

    def check(self):
        if not self.supported:
            raise UserError('online adaptation needs the bundled networks '
                            '(the official MiVOS propagation network cannot be adapted)')

    def examples(self, store, frames, labels=None):
        """[(image, labels)] of `frames` that hold object pixels: their masks in `store`, or
        `labels` {frame: (H, W) labels}. UserError when none does."""
        out = []
        for t in frames:
            lab = store.get_mask(t) if labels is None else np.asarray(labels[t])
            if lab.shape != (store.height, store.width):
                raise UserError(f'label map is {lab.shape[-1]}x{lab.shape[0]}, the frame is '
                                f'{store.width}x{store.height}')
            if lab.any():
                out.append((np.array(store.frame(t)), lab.astype(np.uint8, copy=False)))
        if not out:
            raise UserError('the annotated frames have no object pixels: nothing to adapt to')
        return out

    def train(self, examples, iters, seed, progress=None, should_cancel=None):
        """A copy of the shipped network fine-tuned on [(image, labels)], or None (cancelled)."""
        return adapt_propagation(self.shipped, examples, iters=iters, seed=seed,
                                 progress=progress, should_cancel=should_cancel)

    def use(self, net, frames):
        """Propagate with `net`, adapted to `frames` (the memory's keys are recomputed)."""
        self.engine.set_propagation_net(net)
        self.frames = tuple(frames)

    def reset(self):
        """Propagate with the shipped network again."""
        if self.frames:
            self.engine.set_propagation_net(self.shipped)
            self.frames = ()
