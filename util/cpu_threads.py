"""Intra-op threads for interactive calls (clicks, strokes, boxes) on a CPU.

An interaction runs small networks for 50-100 ms. With torch's default of one intra-op thread
per core, each operator splits its work over all cores and waits for the slowest part; when
another CPU-heavy process holds a core, that part waits for the scheduler, and a click measured
on a 2-core machine next to a training job took 1.2 s on average instead of 70-90 ms with one
thread (identical masks). So an interactive call uses no more threads than the cores left free
by the rest of the machine, read from the 1-minute load average: with a load of L on C cores,
max(1, round(C - L)) threads, never more than torch's current setting. Erring on the low side
costs little (a few tens of ms on an idle machine); oversubscribing costs ten times that.

    with interaction_threads():          # 'auto' (the Session's default), an int, or None
        ... run the interaction networks ...

Policies: 'auto' (the rule above), an int (that many threads), None (leave torch's setting).
The environment variable IVOS_INTERACTION_THREADS (an int, or 'auto' / 'off') overrides the
policy, for people who know their machine. Only CPU runs are affected; the thread count is put
back afterwards, so propagation and other work keep their own setting.
"""
import contextlib
import os

import torch

ENV_VAR = 'IVOS_INTERACTION_THREADS'


def usable_cpus():
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_load():
    """The 1-minute load average, or None where the platform has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def check_policy(policy):
    """`policy` as 'auto', None or an int >= 1 (ValueError otherwise)."""
    if policy is None or policy == 'auto':
        return policy
    if isinstance(policy, bool) or not isinstance(policy, int) or policy < 1:
        raise ValueError(f"interaction threads must be 'auto', None or an int >= 1, got {policy!r}")
    return int(policy)


def _env_policy(policy):
    v = os.environ.get(ENV_VAR, '').strip().lower()
    if not v:
        return policy
    if v == 'auto':
        return 'auto'
    if v in ('off', 'none', '0'):
        return None
    try:
        return max(1, int(v))
    except ValueError:
        return policy


def threads_for_interaction(policy='auto', current=None, cpus=None, load=None):
    """Intra-op threads an interactive call should use (see the module docstring). `current`:
    torch's setting now; `cpus`, `load`: the machine's (read when None; for tests)."""
    current = torch.get_num_threads() if current is None else int(current)
    policy = _env_policy(check_policy(policy))
    if policy is None:
        return current
    if policy != 'auto':
        return policy
    cpus = usable_cpus() if cpus is None else cpus
    load = machine_load() if load is None else load
    if load is None:
        return current
    free = int(cpus - load + 0.5)
    return max(1, min(current, free))


@contextlib.contextmanager
def interaction_threads(policy='auto', device=None):
    """Run the body with threads_for_interaction(policy) intra-op threads (CPU only), then put
    torch's setting back."""
    if device is not None and torch.device(device).type != 'cpu':
        yield
        return
    before = torch.get_num_threads()
    n = threads_for_interaction(policy, before)
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
