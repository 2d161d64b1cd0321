"""Device selection shared by the GUI and the CLIs, and the autocast dtype of an `amp` setting."""
import torch

from util.errors import UserError


def pick_device(name='auto'):
    """'auto' -> cuda if available else cpu; 'cpu'; 'cuda' / 'cuda:N' (error if unavailable)."""
    if name in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if str(name).startswith('cuda') and not torch.cuda.is_available():
        raise UserError(f'--device {name}: CUDA is not available on this machine (use cpu or auto)')
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f'unknown device {name!r} (use auto, cpu or cuda)') from None


def amp_dtype(amp, device):
    """Resolve an `amp` setting to a torch dtype or None (AMP is used on CUDA only).

    amp: False/None/'off' -> None; True/'fp16'/'float16' -> float16; 'bf16'/'bfloat16' -> bfloat16.
    """
    if amp in (None, False, 'off', 'none', 'fp32'):
        return None
    if torch.device(device).type != 'cuda':
        return None
    if amp in (True, 'fp16', 'float16', 'on', 'auto'):
        return torch.float16
    if amp in ('bf16', 'bfloat16'):
        return torch.bfloat16
    raise UserError(f'unknown amp setting {amp!r} (use off, fp16 or bf16)')
