"""Validation of the engine options that the GUI and the command-line tools share."""
from util.errors import UserError

AMP_CHOICES = ('off', 'fp16', 'bf16')


def add_amp_option(parser):
    """The one spelling of the autocast option: --amp off|fp16|bf16 (default off)."""
    parser.add_argument('--amp', default='off', choices=AMP_CHOICES,
                        help='autocast dtype on CUDA: off (default), fp16 or bf16 (no effect on '
                             'the CPU)')



def check_engine_options(args):
    """Cheap checks, before any heavy loading, of whichever of --model, --resolution, --top_k,
    --mem_freq and --max_memory_frames the parsed command line has. Raises UserError."""
    from inference_core.networks import KINDS
    model = getattr(args, 'model', None)
    if model is not None and model not in KINDS:
        raise UserError(f'unknown model {model!r} (use official, bundled or auto)')
    resolution = getattr(args, 'resolution', None)
    if resolution is not None:
        from util.frames_io import _check_resolution       # the bound the API applies too
        _check_resolution(resolution, '--resolution')
    for name in ('top_k', 'mem_freq', 'max_memory_frames'):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f'--{name} must be at least 1, got {value}')
