"""The loop scaffolding every trainer shares: when to stop, when to save, when to validate.

    loop = TrainLoop(args, 'fusion', it, save, run_dir)
    with loop:
        while loop.running(it):
            ...one optimisation step...
            it += 1
            loop.stepped(it, loss=run_loss)          # progress bar; saves every 5 minutes
            if loop.validation_due(it):
                ...validate, maybe export...
                save()

A run stops at --iters, after --minutes of this process, or on ctrl-c / SIGTERM (the current
iteration finishes first); leaving the `with` block saves `runs/<name>/last.pt` whatever ended
the run, so a rerun of the same command resumes.
"""
import time

from scripts.train.common import StopFlag, make_bar

SAVE_SECONDS = 300


class TrainLoop:
    def __init__(self, args, label, it, save, run_dir, on_exit=None):
        """args: the trainer's parsed options (iters, minutes, and where the trainer has them
        no_val, val_every, val_minutes); it: the starting iteration; save(): writes last.pt;
        on_exit(): anything else to write when the loop ends (after save)."""
        self.args, self.save, self.run_dir, self.on_exit = args, save, run_dir, on_exit
        self.t_start = self.last_save = self.last_val = time.time()
        self.stop = StopFlag()
        self.bar = make_bar(args.iters, label)
        self.bar.update(min(it, args.iters))
        self.it = it

    @property
    def minutes(self):
        """Minutes since this process started the loop."""
        return (time.time() - self.t_start) / 60

    def running(self, it):
        """Whether to run another iteration."""
        self.it = it
        if it >= self.args.iters or self.stop.stop:
            return False
        limit = getattr(self.args, 'minutes', None)
        return limit is None or self.minutes <= limit

    def stepped(self, it, **bar_fields):
        """After iteration `it`: the progress bar, and last.pt every SAVE_SECONDS."""
        self.it = it
        self.bar.update(min(it, self.args.iters), **bar_fields)
        if time.time() - self.last_save > SAVE_SECONDS:
            self.save()
            self.last_save = time.time()

    def validation_due(self, it):
        """Every --val-every iterations, at the last one, and after --val-minutes without one
        (never with --no-val)."""
        a = self.args
        if getattr(a, 'no_val', False):
            return False
        val_minutes = getattr(a, 'val_minutes', None)
        due = (it % a.val_every == 0 or it >= a.iters
               or (val_minutes is not None and time.time() - self.last_val > val_minutes * 60))
        if due:
            self.last_val = time.time()
        return due

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.save()
            if self.on_exit is not None:
                self.on_exit()
        finally:
            self.stop.restore()
            self.bar.finish(dirty=True)
        if exc_type is None:
            print(f'stopped at iteration {self.it}; checkpoint {self.run_dir / "last.pt"}', flush=True)
        return False
