"""Turn independent per-object probabilities into a distribution over {background, objects}."""
import torch
import torch.nn.functional as F


def _softmax_with_bg(bg, prob, keep_bg, hard):
    new_prob = torch.cat([bg, prob], 0).clamp(1e-7, 1 - 1e-7)
    logits = torch.log(new_prob / (1 - new_prob))
    if hard:
        logits = logits * 1000
    out = F.softmax(logits, dim=0)
    return out if keep_bg else out[1:]


def aggregate_wbg(prob, keep_bg=True, hard=False):
    """Soft aggregation with the background as prod(1 - p_k) (MiVOS `aggregate_wbg`).

    prob: (K, 1, H, W) independent sigmoids. Returns (K+1, 1, H, W) softmax over channels
    (background first), or channels 1..K of it when keep_bg is False. `hard` sharpens the
    logits x1000 (used for interaction results).
    """
    return _softmax_with_bg(torch.prod(1 - prob, dim=0, keepdim=True), prob, keep_bg, hard)


def aggregate_sbg(prob, keep_bg=False, hard=False):
    """Like `aggregate_wbg` but with a constant 0.5 background (click and free-draw paths)."""
    return _softmax_with_bg(torch.full_like(prob[:1], 0.5), prob, keep_bg, hard)
