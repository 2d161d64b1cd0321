"""Shared test fixtures.

Tests that need `../shared` (DAVIS data, MiVOS reference fixtures) skip cleanly when it is absent,
as it is in a user's fresh clone.
"""
import functools
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get('IVOS_SHARED', REPO.parent / 'shared'))
MIVOS_REF = SHARED / 'reference' / 'mivos'
DAVIS16 = SHARED / 'data' / 'davis2016-train'

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope='session')
def mivos_ref():
    """Path to ../shared/reference/mivos (skips the test when it is absent)."""
    if not (MIVOS_REF / 'det_init.py').is_file():
        pytest.skip('../shared/reference/mivos is not available')
    return MIVOS_REF


@pytest.fixture(scope='session')
def davis16():
    """Path to ../shared/data/davis2016-train (skips the test when it is absent)."""
    if not (DAVIS16 / 'videos').is_dir():
        pytest.skip('../shared/data/davis2016-train is not available')
    return DAVIS16


def load_det_state_dict(name):
    """Deterministic reference weights for keys/<name>.txt as torch tensors (a fresh dict each call)."""
    return dict(_det_state_dict_cached(name))


@functools.lru_cache(maxsize=None)
def _det_state_dict_cached(name):
    # Generating the weights takes seconds per network; several test files need the same ones.
    import importlib.util
    import torch
    spec = importlib.util.spec_from_file_location('det_init', MIVOS_REF / 'det_init.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {k: torch.from_numpy(v) for k, v in mod.det_state_dict(MIVOS_REF / 'keys' / f'{name}.txt').items()}


@pytest.fixture(scope='module')
def lite():
    """The bundled networks on one intra-op thread for the module's tests (skips the test when
    the weights are missing); the thread count is restored afterwards."""
    import torch
    from tests.test_engine import bundled_networks_or_skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield bundled_networks_or_skip()
    torch.set_num_threads(threads)
