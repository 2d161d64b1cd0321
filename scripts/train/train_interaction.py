"""Train the bundled scribble/click-to-mask network (model/lite_interaction.py) on CPU.

    python -m scripts.train.train_interaction --name inter [--iters 20000] [--minutes 60]

Samples: a training frame from the frozen-backbone cache (random flip and crop; one object of a
multi-object frame or all of them), a still photo or a composite, with a simulated interaction
round (scripts/simulated_marks.py: first scribbles or clicks on an empty mask, or corrective
scribbles/clicks on a perturbed previous mask), a box, or a click sequence placed on the
network's own answers (scripts/train/interaction_samples.py) -> BCE + soft-IoU loss.
Validation: first-scribble J on frames 0/25/50 of the held-out sequences; the fp16 weights go to
`weights/interaction_lite.pth` only when it improves. Resumable from runs/<name>/last.pt;
ctrl-c saves and exits.
"""
import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.lite_interaction import LiteInteractionNet
from model.propagation_loss import soft_iou_loss
from scripts.train import common
from scripts.train.loop import TrainLoop
from scripts.train.data import DEFAULT_ROOT, FeatureCache, cache_folder, crop_maps, crop_window
from scripts.train.interaction_samples import box_sample, click_sequences, photo_paste_sample
from scripts.simulated_marks import correction, simulate_round, stroke
from util.errors import UserError, run_cli
from util.metrics import jaccard


def paste_sample(cache, rng, seq_of):
    """A frame of one sequence with an object of another sequence pasted on it; the target is one
    of the two objects at random, so the scribbles (not saliency) must decide which one."""
    import cv2
    from util.augment import random_affine, warp
    n = len(cache)
    for _attempt in range(20):
        i, j = int(rng.integers(n)), int(rng.integers(n))
        if seq_of[i] != seq_of[j] and cache.arrays['masks'][j].any():
            break
    fa, ma = np.asarray(cache.arrays['frames'][i]), np.asarray(cache.arrays['masks'][i]).astype(bool)
    fb, mb = np.asarray(cache.arrays['frames'][j]), np.asarray(cache.arrays['masks'][j])
    h, w = ma.shape
    m = random_affine(rng, h, w, rot=15, scale=(0.4, 1.0), shear=5, trans=0.3)
    ob = warp(fb, m, (h, w))
    obm = cv2.warpAffine(mb, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
    soft = cv2.GaussianBlur(obm.astype(np.float32), (3, 3), 0)[..., None]
    frame = (fa * (1 - soft) + ob * soft).astype(np.uint8)
    a_vis = ma & ~obm
    gt = obm if (rng.random() < 0.5 or a_vis.sum() < 50) else a_vis
    return frame, gt


def sample_batch(cache, rng, batch, crop, p_paste=0.0, backbone=None, seq_of=None, deep='f16',
                 errors=None, p_real=0.0, robot=None, robot_share=0.5, static_fg=None, p_static_fg=0.0,
                 p_absent=0.0, p_photo_paste=0.0, p_box=0.0, p_clicks=0.0, max_clicks=8, head=None,
                 paste_area=None, p_neighbour_marks=0.0, p_photo_twin=0.0, p_robot_first=0.0):
    """A training batch of interaction rounds. Samples are cached frames (backbone maps from the
    cache); with probability p_paste, composites with an object pasted from another sequence;
    with `static_fg` (a StaticFG), a share p_static_fg of still photos with their foreground
    (the uncertain border of their trimaps is a 0.5 target); with `errors`
    ((PropagationErrors, candidates)), a share p_real of correction rounds on a real propagation
    error (the previous mask is what the propagation network produced on that frame; the marks
    come from the DAVIS robot for `robot_share` of them when `robot` is given, else from the
    simulator); a share p_absent of frames without the object under a false previous mask
    (absent_sample: the marks only remove, the target is empty). Maps of pasted composites,
    photos and absent samples are computed online. Of the photo samples, a share p_photo_paste
    are two-photo composites (the pasted object's share of the frame: `paste_area` (min, max),
    log-uniform, or interaction_samples.PASTE_AREA; a share p_photo_twin of them with a look-alike
    distractor) and a share p_box box rounds
    (interaction_samples); with `head` (the
    network's head), a share p_clicks of the other first rounds are click sequences of 1 to
    max_clicks clicks placed on the network's own answers. On a multi-object frame whose target is
    one object, a share p_neighbour_marks of the rounds also get negative strokes along the other
    objects, as the Session gives an object the strokes drawn for the others on the frame
    (neighbour_marks). With `robot`, a share p_robot_first of the simulated rounds are instead
    the DAVIS robot's first scribble on an empty mask: a stroke along the longest path of each
    object part's skeleton and no negative stroke, the way the DAVIS benchmark starts and an
    annotator usually starts (the simulator's first strokes cover the whole skeleton or cross
    the object, and most come with a negative stroke). Returns stacked
    (f2, f4, deep, guide, target) where `deep` is the stride-16 map, or the stride-8 one with
    deep='f8' (to tune the backbone tail)."""
    from model.lite_propagation import backbone_maps
    items, online = [], []
    n = len(cache)
    for _ in range(batch):
        r = rng.random()
        p_real = p_real if errors is not None else 0.0
        p_fg = p_static_fg if static_fg is not None else 0.0
        if r < p_real:
            found, cands = errors
            v, i = cands[int(rng.integers(len(cands)))]
            items.append(_cached_item(cache, rng, i, crop, deep, prev=found.mask(v, i)))
            continue
        if p_real + p_fg <= r < p_real + p_fg + p_absent:
            got = absent_sample(cache, rng, crop)
            if got is not None:
                frame, prev = got
                online.append((len(items), frame))
                empty = np.zeros(prev.shape, bool)
                items.append({'gt': empty, 'target': empty.astype(np.float32), 'prev': prev})
                continue
        if r < p_real + p_fg or rng.random() < p_paste:
            if r < p_real + p_fg:
                if rng.random() < p_photo_paste:
                    frame, gt, soft = photo_paste_sample(static_fg, rng, cache.size, paste_area,
                                                         p_photo_twin)
                else:
                    frame, gt, soft = photo_sample(static_fg, rng, cache.size)
            else:
                frame, gt = paste_sample(cache, rng, seq_of)
                soft = gt.astype(np.float32)
            if rng.random() < 0.5:
                frame, gt, soft = frame[:, ::-1], gt[:, ::-1], soft[:, ::-1]
            boxed = box_sample(frame, gt, soft, rng, crop) if rng.random() < p_box else None
            if boxed is not None:
                frame, gt, soft, guide = boxed
                online.append((len(items), frame))
                items.append({'gt': gt, 'target': soft, 'guide': guide})
                continue
            y, x, ch, cw = crop_window(gt, rng, gt.shape, crop)
            online.append((len(items), np.ascontiguousarray(frame[y:y + ch, x:x + cw])))
            items.append({'gt': np.ascontiguousarray(gt[y:y + ch, x:x + cw]),
                          'target': np.ascontiguousarray(soft[y:y + ch, x:x + cw])})
            continue
        for _attempt in range(10):   # prefer frames where the object is visible
            i = int(rng.integers(n))
            if cache.arrays['masks'][i].any() or _attempt == 9:
                break
        items.append(_cached_item(cache, rng, i, crop, deep))
    if online:
        f2, f4, f8, f16 = backbone_maps(backbone, np.stack([fr for _, fr in online]), with_f8=True)
        f16 = f8 if deep == 'f8' else f16
        for j, (pos_in_batch, _) in enumerate(online):
            items[pos_in_batch]['maps'] = f2[j], f4[j], f16[j]
    maps, guides, targets, clicked = [], [], [], []
    for k, it in enumerate(items):
        gt = it['gt']
        if 'prev' in it:
            prev, pos, neg = real_correction(gt, it['prev'], rng, robot, robot_share)
        elif 'guide' in it:
            prev, pos, neg = it['guide']
        elif head is not None and 'target' in it and rng.random() < p_clicks:
            clicked.append(k)            # filled in below, once the batch's maps are stacked
            prev = pos = neg = np.zeros(gt.shape, np.float32)
        else:
            prev = pos = neg = None
            if robot is not None and p_robot_first > 0 and rng.random() < p_robot_first:
                prev, pos, neg = robot_first_round(gt, robot, rng)
            if pos is None:
                prev, pos, neg = simulate_round(gt, rng, thickness=int(rng.integers(1, 4)))
            if 'others' in it and p_neighbour_marks > 0 and rng.random() < p_neighbour_marks:
                neg = np.maximum(neg, neighbour_marks(it['others'], rng))
        maps.append(it['maps'])
        guides.append(torch.from_numpy(np.stack([prev, pos, neg])))
        targets.append(torch.from_numpy(np.ascontiguousarray(it.get('target', gt)).astype(np.float32)))
    f2s, f4s, f16s = (torch.stack(m) for m in zip(*maps))
    guides = torch.stack(guides)
    if clicked:
        counts = rng.integers(1, max_clicks + 1, len(clicked))
        idx = torch.tensor(clicked)
        guides[idx] = click_sequences(head, (f2s[idx], f4s[idx], f16s[idx]),
                                      [items[k]['gt'] for k in clicked], counts, rng)
    return f2s, f4s, f16s, guides, torch.stack(targets)


def photo_sample(static_fg, rng, size):
    """(frame, object, soft target) of a random static-fg photo fitted to `size` (h, w): the
    object is the hard mask; the target is 1 on it, 0.5 on the trimap's uncertain border."""
    from scripts.train.static_fg import fit
    rgb, mask, ignore = static_fg.load(int(rng.integers(len(static_fg))))
    rgb, (mask, ignore) = fit(rgb, (mask, ignore), size)
    return rgb, mask, np.where(mask, 1.0, np.where(ignore, 0.5, 0.0)).astype(np.float32)


def absent_sample(cache, rng, crop, tries=20):
    """(frame, prev) for a correction where the object is not in view: a window of a cached frame
    away from its object (background_window), enlarged to `crop` (h, w), and a false previous
    mask there (another frame's object, scaled and placed at random: what the propagation leaves
    on a frame the object has left). Background strokes on it must clear it: the target is
    empty. None when no frame tried had room for the window."""
    import cv2
    ch, cw = crop
    for _attempt in range(tries):
        i = int(rng.integers(len(cache)))
        win = background_window(np.asarray(cache.arrays['masks'][i]) > 0, rng, crop)
        if win is None:
            continue
        y, x, h, w = win
        frame = cv2.resize(np.ascontiguousarray(np.asarray(cache.arrays['frames'][i])[y:y + h, x:x + w]),
                           (cw, ch), interpolation=cv2.INTER_LINEAR)
        prev = _false_mask(cache, rng, crop)
        if prev is not None:
            return frame, prev
    return None


def background_window(mask, rng, crop, clearance=8):
    """(y, x, h, w) of a random window with the aspect of `crop`, 35-70% of the frame's height,
    at least `clearance` pixels away from `mask` (bool (H, W)); None if the one drawn is not."""
    import cv2
    H, W = mask.shape
    h = int(H * rng.uniform(0.35, 0.7))
    w = min(W, int(h * crop[1] / crop[0]))
    y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    k = np.ones((2 * clearance + 1, 2 * clearance + 1), np.uint8)
    near = cv2.dilate(mask.astype(np.uint8), k) > 0
    return None if near[y:y + h, x:x + w].any() else (y, x, h, w)


def _false_mask(cache, rng, crop, tries=10):
    """An object mask of a random cached frame, scaled to 5-30% of `crop` and placed at random."""
    import cv2
    ch, cw = crop
    n = len(cache)
    for _attempt in range(tries):
        m = np.asarray(cache.arrays['masks'][int(rng.integers(n))]) > 0
        ys, xs = np.nonzero(m)
        if len(ys) < 20:
            continue
        obj = m[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        scale = np.sqrt(rng.uniform(0.05, 0.3) * ch * cw / obj.sum())
        oh = max(4, min(ch - 2, int(obj.shape[0] * scale)))
        ow = max(4, min(cw - 2, int(obj.shape[1] * scale)))
        obj = cv2.resize(obj.astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST) > 0
        out = np.zeros(crop, bool)
        y, x = int(rng.integers(0, ch - oh + 1)), int(rng.integers(0, cw - ow + 1))
        out[y:y + oh, x:x + ow] = obj
        if out.sum() >= 20:
            return out
    return None


def _cached_item(cache, rng, i, crop, deep, prev=None, p_one=0.7):
    """{'maps': (f2, f4, deep map), 'gt' (, 'prev' | 'others')} of cached frame i, randomly
    flipped and cropped (the crop follows the object, or the wrong mask when the object is gone).
    On a frame with several objects (object-id masks) the target is one of them with probability
    p_one (the others are look-alike distractors the marks must leave out; 'others' holds their
    ids, 0 elsewhere), else all of them."""
    d = {k: torch.from_numpy(np.asarray(cache.arrays[k][i]).astype(np.float32)) for k in ('f2', 'f4', deep)}
    ids = np.asarray(cache.arrays['masks'][i]).astype(np.int64)
    present = np.unique(ids[ids > 0])
    others = None
    if prev is None and len(present) > 1 and rng.random() < p_one:
        target = rng.choice(present)
        others = np.where(ids == target, 0, ids)
        ids = (ids == target).astype(np.int64)
    # a second label channel cropped with the target: the wrong previous mask, or the others' ids
    extra = prev.astype(np.int64) if prev is not None else others
    lab = torch.from_numpy(ids if extra is None else np.stack([ids, extra]))
    if rng.random() < 0.5:
        d = {k: v.flip(-1) for k, v in d.items()}
        lab = lab.flip(-1)
    hw = lab.shape[-2:]
    target = lab if extra is None else lab[0]
    focus = (target + lab[1] if prev is not None else target).numpy()
    win = crop_window(focus, rng, hw, crop)
    (f2, f4, f16), lab = crop_maps((d['f2'], d['f4'], d[deep]), lab, win, (2, 4, int(deep[1:])))
    lab = lab.numpy()
    if extra is None:
        return {'maps': (f2, f4, f16), 'gt': lab > 0}
    if prev is not None:
        return {'maps': (f2, f4, f16), 'gt': lab[0] > 0, 'prev': lab[1] > 0}
    return {'maps': (f2, f4, f16), 'gt': lab[0] > 0, 'others': np.ascontiguousarray(lab[1].astype(np.uint8))}


def neighbour_marks(others, rng, p_each=0.8):
    """(H, W) float32 strokes along the objects of `others` (object ids, 0 elsewhere), each
    with probability p_each: the positive strokes a person draws for the other objects of a
    frame, which the Session gives the target object as negative marks."""
    out = np.zeros(others.shape, bool)
    for oid in np.unique(others[others > 0]):
        if rng.random() < p_each:
            out |= stroke(others == oid, rng, thickness=int(rng.integers(1, 4)), frac=1.0)
    return out.astype(np.float32)


def robot_first_round(gt, robot, rng):
    """(prev, pos, neg) float32 maps of the DAVIS robot's first scribble on `gt` (empty previous
    mask, random brush of 1-3 pixels), or (None, None, None) when the object is too small for
    the robot to draw on."""
    from scripts.eval_semi_davis import robot_first_scribbles
    gt = np.asarray(gt, bool)
    if not gt.any():
        return None, None, None
    pos, _ = robot_first_scribbles(gt, robot, brush=int(rng.integers(1, 4)))
    if not pos.any():
        return None, None, None
    empty = np.zeros(gt.shape, np.float32)
    return empty, (pos * gt).astype(np.float32), empty.copy()


def real_correction(gt, prev, rng, robot=None, robot_share=0.5):
    """(prev, pos, neg) float32 maps of a correction round on a real propagation error: the DAVIS
    robot's scribbles (with `robot`, for a share of the rounds) or the simulator's strokes/clicks
    in the largest missed and false-positive regions."""
    pos = neg = None
    if robot is not None and rng.random() < robot_share:
        from scripts.eval_semi_davis import robot_scribbles
        pos, neg = robot_scribbles(gt, prev, robot, brush=int(rng.integers(1, 4)))
    if pos is None or not (pos.any() or neg.any()):
        pos, neg = correction(gt, prev, rng, use_clicks=rng.random() < 0.35,
                              thickness=int(rng.integers(1, 4)))
    return prev.astype(np.float32), pos.astype(np.float32), neg.astype(np.float32)


def batch_loss(net, batch, tune_tail=False):
    f2, f4, f16, guide, target = batch
    if tune_tail:           # the batch holds stride-8 maps: run the trainable stride-16 stages
        f16 = net.backbone.tail(f16)
    logits = net.head(f2, f4, f16, guide)
    logits = F.interpolate(logits, size=target.shape[-2:], mode='bilinear', align_corners=False)[:, 0]
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    loss = bce + 0.5 * soft_iou_loss(prob, target)
    with torch.no_grad():
        ious = [jaccard(p > 0.5, t > 0.5) for p, t in zip(prob.numpy(), target.numpy())]
    return loss, float(np.mean(ious))


def validate(net, root, trials=1, prop_net=None):
    """First-scribble J on frames 0/25/50 of the selection sequences; with `prop_net` also the
    J of correction rounds on that network's real errors there (3 worst frames per sequence,
    simulator strokes with a fixed seed) and 'score', the mean of the two."""
    from scripts.eval_semi_davis import evaluate_corrections, evaluate_first_scribble
    net.eval()
    res = evaluate_first_scribble(net, root, frames=(0, 25, 50), trials=trials)
    first = [v for k, v in res['per_sequence'].items() if k.endswith('/0')]
    res['J_frame0'] = float(np.mean(first))
    res['score'] = res['J']
    if prop_net is not None:
        corr = evaluate_corrections(net, prop_net, root)
        res['correction'] = corr
        res['score'] = (res['J'] + corr['J_after']) / 2
    net.train()
    return res


def real_errors(cache, args):
    """(PropagationErrors, candidates) for --real-errors and the propagation net that made them."""
    from model.lite_networks import load_network
    from scripts.train.propagation_errors import PropagationErrors
    path = Path(args.real_errors) / 'propagation_lite.pth'
    if not path.is_file():
        raise UserError(f'--real-errors {args.real_errors}: no propagation_lite.pth there')
    prop_net = load_network('propagation', path).eval()
    found = PropagationErrors.build(cache, prop_net, strides=tuple(args.error_strides), seed=args.seed,
                                    source=common.sha256(path),
                                    progress=lambda d, t: print(f'\rpropagating {d}/{t}', end='', flush=True))
    cands = found.candidates(cache)
    print(f'\nreal propagation errors: {found.summary()}; {len(cands)} frames to correct', flush=True)
    if not cands:
        raise UserError('the propagation network made no error worth correcting on the training frames')
    return (found, cands), prop_net


def optional_robot():
    """The DAVIS scribble robot when davisinteractive is installed, else None (simulator only)."""
    from util.errors import UserError as _Missing
    try:
        from util.davis_compat import scribbles_robot
        return scribbles_robot()
    except _Missing:
        print('davisinteractive not installed: correction marks from the simulator only', flush=True)
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--name', default='inter')
    ap.add_argument('--data', default=str(DEFAULT_ROOT))
    ap.add_argument('--cache', default=None, help='feature cache folder (default runs/cache_lite0)')
    ap.add_argument('--iters', type=int, default=30000)
    ap.add_argument('--minutes', type=float, default=None)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--lr', type=float, default=5e-4)
    ap.add_argument('--crop', type=int, nargs=2, default=(192, 320))
    ap.add_argument('--p-paste', type=float, default=0.5,
                    help='share of composites with an object pasted from another sequence')
    ap.add_argument('--val-every', type=int, default=500)
    ap.add_argument('--val-minutes', type=float, default=15)
    ap.add_argument('--val-trials', type=int, default=1, help='random scribbles per validation frame')
    ap.add_argument('--no-val', action='store_true')
    ap.add_argument('--ema', type=float, default=0.0,
                    help='decay of a weight average that is validated and exported instead of the raw '
                         'weights (0: off; 0.998 smooths the checkpoint-to-checkpoint swings)')
    ap.add_argument('--static-fg', default=None, nargs='+', metavar='DIR',
                    help='also train on still photos with a foreground mask, one or several folders '
                         '(../shared/data/static-fg, ../shared/data/static-sal)')
    ap.add_argument('--p-static-fg', type=float, default=0.3, help='with --static-fg: share of photo samples')
    ap.add_argument('--real-errors', default=None, metavar='WEIGHTS',
                    help='correction rounds on real propagation errors: the propagation network in '
                         'this weights folder (e.g. weights) propagates the training videos '
                         '(scripts/train/propagation_errors.py); they are also validated')
    ap.add_argument('--p-real', type=float, default=0.4, help='with --real-errors: share of such samples')
    ap.add_argument('--error-strides', type=int, nargs='+', default=[1, 4],
                    help='with --real-errors: frame strides of the propagation passes')
    ap.add_argument('--robot-share', type=float, default=0.5,
                    help='with --real-errors: share of their marks drawn by the DAVIS robot '
                         '(when davisinteractive is installed; else all by the simulator)')
    ap.add_argument('--p-absent', type=float, default=0.0,
                    help='share of samples where the object is out of view under a false previous '
                         'mask and the marks only remove (the target is empty)')
    ap.add_argument('--p-photo-paste', type=float, default=0.0,
                    help='with --static-fg: share of photo samples that paste one photo\'s object on '
                         'another (the target is either object)')
    ap.add_argument('--p-photo-twin', type=float, default=0.0,
                    help='with --p-photo-paste: share of those composites with a look-alike of the '
                         'pasted object pasted elsewhere too, never the target (the marks must pick '
                         'one of two alike things)')
    ap.add_argument('--paste-area', type=float, nargs=2, default=None, metavar=('MIN', 'MAX'),
                    help='with --p-photo-paste: the pasted object covers this share of the frame, '
                         'log-uniform (default: uniform 0.03-0.35)')
    ap.add_argument('--p-box', type=float, default=0.0,
                    help='share of photo and composite samples given as a box (as Session.add_box)')
    ap.add_argument('--p-clicks', type=float, default=0.0,
                    help='share of photo and composite samples given as a click sequence placed on '
                         'the network\'s own answers (iterative training)')
    ap.add_argument('--max-clicks', type=int, default=8, help='with --p-clicks: the longest sequence')
    ap.add_argument('--p-neighbour-marks', type=float, default=0.0,
                    help='multi-object frames whose target is one object: share of rounds with '
                         'negative strokes along the other objects (the strokes drawn for them)')
    ap.add_argument('--p-robot-first', type=float, default=0.0,
                    help='share of the simulated rounds that are the DAVIS robot\'s first scribble '
                         'instead (a stroke along each object part\'s skeleton, no negative; needs '
                         'davisinteractive)')
    ap.add_argument('--extra-video', default=None, metavar='DIR',
                    help='also train on the training videos of a video-extra folder (object-id masks: '
                         'one object of a multi-object frame is the target, the others distractors)')
    common.add_run_args(ap)
    common.add_finetune_args(ap)
    args = ap.parse_args(argv)

    run_dir, log = common.start_run(args)
    state = common.load_checkpoint(run_dir / 'last.pt')
    common.refuse_other_data(state, args, run_dir)
    net = LiteInteractionNet()
    cache_dir = args.cache or cache_folder(args.runs, with_report=args.with_report, extra=bool(args.extra_video))
    cache = FeatureCache.build(args.data, cache_dir, net.backbone, sequences=args.sequences,
                               with_report=args.with_report, extra_root=args.extra_video,
                               progress=lambda d, t: print(f'\rcaching {d}/{t}', end='', flush=True))
    print(f'{len(cache.names)} sequences, {len(cache)} frames', flush=True)
    errors, robot, prop_net = None, None, None
    if args.real_errors:
        errors, prop_net = real_errors(cache, args)
        robot = optional_robot()
    if args.p_robot_first > 0 and robot is None:
        robot = optional_robot()
        if robot is None:
            from util.davis_compat import INSTALL_HINT
            raise UserError(f'--p-robot-first needs the DAVIS robot (davisinteractive): {INSTALL_HINT}')
    static_fg = None
    if args.static_fg:
        from scripts.train.static_fg import StaticFG
        if not StaticFG.available(args.static_fg):
            raise UserError(f'--static-fg {args.static_fg}: not a static-fg folder (images/, masks/)')
        static_fg = StaticFG(args.static_fg)
        print(f'static-fg: {len(static_fg)} photos', flush=True)
    rng = np.random.default_rng(args.seed)
    seq_of = np.zeros(len(cache), np.int32)
    for si, name in enumerate(cache.names):
        s0, n0 = cache.seq_range(name)
        seq_of[s0:s0 + n0] = si
    opt = common.make_optimizer(net, args)
    it, best, avg = common.starting_weights(net, opt, args, state)
    if state is not None:
        rng.bit_generator.state = state['rng']
        print(f'resumed {run_dir / "last.pt"} at iteration {it} (best val {best})', flush=True)
    sched = lambda i: args.lr * (0.1 if i > 0.8 * args.iters else 1.0)   # noqa: E731
    # with real errors the export score also counts the corrections, so it has its own name
    score_name = 'first_scribble_and_correction_J' if prop_net is not None else 'first_scribble_J_3frames'

    def save():
        common.save_checkpoint(run_dir / 'last.pt', model=net.state_dict(), optimizer=opt.state_dict(),
                               ema=avg.state_dict() if avg is not None else None, iteration=it,
                               best=best, rng=rng.bit_generator.state, torch_rng=torch.get_rng_state(), args=vars(args))

    net.train()
    # click sequences run the network on the batch's maps (with --tune-backbone: stride 8, through
    # the tuned stride-16 stages)
    click_head = net.head if not args.tune_backbone else \
        (lambda f2, f4, f8, guide: net.head(f2, f4, net.backbone.tail(f8), guide))
    run_loss, run_iou = None, None
    crop = tuple(args.crop)
    with TrainLoop(args, 'interaction', it, save, run_dir) as loop:
        while loop.running(it):
            common.set_lr(opt, sched(it))
            batch = sample_batch(cache, rng, args.batch, crop, args.p_paste, net.backbone, seq_of,
                                 deep='f8' if args.tune_backbone else 'f16', errors=errors,
                                 p_real=args.p_real, robot=robot, robot_share=args.robot_share,
                                 static_fg=static_fg, p_static_fg=args.p_static_fg,
                                 p_absent=args.p_absent, p_photo_paste=args.p_photo_paste,
                                 p_box=args.p_box, p_clicks=args.p_clicks, max_clicks=args.max_clicks,
                                 head=click_head, paste_area=args.paste_area,
                                 p_neighbour_marks=args.p_neighbour_marks,
                                 p_photo_twin=args.p_photo_twin, p_robot_first=args.p_robot_first)
            opt.zero_grad(set_to_none=True)
            loss, miou = batch_loss(net, batch, args.tune_backbone)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.trainable_parameters(args.tune_backbone), 5.0)
            opt.step()
            if avg is not None:
                avg.update()
            it += 1
            loss_v = float(loss.detach())
            run_loss = loss_v if run_loss is None else 0.98 * run_loss + 0.02 * loss_v
            run_iou = miou if run_iou is None else 0.98 * run_iou + 0.02 * miou
            loop.stepped(it, loss=run_loss)
            if it % 50 == 0:
                log.write(iteration=it, loss=round(run_loss, 5), train_iou=round(run_iou, 4), lr=sched(it))
            if loop.validation_due(it):
                save()
                final_net = avg.net if avg is not None else net
                res = validate(final_net, args.data, args.val_trials, prop_net)
                score = res['score'] * 100
                log.write(iteration=it, val=res)
                if 'correction' in res:
                    c = res['correction']
                    print(f'\niteration {it}: corrections J {c["J_before"]*100:.2f} -> {c["J_after"]*100:.2f} '
                          f'({c["worse"]*100:.0f}% worse)', flush=True)
                print(f'\niteration {it}: first-scribble J {res["J"]*100:.2f} (frame 0 only {res["J_frame0"]*100:.2f}, '
                      f'{res["latency_ms"]:.0f} ms)', flush=True)
                if best is None or score > best:
                    best = score
                    val = {'first_scribble_J_frame0': round(res['J_frame0'] * 100, 2),
                           'latency_ms': round(res['latency_ms'], 1)}
                    if 'correction' in res:
                        val.update(first_scribble_J_3frames=round(res['J'] * 100, 2),
                                   correction_J_before=round(res['correction']['J_before'] * 100, 2),
                                   correction_J_after=round(res['correction']['J_after'] * 100, 2))
                    common.export_if_better('interaction', final_net, args, it, score_name, score, {
                        'validation': val,
                        'model': 'model.lite_interaction.LiteInteractionNet(lite0, proc_short=240)'})
                save()
    return 0


if __name__ == '__main__':
    run_cli(main)
