"""Training losses of the bundled propagation network, shared by the trainer
(scripts/train/train_propagation.py) and the online adaptation (inference_core/adaptation.py).

clip_loss is STCN's main-training step on one 3-frame clip: frame 0's mask goes to memory,
frame 1 is segmented and its soft result is encoded into memory, frame 2 is segmented from both;
the loss is a bootstrapped cross-entropy of the soft-aggregated probabilities plus a soft IoU term.
"""
import torch
import torch.nn.functional as F

from model.lite_propagation import dense_readout


def aggregated_log_probs(logits):
    """Per-object logits (K,1,H,W) -> log-probabilities (K+1,H,W) of {bg, objects}, using the same
    soft aggregation as inference (bg = prod(1-p_k), clamp, logit, softmax)."""
    p = torch.sigmoid(logits[:, 0]).clamp(1e-7, 1 - 1e-7)
    bg = torch.prod(1 - p, 0, keepdim=True)
    new = torch.cat([bg, p], 0).clamp(1e-7, 1 - 1e-7)
    return F.log_softmax(torch.log(new) - torch.log1p(-new), 0)


def bootstrapped_ce(logp, labels, top_p=0.15, warm=True):
    """Cross-entropy over the hardest `top_p` pixels (STCN bootstrapping; all pixels when warm)."""
    ce = F.nll_loss(logp.unsqueeze(0), labels.unsqueeze(0), reduction='none').flatten()
    if warm:
        return ce.mean()
    k = max(1, int(ce.numel() * top_p))
    return ce.topk(k).values.mean()


def soft_iou_loss(prob, target):
    """1 - soft IoU per map, averaged: prob, target (N,H,W)."""
    inter = (prob * target).flatten(1).sum(1)
    union = (prob + target - prob * target).flatten(1).sum(1)
    return (1 - (inter + 1) / (union + 1)).mean()


def perturb_mask(m, rng, max_px=12):
    """A previous-frame mask as a propagation would have it wrong: dilated or eroded by up to
    `max_px` pixels and shifted by up to `max_px` pixels. m: (K,1,H,W) float in [0, 1]."""
    r = int(rng.integers(1, max_px // 2 + 1))
    if rng.random() < 0.5:
        m = F.max_pool2d(m, 2 * r + 1, stride=1, padding=r)               # dilate
    else:
        m = 1 - F.max_pool2d(1 - m, 2 * r + 1, stride=1, padding=r)       # erode
    dy, dx = (int(v) for v in rng.integers(-max_px, max_px + 1, 2))
    return torch.roll(m, (dy, dx), (-2, -1))


def mean_iou(pred, labels, k):
    """Mean over objects 1..k of the IoU of two label maps (util.metrics.jaccard on the tensors'
    device: 1 where an object is in neither)."""
    ids = torch.arange(1, k + 1, device=labels.device).view(k, 1, 1)
    p, g = pred.unsqueeze(0) == ids, labels.unsqueeze(0) == ids
    inter = (p & g).flatten(1).sum(1).float()
    union = (p | g).flatten(1).sum(1).float()
    return float(torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean())


def clip_loss(net, feats, labels, k, it, warm_iters, rng=None, p_noise=0.5):
    """Loss of one 3-frame clip. feats: (f2, f4, f16) each (3, C, h, w); labels (3, H, W) int64.

    The decoder also gets the previous frame's mask (the engine's `prev_mask`): frame 0's ground
    truth (perturbed with probability `p_noise`) for frame 1, frame 1's prediction for frame 2.
    """
    f2, f4, f16 = feats
    keys, qv = net.keys_from_features(f16)                         # (3,Ck,h,w), (3,Cq,h,w)
    size = labels.shape[-2:]
    onehot0 = torch.stack([(labels[0] == j + 1).float() for j in range(k)]).unsqueeze(1)
    proc_hw = (f16.shape[-2] * 16, f16.shape[-1] * 16)
    v0 = net.value_from_features(f16[:1], onehot0, proc_hw)       # (k,Cv,1,h,w)
    mk, mv = keys[0:1].unsqueeze(2), v0
    loss, stats = 0.0, {}
    warm = it < warm_iters
    prev = onehot0
    if rng is not None and rng.random() < p_noise:
        prev = perturb_mask(onehot0, rng)
    for t in (1, 2):
        # all objects share the affinity: expand the single key memory over the k objects
        readout = dense_readout(mk.expand(k, -1, -1, -1, -1), mv, keys[t:t + 1].expand(k, -1, -1, -1))
        logits = net.decode(readout, qv[t:t + 1], f4[t:t + 1], f2[t:t + 1], size, prev_mask=prev)
        logp = net_logp = aggregated_log_probs(logits)
        ce = bootstrapped_ce(net_logp, labels[t], warm=warm)
        prob = logp.exp()
        tgt = torch.stack([(labels[t] == j + 1).float() for j in range(k)])
        loss = loss + ce + 0.5 * soft_iou_loss(prob[1:], tgt)
        with torch.no_grad():
            stats[f'iou{t}'] = mean_iou(prob.argmax(0), labels[t], k)
        if t == 1:
            prev = prob[1:].unsqueeze(1).detach()
            v1 = net.value_from_features(f16[1:2], prob[1:].unsqueeze(1), proc_hw)
            mk = torch.cat([mk, keys[1:2].unsqueeze(2)], 2)
            mv = torch.cat([mv, v1], 2)
    return loss, stats
