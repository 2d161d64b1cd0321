"""Choose and load the networks: official MiVOS-STCN checkpoints or the bundled lite networks.

    nets = load_networks()                      # official if saves/ has them, else bundled
    nets = load_networks('official', saves_dir='saves', device='cuda')
"""
import logging
import os
from dataclasses import dataclass

import torch
import torch.nn as nn

from util.device import pick_device
from util.errors import UserError
from util.frames_io import check_resolution

log = logging.getLogger(__name__)

OFFICIAL_FILES = {'propagation': 'stcn.pth', 'fusion': 'fusion_stcn.pth', 'interaction': 's2m.pth'}
CLICK_FILE = 'fbrs.pth'
KINDS = ('auto', 'official', 'bundled')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_WEIGHTS_DIR = os.path.join(REPO, 'weights')


@dataclass
class Networks:
    kind: str                     # 'official' or 'bundled'
    propagation: nn.Module        # encode_key / encode_value / segment_with_query / get_attention
    fusion: nn.Module             # forward(im, seg1, seg2, attn, time) -> logits (1,1,H,W)
    interaction: nn.Module        # scribble net: forward(x (B,6,H,W)) -> logits (B,1,H,W)
    click: object = None          # f-BRS model (official) or None (clicks use `interaction`)
    device: torch.device = torch.device('cpu')

    @property
    def adaptable(self):
        """Whether the propagation network can be adapted to a video (the bundled one can;
        inference_core/adaptation.py)."""
        from inference_core.adaptation import supports_adaptation
        return supports_adaptation(self.propagation)

    def describe(self):
        click = 'f-BRS' if self.click is not None else 'interaction net'
        return f'{self.kind} networks on {self.device} (clicks: {click})'


def check_engine_options(args):
    """Cheap checks, before any heavy loading, of whichever of --model, --resolution, --top_k,
    --mem_freq and --max_memory_frames the parsed command line has. Raises UserError."""
    model = getattr(args, 'model', None)
    if model is not None and model not in KINDS:
        raise UserError(f'unknown model {model!r} (use official, bundled or auto)')
    resolution = getattr(args, 'resolution', None)
    if resolution is not None:
        check_resolution(resolution, '--resolution')       # the bound the API applies too
    for name in ('top_k', 'mem_freq', 'max_memory_frames'):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f'--{name} must be at least 1, got {value}')


def official_available(saves_dir='saves'):
    """True when the three required official files exist (validity is checked on load)."""
    return all(os.path.isfile(os.path.join(saves_dir, f)) for f in OFFICIAL_FILES.values())


def _resolve_saves(saves_dir):
    # A relative 'saves' also works when the tool is started from another folder.
    if not os.path.isabs(saves_dir) and not os.path.isdir(saves_dir):
        alt = os.path.join(REPO, saves_dir)
        if os.path.isdir(alt):
            return alt
    return saves_dir


def load_official(saves_dir='saves', device='cpu', top_k=20):
    """Official MiVOS-STCN networks from `saves_dir` (strictly checked). f-BRS is optional."""
    from model.checkpoint import load_checked
    from model.fusion_net import FusionNet
    from model.propagation_net import PropagationNetwork
    from model.s2m_net import S2MNet

    missing = [f for f in OFFICIAL_FILES.values() if not os.path.isfile(os.path.join(saves_dir, f))]
    if missing:
        raise UserError(f'official weights missing in {saves_dir}: {", ".join(missing)} '
                        f'(run python download_model.py)')
    nets = {}
    for role, cls in (('propagation', lambda: PropagationNetwork(top_k=top_k)),
                      ('fusion', FusionNet), ('interaction', S2MNet)):
        net = cls()
        load_checked(net, os.path.join(saves_dir, OFFICIAL_FILES[role]))
        nets[role] = net.to(device).eval()
    click = None
    fbrs_path = os.path.join(saves_dir, CLICK_FILE)
    if os.path.isfile(fbrs_path):
        try:
            from model.fbrs_net import load_fbrs
            click, _ = load_fbrs(fbrs_path, device)
        except UserError as e:
            log.warning('f-BRS click model not used: %s', e)
    return Networks('official', nets['propagation'], nets['fusion'], nets['interaction'], click,
                    torch.device(device))


def load_bundled(weights_dir=DEFAULT_WEIGHTS_DIR, device='cpu'):
    """The bundled lite networks from `weights_dir`."""
    try:
        from model import lite_networks
    except ImportError as e:
        raise UserError(f'bundled networks are not available ({e}); use the official weights '
                        f'(run python download_model.py)') from None
    prop, fusion, interaction = lite_networks.load_bundled(weights_dir, device)
    return Networks('bundled', prop.eval(), fusion.eval(), interaction.eval(), None,
                    torch.device(device))


def load_networks(kind='auto', saves_dir='saves', device='auto', weights_dir=None, top_k=20):
    """Load the networks of `kind`:

    'official': saves/stcn.pth, fusion_stcn.pth, s2m.pth (+ optional fbrs.pth for clicks);
    'bundled':  the lite networks shipped in weights/;
    'auto':     official when its files are present and valid, otherwise bundled.
    """
    if kind not in KINDS:
        raise UserError(f'unknown model kind {kind!r} (use {", ".join(KINDS)})')
    device = pick_device(device)
    saves_dir = _resolve_saves(os.fspath(saves_dir))
    weights_dir = weights_dir or DEFAULT_WEIGHTS_DIR
    if kind == 'official':
        return load_official(saves_dir, device, top_k)
    if kind == 'bundled':
        return load_bundled(weights_dir, device)
    official_error = None
    if official_available(saves_dir):
        try:
            return load_official(saves_dir, device, top_k)
        except UserError as e:
            official_error = e
            log.warning('official weights not usable, falling back to the bundled networks: %s', e)
    try:
        return load_bundled(weights_dir, device)
    except UserError as e:
        if official_error is not None:
            raise UserError(f'{official_error}; bundled networks unavailable too: {e}') from None
        raise UserError(f'no networks available: official weights not in {saves_dir} '
                        f'(run python download_model.py) and {e}') from None


BUNDLED_ROLES = ('propagation', 'fusion', 'interaction')


def untrained_bundled(roles=BUNDLED_ROLES, seed=0):
    """{role: network} of the bundled architectures with untrained weights (torch seeded with
    `seed`, then built in the order of `roles`; no ImageNet initialisation), in eval mode on the
    CPU: stand-ins where only speed and memory count (the benchmarks)."""
    from model import lite_networks
    torch.manual_seed(seed)
    return {role: lite_networks.build(role, pretrained=False).eval() for role in roles}


def write_untrained_bundled(weights_dir, seed=0):
    """Write untrained stand-ins of the three bundled networks (untrained_bundled's) into
    `weights_dir` as the fp16 weight files load_bundled reads."""
    from model import lite_networks
    for role, net in untrained_bundled(seed=seed).items():
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()},
                   os.path.join(weights_dir, lite_networks.FILES[role]))


def training_free_propagation():
    """The training-free reference propagation (model/training_free.py: frozen ImageNet
    EfficientNet-Lite0 features, no training; not a product network, it runs without a Session),
    as a function propagate(frames (T,H,W,3) uint8, first_labels (H,W), num_objects=None,
    progress=None) -> labels (T,H,W) uint8: the row every trained propagation network is
    compared against (scripts.eval_semi_davis --training-free)."""
    from model.training_free import propagate
    return propagate
