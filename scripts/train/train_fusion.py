"""Train the bundled fusion network (model/lite_fusion.py) on CPU, from the trained propagation net.

    python -m scripts.train.train_fusion --name fusion [--prop weights/propagation_lite.pth]

Data (MiVOS fusion stage), per sample from a training sequence: interacted frames tc < tr (or
reversed) and a target ti between them.
  round 1: memory = {tc: ground truth}       -> prev = propagation result at ti, and at tr
  round 2: memory = {tc, tr: ground truth}   -> curr = propagation result at ti
  attention = get_attention(key(tr), pos/neg of (GT(tr) - round-1 result at tr), key(ti))
  dist = (|tc-ti|, |tr-ti|) / |tc-tr|; target = GT(ti).
Everything uses the frozen-backbone cache (processing size), upsampled x2 to 480p-like inputs,
so the fusion sees the resolution it gets at run time. Validation: mean IoU on samples from the
held-out sequences (fixed seed); the fp16 weights go to weights/fusion_lite.pth only when the
fused IoU beats both the best so far and the unfused (curr) IoU.
"""
import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model import lite_networks
from model.lite_fusion import LiteFusionNet
from model.lite_propagation import LiteBackbone, LitePropagationNet, backbone_maps
from model.propagation_loss import soft_iou_loss
from scripts.train import common
from scripts.train.loop import TrainLoop
from scripts.train.data import DEFAULT_ROOT, FeatureCache, cache_folder, cache_size
from util.davis_io import load_sequence
from util.davis_split import VAL_SEQUENCES
from util.errors import UserError, run_cli
from util.metrics import jaccard
from util.tensor_util import normalize_frames


def _prob(prop, mk, mv, qk, qv, f4, f2, size, prev=None):
    """Single-object propagation at processing size -> prob (1,1,H,W) (dense top-k readout).
    prev: the previous frame's mask of the pass, for networks that use it."""
    from model.memory_reader import memory_readout
    r = memory_readout(mk, mv, qk, top_k=prop.top_k)
    if not getattr(prop, 'uses_previous_mask', False):
        prev = None
    return torch.sigmoid(prop.decode(r, qv, f4, f2, size, prev_mask=prev))


@torch.no_grad()
def make_sample(prop, maps, frames_u8, labels, rng, up=2):
    """maps: dict of f2/f4/f16 (T,...) tensors of one sequence; labels (T,H,W) bool numpy."""
    n = len(labels)
    gap = int(rng.integers(4, min(n - 1, 40) + 1))
    tc = int(rng.integers(0, n - gap))
    tr = tc + gap
    if rng.random() < 0.5:
        tc, tr = tr, tc
    ti = int(rng.integers(min(tc, tr) + 1, max(tc, tr)))
    idx = [tc, tr, ti]
    f2, f4, f16 = (maps[k][idx] for k in ('f2', 'f4', 'f16'))
    # previous frame of a pass from a towards b at b: its neighbour on a's side (here its ground
    # truth: in a real pass it is the result one frame earlier, nearly as good)
    def before(a, b):
        return torch.from_numpy(labels[b - int(np.sign(b - a))].astype(np.float32))[None, None]
    k16, qv = prop.keys_from_features(f16)
    size = labels.shape[1:]
    proc_hw = (f16.shape[-2] * 16, f16.shape[-1] * 16)
    gt = torch.from_numpy(labels[idx].astype(np.float32)).unsqueeze(1)          # (3,1,H,W)
    v_c = prop.value_from_features(f16[0:1], gt[0:1], proc_hw)
    mk1, mv1 = k16[0:1].unsqueeze(2), v_c
    prev_ti = _prob(prop, mk1, mv1, k16[2:3], qv[2:3], f4[2:3], f2[2:3], size, before(tc, ti))
    prev_tr = _prob(prop, mk1, mv1, k16[1:2], qv[1:2], f4[1:2], f2[1:2], size, before(tc, tr))
    v_r = prop.value_from_features(f16[1:2], gt[1:2], proc_hw)
    mk2 = torch.cat([mk1, k16[1:2].unsqueeze(2)], 2)
    mv2 = torch.cat([mv1, v_r], 2)
    curr_ti = _prob(prop, mk2, mv2, k16[2:3], qv[2:3], f4[2:3], f2[2:3], size, before(tr, ti))
    # with background channel, as the engine passes them
    def with_bg(p):
        return torch.cat([1 - p, p], 0)
    diff = with_bg(gt[1:2]) - with_bg(prev_tr)
    attn = prop.get_attention(k16[1:2].unsqueeze(2), diff.clamp(0, 1), (-diff).clamp(0, 1), k16[2:3])[1:2]
    H, W = size[0] * up, size[1] * up
    upf = lambda t: F.interpolate(t, size=(H, W), mode='bilinear', align_corners=False)   # noqa: E731
    im = upf(normalize_frames(frames_u8[ti]))
    dist = torch.tensor([[abs(tc - ti), abs(tr - ti)]], dtype=torch.float32) / abs(tc - tr)
    target = upf(gt[2:3])[0, 0] > 0.5
    return im, upf(prev_ti), upf(curr_ti), upf(attn), dist, target.float()


def load_prop(path):
    path = Path(path)
    if path.suffix == '.pt':                    # a training checkpoint
        net = LitePropagationNet(pretrained=False)
        net.load_state_dict(common.load_checkpoint(path)['model'])
        return net.eval()
    if not path.is_file():
        raise UserError(f'{path}: trained propagation weights not found (train the propagation net first)')
    return lite_networks.load_network('propagation', path, 'cpu')


def seq_maps(prop, frames):
    f2, f4, f16 = backbone_maps(prop.backbone, frames)
    return {'f2': f2, 'f4': f4, 'f16': f16}


def validate(fusion, prop, val_data, seed=123, n=24, up=2):
    rng = np.random.default_rng(seed)
    ious_f, ious_c = [], []
    fusion.eval()
    with torch.no_grad():
        for i in range(n):
            maps, frames, labels = val_data[i % len(val_data)]
            im, prev, curr, attn, dist, target = make_sample(prop, maps, frames, labels, rng, up)
            fused = torch.sigmoid(fusion(im, prev, curr, attn, dist))[0, 0]
            ious_f.append(jaccard(fused > 0.5, target > 0.5))
            ious_c.append(jaccard(curr[0, 0] > 0.5, target > 0.5))
    fusion.train()
    return float(np.mean(ious_f)), float(np.mean(ious_c))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--name', default='fusion')
    ap.add_argument('--data', default=str(DEFAULT_ROOT))
    ap.add_argument('--prop', default=str(common.REPO / 'weights' / 'propagation_lite.pth'),
                    help='trained propagation: weights/propagation_lite.pth or a runs/<name>/last.pt')
    ap.add_argument('--cache', default=None)
    ap.add_argument('--iters', type=int, default=3000)
    ap.add_argument('--minutes', type=float, default=None)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--up', type=int, default=2, help='upsampling of the processing-size maps (2: 480p-like)')
    ap.add_argument('--val-every', type=int, default=200)
    ap.add_argument('--no-val', action='store_true')
    ap.add_argument('--val-samples', type=int, default=24)
    ap.add_argument('--val-sequences', type=int, default=3, help='held-out sequences used for validation')
    common.add_run_args(ap)
    args = ap.parse_args(argv)

    run_dir, log = common.start_run(args)
    state = common.load_checkpoint(run_dir / 'last.pt')
    common.refuse_other_data(state, args, run_dir)
    prop = load_prop(args.prop)
    # the cache holds the ImageNet backbone's maps, never those of the loaded network's copy (the
    # propagation networks trained since the BatchNorm fix carry that backbone unchanged), at
    # the size the propagation network runs at
    cache = FeatureCache.build(args.data, args.cache or cache_folder(args.runs, prop.proc_short, args.with_report),
                               LiteBackbone(), sequences=args.sequences, size=cache_size(prop.proc_short),
                               with_report=args.with_report)
    fusion = LiteFusionNet()
    opt = torch.optim.AdamW(fusion.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    it, best = 0, None
    if state is not None:
        fusion.load_state_dict(state['model'])
        opt.load_state_dict(state['optimizer'])
        it, best = state['iteration'], state.get('best')
        rng.bit_generator.state = state['rng']
        print(f'resumed at iteration {it} (best val {best})', flush=True)
    val_data = []
    if not args.no_val:
        from scripts.eval_semi_davis import available_sequences
        for _, seq in available_sequences(args.data, VAL_SEQUENCES)[:args.val_sequences]:
            fr, mk = load_sequence(args.data, seq, cache.size)
            with torch.no_grad():
                val_data.append((seq_maps(prop, fr), fr, mk))

    def save():
        common.save_checkpoint(run_dir / 'last.pt', model=fusion.state_dict(), optimizer=opt.state_dict(),
                               iteration=it, best=best, rng=rng.bit_generator.state, args=vars(args))

    def train_seq():
        name = cache.names[rng.integers(len(cache.names))]
        s, n = cache.seq_range(name)
        maps = {k: torch.from_numpy(np.asarray(cache.arrays[k][s:s + n]).astype(np.float32))
                for k in ('f2', 'f4', 'f8')}
        with torch.no_grad():   # the propagation net's own stride-16 stages (it may have tuned them)
            maps['f16'] = prop.backbone.tail(maps.pop('f8'))
        return maps, np.asarray(cache.arrays['frames'][s:s + n]), np.asarray(cache.arrays['masks'][s:s + n]) > 0

    run_loss = None
    with TrainLoop(args, 'fusion', it, save, run_dir) as loop:
        while loop.running(it):
            maps, frames, labels = train_seq()
            if len(labels) < 6:
                continue
            opt.zero_grad(set_to_none=True)
            tot = 0.0
            for _ in range(args.batch):
                im, prev, curr, attn, dist, target = make_sample(prop, maps, frames, labels, rng, args.up)
                logits = fusion(im, prev, curr, attn, dist)[0, 0]
                loss = F.binary_cross_entropy_with_logits(logits, target) \
                    + 0.5 * soft_iou_loss(torch.sigmoid(logits)[None], target[None])
                (loss / args.batch).backward()
                tot += float(loss.detach()) / args.batch
            opt.step()
            it += 1
            run_loss = tot if run_loss is None else 0.95 * run_loss + 0.05 * tot
            loop.stepped(it, loss=run_loss)
            if it % 20 == 0:
                log.write(iteration=it, loss=round(run_loss, 5))
            if loop.validation_due(it):
                iou_f, iou_c = validate(fusion, prop, val_data, n=args.val_samples, up=args.up)
                log.write(iteration=it, val_fused_iou=iou_f, val_unfused_iou=iou_c)
                print(f'\niteration {it}: val IoU fused {iou_f*100:.2f} vs unfused {iou_c*100:.2f}', flush=True)
                if (best is None or iou_f * 100 > best) and iou_f > iou_c:
                    best = iou_f * 100
                    common.export_if_better('fusion', fusion, args, it, 'fused_iou', best, {
                        'unfused_iou': round(iou_c * 100, 2), 'model': 'model.lite_fusion.LiteFusionNet'})
                save()
    return 0


if __name__ == '__main__':
    run_cli(main)
