"""Session mixin: online adaptation of the bundled propagation network to this video
(inference_core/adaptation.py)."""
import numpy as np

from inference_core.adaptation import DEFAULT_ITERS, adapt_propagation, supports_adaptation
from util.errors import UserError


class AdaptationMixin:
    @property
    def can_adapt(self):
        """Whether the propagation network can be adapted (the bundled one can)."""
        return supports_adaptation(self.networks.propagation)

    @property
    def adapted_frames(self):
        """The frames the propagation network is adapted to (empty: the shipped network)."""
        return self._adapted

    def adapt(self, frames=None, iters=DEFAULT_ITERS, progress=None, should_cancel=None, seed=0):
        """Fine-tune a copy of the bundled propagation network on the current masks of `frames`
        (default: the interacted frames) and propagate with it from now on
        (inference_core/adaptation.py). Tens of seconds on a CPU; it helps most where the object
        has see-through parts or look-alikes in the background. Adapting again starts from the
        shipped network. Returns True, or False when cancelled (nothing changed)."""
        with self._exclusive('adapt the network'):
            if not self.can_adapt:
                raise UserError('online adaptation needs the bundled networks '
                                '(the official MiVOS propagation network cannot be adapted)')
            if frames is None:
                frames = self.interacted_frames
            frames = sorted({self._check_frame(t) for t in frames})
            if not frames:
                raise UserError('nothing to adapt to: draw or load a mask on a frame first')
            examples = [(np.array(self.store.frame(t)), self.store.get_mask(t)) for t in frames]
            examples = [(img, lab) for img, lab in examples if lab.any()]
            if not examples:
                raise UserError('the annotated frames have no object pixels: nothing to adapt to')
            net = adapt_propagation(self.networks.propagation, examples, iters=iters, seed=seed,
                                    progress=progress, should_cancel=should_cancel)
            if net is None:
                return False
            self.engine.set_propagation_net(net)
            self._adapted = tuple(frames)
            return True

    def reset_adaptation(self):
        """Propagate with the shipped network again."""
        with self._exclusive('reset the adaptation'):
            if self._adapted:
                self.engine.set_propagation_net(self.networks.propagation)
                self._adapted = ()

    def use_adapted_network(self, net, frames):
        """Propagate with `net`, a copy of the propagation network adapted to the masks of
        `frames` outside this session (inference_core.adaptation.adapt_propagation; e.g. one
        copy that the two sessions of a `scripts.propagate --flip --adapt` run share). What
        `adapt` does after its training: the memory's keys are recomputed, `adapted_frames`
        becomes `frames` and `reset_adaptation` goes back to the shipped network."""
        frames = sorted({self._check_frame(t) for t in frames})
        if not frames:
            raise UserError('use_adapted_network needs the frames the network was adapted to')
        with self._exclusive('adapt the network'):
            if not self.can_adapt:
                raise UserError('online adaptation needs the bundled networks '
                                '(the official MiVOS propagation network cannot be adapted)')
            self.engine.set_propagation_net(net)
            self._adapted = tuple(frames)
