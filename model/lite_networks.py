"""Load the bundled (offline) networks shipped in `weights/`.

    propagation, fusion, interaction = load_bundled('weights', device='cpu')

Files (fp16 state dicts, see weights/manifest.json): propagation_lite.pth, fusion_lite.pth,
interaction_lite.pth. They are converted to float32, moved to `device` and put in eval mode.
The fusion file is optional: without it the fusion net is the untrained identity (it returns
the new propagation result, i.e. MiVOS without fusion), which is logged.
"""
import json
import logging
from pathlib import Path

import torch

from util.errors import UserError

log = logging.getLogger(__name__)

FILES = {'propagation': 'propagation_lite.pth', 'fusion': 'fusion_lite.pth',
         'interaction': 'interaction_lite.pth'}


def build(kind, pretrained=False):
    """A fresh network of `kind` ('propagation', 'fusion', 'interaction')."""
    if kind == 'propagation':
        from model.lite_propagation import LitePropagationNet
        return LitePropagationNet(pretrained=pretrained)
    if kind == 'interaction':
        # trained at one size; the shipped configuration averages two (TEST_SCALES) and
        # refines the mask along the frame's edges
        from model.lite_interaction import LiteInteractionNet, TEST_SCALES
        return LiteInteractionNet(pretrained=pretrained, proc_short=TEST_SCALES[0],
                                  extra_scales=TEST_SCALES[1:], edge_refine=True)
    if kind == 'fusion':
        from model.lite_fusion import LiteFusionNet
        return LiteFusionNet()
    raise ValueError(kind)


def load_network(kind, path, device='cpu'):
    """One bundled network of `kind` from a weights file (fp16 or fp32 state dict), float32 in
    eval mode on `device`; a file that does not match is a UserError naming it."""
    net = build(kind)
    try:
        sd = torch.load(path, map_location='cpu', weights_only=True)
    except PermissionError:
        raise UserError(f'cannot read weights file (permission denied): {path}') from None
    except Exception:   # truncated download, wrong file ... (PyTorch's message is many lines)
        raise UserError(f'not a readable weights file (corrupt, truncated or not a PyTorch '
                        f'checkpoint): {path}') from None
    if not isinstance(sd, dict):
        raise UserError(f'{path}: not a state dict')
    own = net.state_dict()
    # layers added later whose initialisation computes nothing (e.g. the zero-initialised
    # previous-mask prior) may be absent from weights trained before them
    neutral = tuple(getattr(net, 'neutral_when_missing', ()))
    missing = [k for k in own if k not in sd and not (neutral and k.startswith(neutral))]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing (e.g. {missing[0]})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected (e.g. {unexpected[0]})')
        if wrong:
            parts.append(f'{len(wrong)} with wrong shapes (e.g. {wrong[0]})')
        raise UserError(f'{path} does not match the bundled {kind} network: ' + ', '.join(parts))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
    net = net.to(device).eval()
    if kind == 'interaction':
        # channels-last weights: its thin stride-2/4 head convs and the backbone run 10-15% faster
        # on the CPU (a later stroke 0.08-0.10 s instead of 0.09-0.11 s at 480p); the
        # propagation network measured no faster this way
        net = net.to(memory_format=torch.channels_last)
    return net


def load_bundled(weights_dir='weights', device='cpu'):
    """(propagation, fusion, interaction) in eval mode, float32, on `device`."""
    wd = Path(weights_dir)
    if not wd.is_dir():
        raise UserError(f'bundled weights folder {wd} does not exist')
    missing = [FILES[k] for k in ('propagation', 'interaction') if not (wd / FILES[k]).is_file()]
    if missing:
        raise UserError(f'bundled weights missing in {wd}: {", ".join(missing)}')
    device = torch.device(device)
    prop = load_network('propagation', wd / FILES['propagation'], device)
    inter = load_network('interaction', wd / FILES['interaction'], device)
    if (wd / FILES['fusion']).is_file():
        fusion = load_network('fusion', wd / FILES['fusion'], device)
    else:
        log.info('no %s in %s: fusion passes the propagation result through', FILES['fusion'], wd)
        fusion = build('fusion').to(device).eval()
    return prop, fusion, inter


def manifest(weights_dir='weights'):
    """The parsed weights/manifest.json ({} when absent)."""
    p = Path(weights_dir) / 'manifest.json'
    return json.loads(p.read_text()) if p.is_file() else {}
