"""The thread policy of interactive calls (util/cpu_threads.py): one intra-op thread
per free core, torch's setting put back afterwards, the Session's interactions run under it."""
import numpy as np
import pytest
import torch

from util import cpu_threads
from util.cpu_threads import interaction_threads, threads_for_interaction


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(cpu_threads.ENV_VAR, raising=False)


def test_threads_follow_the_free_cores():
    assert threads_for_interaction('auto', current=2, cpus=2, load=0.1) == 2     # idle
    assert threads_for_interaction('auto', current=2, cpus=2, load=1.0) == 1     # a busy neighbour
    assert threads_for_interaction('auto', current=2, cpus=2, load=5.0) == 1     # never 0
    assert threads_for_interaction('auto', current=8, cpus=8, load=3.2) == 5
    assert threads_for_interaction('auto', current=2, cpus=8, load=0.0) == 2     # never above torch's
    assert threads_for_interaction(None, current=4, cpus=8, load=8.0) == 4       # policy off
    assert threads_for_interaction(3, current=4, cpus=8, load=0.0) == 3


def test_environment_overrides_the_policy(monkeypatch):
    monkeypatch.setenv(cpu_threads.ENV_VAR, '1')
    assert threads_for_interaction('auto', current=4, cpus=4, load=0.0) == 1
    monkeypatch.setenv(cpu_threads.ENV_VAR, 'off')
    assert threads_for_interaction('auto', current=4, cpus=4, load=4.0) == 4


def test_bad_policies_are_refused():
    for bad in (0, -1, 'many', 1.5, True):
        with pytest.raises(ValueError):
            threads_for_interaction(bad, current=2, cpus=2, load=0.0)


def test_the_setting_is_put_back(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(cpu_threads, 'machine_load', lambda: 7.0)
        with interaction_threads('auto'):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError):
            with interaction_threads(1):
                raise RuntimeError('boom')
        assert torch.get_num_threads() == 2
        with interaction_threads('auto', device='cuda'):       # GPUs: untouched
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_session_interactions_run_under_the_policy(lite, monkeypatch):
    from inference_core.session import Session
    from util.errors import UserError
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (1, 64, 96, 3), dtype=np.uint8)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    try:
        with Session.from_frames(frames, storage='memory', num_objects=1, networks=lite,
                                 interaction_threads=1) as s:
            real = s._prompts.scribbler.interact
            monkeypatch.setattr(s._prompts.scribbler, 'interact', lambda *a, **k: (
                seen.append(torch.get_num_threads()), real(*a, **k))[1])
            s.scribble(0, 1, positive=[[(30, 30), (50, 30)]])
            s.add_box(0, 1, (20, 10, 70, 50))
            assert seen == [1, 1] and torch.get_num_threads() == 2
            s.click(0, 1, 40, 30)
            assert torch.get_num_threads() == 2
        with pytest.raises(UserError, match='interaction threads'):
            Session.from_frames(frames, storage='memory', num_objects=1, networks=lite,
                                interaction_threads=0)
    finally:
        torch.set_num_threads(before)
