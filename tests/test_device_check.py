"""scripts/device_check.sh --cpu: the smoke subset of the prepared GPU check runs and reports."""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_device_check_cpu_smoke(tmp_path, mivos_ref):
    env = dict(os.environ, OUT=str(tmp_path), OMP_NUM_THREADS='1')
    r = subprocess.run(['bash', str(REPO / 'scripts' / 'device_check.sh'), '--cpu'], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((tmp_path / 'device_check.json').read_text())
    assert rep['ok'] and rep['mode'] == 'cpu'
    assert rep['steps']['fixture_fp32']['last_line'].startswith('10 passed')
    prop = rep['steps']['bench_fp32']['results']['bundled']['propagation']
    assert [p['objects'] for p in prop] == [1, 3] and all(p['fps'] > 0 for p in prop)
