"""Speed and memory benchmarks: one entry point, one JSON document per run.

    python -m scripts.benchmark [all] [--kinds bundled official] [--frames 30] [--amp fp16]
    python -m scripts.benchmark propagation [--model official|bundled] [--objects 1 3] [--frames 10]
    python -m scripts.benchmark interaction [--model bundled] [--repeats 5]
    python -m scripts.benchmark click [--paths fbrs bundled] [--clicks 3]
    python -m scripts.benchmark store [--frames 3000] [--storage auto|memory|disk]
    python -m scripts.benchmark long-video [--frames 10000] [--kinds bundled]

Commands (`python -m scripts.benchmark COMMAND --help` lists the options of each):
  all          (the default) per network kind, each in its own process: load time,
               Session.propagate FPS with 1 and 3 objects, scribble and click latency, online
               adaptation, peak RSS / GPU memory
  propagation  propagation FPS, CPU time per frame and memory on a generated clip, one process
               per object count, with the memory options (--mem_freq, --top_k,
               --max_memory_frames, --feature_cache_mb)
  interaction  Session.scribble and Session.click latency on the 480p example clip (wall and
               CPU seconds)
  click        the click controller alone: latency per click of f-BRS (L-BFGS evaluations,
               zoom-in) and of the bundled interaction net
  store        Session.open load time and memory on a long synthetic video, and a pass over
               every frame
  long-video   an N-frame H.264 video opened, propagated and exported through the Session:
               per-frame time early vs late in the video, peak RSS

Every command prints its JSON report on stdout (progress bars and a summary on stderr);
--output FILE also writes it to a file. Options keep one spelling across the commands:
--device auto|cpu|cuda|cuda:N, --threads N, --amp off|fp16|bf16, --output FILE, --quiet.
"""
import argparse
import sys

from scripts.benchmark import click, interaction, long_video, propagation, store, suite

COMMANDS = {'all': suite, 'propagation': propagation, 'interaction': interaction,
            'click': click, 'store': store, 'long-video': long_video}
DEFAULT_COMMAND = 'all'


def build_parser():
    p = argparse.ArgumentParser(prog='python -m scripts.benchmark', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, mod in COMMANDS.items():
        sp = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                            prog=f'python -m scripts.benchmark {name}',
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(sp)
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == '--long-video' or a.startswith('--long-video=') for a in argv):
        from util.errors import UserError
        raise UserError('the long-video benchmark is a command now: '
                        'python -m scripts.benchmark long-video --frames N')
    if not argv or (argv[0].startswith('-') and argv[0] not in ('-h', '--help')):
        argv.insert(0, DEFAULT_COMMAND)        # `python -m scripts.benchmark [options]`
    args = build_parser().parse_args(argv)
    args.argv = argv                           # child processes repeat the command line
    if getattr(args, 'threads', None):
        if args.threads < 1:
            from util.errors import UserError
            raise UserError(f'--threads must be at least 1, got {args.threads}')
        import torch
        torch.set_num_threads(args.threads)
    return COMMANDS[args.command].run(args)
