"""Load network weights with key checking and one-line errors that name the offending keys.

    report = load_checked(net, 'saves/stcn.pth')           # raises CheckpointError on any mismatch
    report = load_checked(net, sd, strict=False)            # loads what fits, returns the report

Files are read with `torch.load(weights_only=True, map_location='cpu')` (no pickled code runs).
Accepted layouts: a flat {name: tensor} dict, or one wrapped as {'state_dict'|'model'|'net'|
'model_state_dict'|'params': {...}}, with or without a DataParallel 'module.' prefix.
"""
import os
from dataclasses import dataclass, field

import torch

from util.errors import UserError

_WRAPPER_KEYS = ('state_dict', 'model_state_dict', 'model', 'net', 'params', 'network')
_SHOW = 3   # keys named per category in a message


class CheckpointError(UserError):
    """A weights file that is missing, unreadable or does not fit the network."""


@dataclass
class LoadReport:
    missing: list = field(default_factory=list)       # keys the module expects but the file lacks
    unexpected: list = field(default_factory=list)    # keys in the file the module does not have
    mismatched: list = field(default_factory=list)    # (key, expected shape, file shape)
    loaded: int = 0                                   # entries copied into the module

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self):
        """'missing a, b, c (3 more); unexpected ...; shape mismatch k: file 3x3 vs expected 1x1' or 'ok'."""
        parts = []
        for label, keys in (('missing', self.missing), ('unexpected', self.unexpected)):
            if keys:
                parts.append(f'{label} {_name_few(keys)}')
        if self.mismatched:
            shown = ', '.join(f'{k} (file {_shape(got)}, expected {_shape(exp)})'
                              for k, exp, got in self.mismatched[:_SHOW])
            more = len(self.mismatched) - _SHOW
            parts.append('shape mismatch ' + shown + (f' ({more} more)' if more > 0 else ''))
        return '; '.join(parts) if parts else 'ok'


def _name_few(keys):
    more = len(keys) - _SHOW
    return ', '.join(keys[:_SHOW]) + (f' ({more} more)' if more > 0 else '')


def _shape(s):
    return 'x'.join(str(d) for d in s) if len(s) else 'scalar'


def _describe(path_or_sd):
    return str(path_or_sd) if isinstance(path_or_sd, (str, os.PathLike)) else 'the given state dict'


def read_state_dict(path_or_state_dict):
    """Read a checkpoint (path or mapping) and unwrap it to a flat {name: value} dict."""
    sd = path_or_state_dict
    if isinstance(sd, (str, os.PathLike)):
        path = os.fspath(sd)
        if not os.path.isfile(path):
            raise CheckpointError(f'{path}: weights file not found (run `python download_model.py`)')
        try:
            sd = torch.load(path, map_location='cpu', weights_only=True)
        except PermissionError:
            raise CheckpointError(f'cannot read weights file (permission denied): {path}') from None
        except Exception:   # corrupt, truncated, HTML error page, pickled code ...
            # (PyTorch's own message is many lines about `weights_only`: not for users)
            raise CheckpointError(f'not a readable PyTorch weights file (corrupt, truncated or not '
                                  f'a checkpoint; delete it and download it again): {path}') from None
    if not isinstance(sd, dict):
        raise CheckpointError(f'{_describe(path_or_state_dict)} holds a {type(sd).__name__}, '
                              f'not a state dict of tensors')
    # Unwrap {'state_dict': {...}, ...} style containers (possibly nested once more).
    for _ in range(2):
        if any(torch.is_tensor(v) for v in sd.values()):
            break
        inner = next((sd[k] for k in _WRAPPER_KEYS if isinstance(sd.get(k), dict)), None)
        if inner is None:
            break
        sd = inner
    keys = [k for k in sd if isinstance(k, str)]
    if keys and all(k.startswith('module.') for k in keys):
        sd = {k[len('module.'):]: v for k, v in sd.items()}
    return dict(sd)


def check_state_dict(module, state_dict):
    """Compare a flat state dict with `module.state_dict()` (names and shapes)."""
    own = module.state_dict()
    rep = LoadReport()
    for k, v in own.items():
        if k not in state_dict:
            rep.missing.append(k)
        elif not torch.is_tensor(state_dict[k]):
            rep.mismatched.append((k, tuple(v.shape), ()))
        elif tuple(state_dict[k].shape) != tuple(v.shape):
            rep.mismatched.append((k, tuple(v.shape), tuple(state_dict[k].shape)))
    rep.unexpected = [str(k) for k in state_dict if k not in own]
    return rep


def load_checked(module, path_or_state_dict, strict=True, kind=None):
    """Load weights into `module`, checking every key name and shape.

    strict=True: any missing / unexpected / wrongly-shaped entry raises CheckpointError whose one
    line names the first few keys of each kind (plus counts) and the kind of file expected
    (`kind`, default `module.checkpoint_kind` or the class name).
    strict=False: entries that fit are loaded, everything else is only reported.
    Returns a LoadReport.
    """
    kind = kind or getattr(module, 'checkpoint_kind', None) or type(module).__name__
    sd = read_state_dict(path_or_state_dict)
    rep = check_state_dict(module, sd)
    if strict and not rep.ok:
        raise CheckpointError(f'{_describe(path_or_state_dict)} is not a {kind} checkpoint: {rep.summary()}')
    bad = {k for k, _, _ in rep.mismatched}
    own = module.state_dict()
    fitting = {k: v for k, v in sd.items() if k in own and k not in bad}
    module.load_state_dict(fitting, strict=strict)
    rep.loaded = len(fitting)
    return rep
