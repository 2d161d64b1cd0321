"""Command-line options that the GUI and the command-line tools share (their checks against the
networks' kinds: inference_core.networks.check_engine_options)."""
AMP_CHOICES = ('off', 'fp16', 'bf16')


def add_amp_option(parser):
    """The one spelling of the autocast option: --amp off|fp16|bf16 (default off)."""
    parser.add_argument('--amp', default='off', choices=AMP_CHOICES,
                        help='autocast dtype on CUDA: off (default), fp16 or bf16 (no effect on '
                             'the CPU)')
