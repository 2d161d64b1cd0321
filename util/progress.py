"""progressbar2 as a `progress(done, total)` callback for command-line tools.

    with cli_progress('loading') as progress:
        session = Session.open(path, progress=progress)
"""
import contextlib
import sys

import progressbar


class CliProgress:
    """Callable progress(done, total) drawing a progressbar2 bar on stderr.

    The bar is (re)created when `total` changes (e.g. a video whose header under-counted), and
    finished by close(). quiet=True prints nothing.
    """

    def __init__(self, label='', quiet=False, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._bar = None
        self._total = None

    def __call__(self, done, total):
        if self.quiet:
            return
        total = max(int(total), int(done), 1)
        if self._bar is None or total != self._total:
            if self._bar is not None:
                self._bar.finish(dirty=True)
            widgets = ([f'{self.label}: '] if self.label else []) + [
                progressbar.Counter(), f'/{total} ', progressbar.Bar(), ' ', progressbar.ETA()]
            self._bar = progressbar.ProgressBar(max_value=total, widgets=widgets, fd=self.stream)
            self._total = total
        self._bar.update(min(int(done), total))

    def close(self, failed=False):
        """Finish the bar: at 100 % after success; failed=True (an error or Ctrl+C) leaves it
        at the value it reached."""
        if self._bar is not None:
            if failed:
                try:        # draw the value reached (updates are rate-limited)
                    self._bar.update(self._bar.value, force=True)
                except Exception:
                    pass
            self._bar.finish(dirty=failed)
            self._bar = None


@contextlib.contextmanager
def cli_progress(label='', quiet=False, stream=None):
    """Context manager yielding a CliProgress; the bar is finished on exit (at 100 %), or left
    where it was when the block ends with an exception (an error, Ctrl+C)."""
    p = CliProgress(label, quiet, stream)
    try:
        yield p
    except BaseException:
        p.close(failed=True)
        raise
    p.close()
