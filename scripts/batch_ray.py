"""Batch propagation on Ray: `python -m scripts.propagate --dataset ... --workers N [--address A]`.

Sequences run in parallel on N worker actors (a local Ray cluster on this machine by default;
`--address` joins an existing cluster, whose nodes must see the dataset and the output folder at
the same paths). Each worker loads the networks once and uses `cores // N` torch threads (or
--threads), so N workers do not oversubscribe the cores. A worker writes a sequence into a temp
folder inside the output folder; the driver alone moves finished sequences into place and keeps
the run marker, exactly as the serial loop does, so resume, --overwrite and the byte-identical
outputs are the same. A worker that dies (killed, out of memory) is restarted and its sequence
retried; a sequence that fails with an error is reported and the others go on.
"""
import argparse
import os
import sys
import time
from pathlib import Path

from util.errors import UserError

REPO = Path(__file__).resolve().parents[1]
INSTALL_HINT = 'pip install -r requirements-ray.txt'
RETRIES = 2          # a killed worker's sequence is tried again this many times


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f'--workers and --address need Ray, an optional extra: {INSTALL_HINT}') from None
    return ray


def threads_per_worker(workers, threads=None):
    if threads:
        return int(threads)
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class SequenceWorker:
    """One Ray actor: loads the networks once, then propagates sequences on request."""

    def __init__(self, args_dict, threads):
        import torch
        torch.set_num_threads(threads)
        from inference_core.networks import load_networks
        from scripts.propagate_runner import Runner
        self.args = argparse.Namespace(**args_dict)
        self.networks = load_networks(self.args.model, saves_dir=self.args.saves,
                                      device=self.args.device)
        self.runner = Runner(self.networks, self.args)

    def pid(self):
        return os.getpid()

    def process(self, name, frames_path, mfiles, mode, tmp):
        """('ok', info) or ('failed', one-line reason)."""
        from scripts.propagate_sequence import process_sequence
        try:
            info = process_sequence(frames_path, mfiles, mode, tmp, self.runner,
                                    self.args.resolution, label=name, quiet=True,
                                    exports=self.args.exports or ['png'],
                                    coco_images=self.args.coco_images or 'write')
        except UserError as e:
            return 'failed', str(e)
        except Exception as e:            # a bug or an environment failure: one line too
            return 'failed', f'{e.__class__.__name__}: {e}'
        if info is None:
            return 'failed', 'cancelled'
        return 'ok', info


def start(args):
    """Connect to (or start) Ray and return (ray, [actor handles])."""
    ray = import_ray()
    threads = threads_per_worker(args.workers, args.threads)
    env = {'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads),
           'PYTHONPATH': str(REPO)}
    if args.address:
        runtime_env = {'working_dir': str(REPO), 'env_vars': env,
                       'excludes': ['.venv/', '.git/', 'saves/', '*.pth.part', '__pycache__/']}
        ray.init(address=args.address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={'env_vars': env}, configure_logging=False)
    actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=RETRIES)(SequenceWorker)
    fields = ('model', 'saves', 'device', 'mem_freq', 'top_k', 'max_memory_frames', 'amp',
              'flip', 'adapt', 'resolution', 'working_frames', 'long_term_frames',
              'exports', 'coco_images')
    args_dict = {k: getattr(args, k, None) for k in fields}
    workers = [actor.remote(args_dict, threads) for _ in range(args.workers)]
    return ray, workers


def run(args, todo, begin, finish, fail, progress):
    """Propagate `todo` = [(name, frames_path, mask_files, mode, tmp)] on the workers.
    begin(name) is called before a sequence is submitted, finish(name, info) on the driver when
    it is done, fail(name, reason) when it failed; progress(done, total) after each."""
    ray, workers = start(args)
    try:
        pending, queue, done = {}, list(todo), 0
        idle = list(workers)
        t0 = time.time()
        while queue or pending:
            while queue and idle:
                name, frames_path, mfiles, mode, tmp = queue.pop(0)
                w = idle.pop()
                begin(name)
                pending[w.process.remote(name, frames_path, mfiles, mode, tmp)] = (name, w)
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            name, w = pending.pop(ref)
            idle.append(w)
            try:
                status, result = ray.get(ref)
            except Exception as e:    # the worker died more often than RETRIES
                status, result = 'failed', f'worker lost ({e.__class__.__name__})'
            if status == 'ok':
                try:
                    finish(name, result)
                except UserError as e:
                    fail(name, str(e))
            else:
                fail(name, result)
            done += 1
            progress(done, len(todo))
        return time.time() - t0
    finally:
        ray.shutdown()


def summary(done, skipped, failed, stream=None):
    """Print the final one-screen summary; returns the exit code (1 when any failed)."""
    stream = stream or sys.stderr
    print(f'batch: {len(done)} done, {len(skipped)} skipped (already done), {len(failed)} failed',
          file=stream)
    for name, reason in failed:
        print(f'  failed {name}: {reason}', file=stream)
    return 1 if failed else 0
