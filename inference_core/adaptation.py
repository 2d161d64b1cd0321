"""Online adaptation: fine-tune the bundled propagation network to one video before propagating.

The OSVOS / OnAVOS idea applied to the STCN-style lite network. The annotated frames are the only
ground truth of the video, so some seconds of training on them teach the small network what
this video's object looks like against this video's background: see-through parts, look-alike
distractors that were background on the annotated frame. Each step is the trainer's own loss
(model.propagation_loss.clip_loss) on a 3-frame clip synthesised from one annotated frame: the
frame itself or a warped copy goes to memory, two random affine + elastic warps of it are
segmented (the static-image clips of STCN's first training stage).

Only the heads are trained (key/value encoders, decoder); the backbone stays frozen, so its maps
of the synthetic frames are computed once. The base network is never modified: the result is a
copy, which PropagationEngine.set_propagation_net swaps in (Session.adapt does both).
"""
import copy

import cv2
import numpy as np
import torch

from util.augment import warped_clip
from util.errors import UserError

# 100 / 200 / 300 steps: held-out J&F with --flip 84.07 / 84.76 / 85.10, means over 3 seeds
# (scripts/train/README.md); 300 steps take ~40 s for one object on a 2-core CPU.
DEFAULT_ITERS = 300
DEFAULT_LR = 1e-5
DEFAULT_CLIPS = 8


def supports_adaptation(net):
    """True for propagation networks with the lite training interface (the bundled ones)."""
    return all(hasattr(net, a) for a in ('keys_from_features', 'value_from_features', 'decode',
                                          'trainable_parameters', 'proc_short'))


def _resize_example(image, labels, size):
    h, w = size
    img = cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_AREA)
    lab = cv2.resize(np.ascontiguousarray(labels, dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return img, lab


def synthesise_clips(examples, size, n_clips, rng):
    """3-frame clips from annotated frames: [(frames uint8 (3,h,w,3), labels int64 (3,h,w))].

    examples: [(image uint8 (H,W,3), labels (H,W) ids 0..K)], resized to `size`. Clips take the
    examples in turn; every other clip keeps the unwarped frame as its memory frame (as the
    annotated frame is in memory at run time), the rest warp all three frames.
    """
    small = [_resize_example(img, lab, size) for img, lab in examples]
    clips = []
    for c in range(n_clips):
        img, lab = small[c % len(small)]
        frames, labels = warped_clip(img, lab, rng, keep_first=(c // len(small)) % 2 == 0)
        clips.append((frames, torch.from_numpy(labels.astype(np.int64))))
    return clips


def adapt_propagation(net, examples, iters=DEFAULT_ITERS, lr=DEFAULT_LR, clips=DEFAULT_CLIPS, seed=0,
                      progress=None, should_cancel=None):
    """Fine-tune a copy of the lite propagation network `net` on annotated frames.

    examples: [(image uint8 (H,W,3), labels (H,W) integer ids 0..K)] with at least one object
    pixel in total. Returns the adapted copy in eval mode, or None when `should_cancel()` became
    true. progress(done, total) is called after each step. Deterministic for a given seed.
    """
    if not supports_adaptation(net):
        raise UserError('online adaptation needs the bundled propagation network '
                        '(the official MiVOS network cannot be adapted)')
    if not examples:
        raise UserError('online adaptation needs at least one annotated frame')
    if int(iters) < 1:
        raise UserError(f'adaptation steps must be >= 1, got {iters}')
    k = max(int(np.max(lab)) for _, lab in examples)
    if k < 1:
        raise UserError('online adaptation needs a mask with at least one object on the annotated frames')
    # Autograd must work even when the caller runs under torch.inference_mode.
    with torch.inference_mode(False), torch.enable_grad():
        return _adapt(net, examples, k, iters, lr, clips, seed, progress, should_cancel)


def _adapt(net, examples, k, iters, lr, clips, seed, progress, should_cancel):
    from model.lite_propagation import backbone_maps, proc_size
    from model.propagation_loss import clip_loss
    device = next(net.parameters()).device
    rng = np.random.default_rng(seed)
    size = proc_size(*examples[0][0].shape[:2], net.proc_short)
    clip_data = []
    for frames, labels in synthesise_clips(examples, size, max(int(clips), len(examples)), rng):
        clip_data.append((backbone_maps(net.backbone, frames), labels.to(device)))
        if should_cancel is not None and should_cancel():
            return None

    # The frozen backbone is shared with the base network, not copied.
    adapted = copy.deepcopy(net, memo={id(net.backbone): net.backbone})
    params = adapted.trainable_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    adapted.train()
    try:
        for i in range(int(iters)):
            if should_cancel is not None and should_cancel():
                return None
            feats, labels = clip_data[i % len(clip_data)]
            # warm_iters=0: bootstrapped CE on the hardest pixels, as late in training
            loss, _ = clip_loss(adapted, feats, labels, k, it=i, warm_iters=0, rng=rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if progress is not None:
                progress(i + 1, int(iters))
    finally:
        adapted.eval()
        for p in params:
            p.requires_grad_(False)
    return adapted
