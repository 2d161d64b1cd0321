#!/usr/bin/env bash
# One prepared GPU check, for a machine with CUDA (one command, well under 8 minutes on one GPU):
#   1. the golden MiVOS fixture (tests/test_engine_fixture.py) on CUDA in fp32 (the fixture's own
#      tolerances) and under fp16 autocast (the looser tolerances stated in that file),
#   2. python -m scripts.benchmark on CUDA for both model kinds, without and with AMP,
#   3. a JSON report: $OUT/device_check.json (./device_check_out/ when OUT is unset).
#
#   scripts/device_check.sh          # on the GPU machine
#   scripts/device_check.sh --cpu    # smoke subset on the CPU (CI runs this): fixture in fp32,
#                                    # a 3-frame benchmark of the bundled networks
# Exit status: 0 when every step passed, 1 otherwise (the report says which step failed).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=cuda
[ "${1:-}" = "--cpu" ] && mode=cpu
OUT="${OUT:-$PWD/device_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1
steps=()

run_step() {   # name, command...
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  steps+=("$name:$rc:$((SECONDS - t0))")
  echo "device_check: $name rc=$rc ($((SECONDS - t0)) s)"
}

if [ "$mode" = cuda ]; then
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || { echo "device_check: no CUDA device visible to torch (use --cpu for the smoke run)" >&2; exit 1; }
  run_step fixture_fp32 env IVOS_TEST_DEVICE=cuda IVOS_TEST_AMP=off "$PY" -m pytest -q tests/test_engine_fixture.py
  run_step fixture_amp env IVOS_TEST_DEVICE=cuda IVOS_TEST_AMP=fp16 "$PY" -m pytest -q tests/test_engine_fixture.py
  run_step bench_fp32 "$PY" -m scripts.benchmark --device cuda --kinds bundled official --no-adapt --output "$OUT/bench_fp32.json"
  run_step bench_amp "$PY" -m scripts.benchmark --device cuda --kinds bundled official --amp fp16 --no-adapt --output "$OUT/bench_amp.json"
else
  run_step fixture_fp32 env IVOS_TEST_DEVICE=cpu IVOS_TEST_AMP=off "$PY" -m pytest -q tests/test_engine_fixture.py
  run_step bench_fp32 "$PY" -m scripts.benchmark --device cpu --kinds bundled --frames 3 --repeats 1 --no-adapt --threads 1 --output "$OUT/bench_fp32.json"
fi

"$PY" - "$OUT" "$mode" "${steps[@]}" <<'PYEOF'
import json, os, platform, sys
out, mode, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
import torch
report = {'mode': mode, 'torch': torch.__version__, 'python': platform.python_version(),
          'cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
          'steps': {}}
for s in steps:
    name, rc, secs = s.rsplit(':', 2)
    log = open(os.path.join(out, name + '.log'), errors='replace').read().strip().splitlines()
    entry = {'ok': rc == '0', 'rc': int(rc), 'seconds': int(secs), 'last_line': log[-1] if log else ''}
    bench = os.path.join(out, name + '.json')
    if name.startswith('bench') and os.path.exists(bench):
        entry['results'] = json.load(open(bench))['results']
        errors = [k for k, v in entry['results'].items() if 'error' in v]
        if errors:
            entry['ok'], entry['errors'] = False, {k: entry['results'][k]['error'] for k in errors}
    report['steps'][name] = entry
report['ok'] = all(e['ok'] for e in report['steps'].values())
with open(os.path.join(out, 'device_check.json'), 'w') as f:
    json.dump(report, f, indent=1)
print(json.dumps({k: v['ok'] for k, v in report['steps'].items()} | {'ok': report['ok']}))
sys.exit(0 if report['ok'] else 1)
PYEOF
