"""Device selection shared by the GUI and the CLIs."""
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
