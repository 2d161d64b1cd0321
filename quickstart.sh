#!/usr/bin/env bash
# One-stop setup + run.
#   ./quickstart.sh gui    set up .venv, generate the example clip, open the GUI on it
#   ./quickstart.sh test   set up .venv, run the test suite
# Extra arguments after `gui` go to interactive_gui.py, after `test` to pytest.
set -euo pipefail
cd "$(dirname "$0")"
cmd="${1:-}"; shift || true
PY="${PYTHON:-python3}"

die() { echo "quickstart: $*" >&2; exit 1; }

case "$cmd" in gui|test|setup) ;; *) die "usage: ./quickstart.sh gui|test [args...]";; esac

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null \
  || die "Python >= 3.9 is required (found: $("$PY" --version 2>&1 || echo none))"

# A virtual environment keeps the system Python untouched.
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    # Debian/Ubuntu ship venv separately.
    if command -v apt-get >/dev/null; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      echo "quickstart: installing python3-venv with apt-get" >&2
      $SUDO apt-get install -y python3-venv >/dev/null || die "could not install python3-venv (run: sudo apt-get install python3-venv)"
      "$PY" -m venv .venv || die "could not create .venv"
    else
      die "could not create a virtual environment (install the venv module for $PY)"
    fi
  fi
fi
VPY=.venv/bin/python
stamp=.venv/.ivos-installed
req_hash=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$req_hash" ]; then
  echo "quickstart: installing dependencies into .venv (first run takes a few minutes)" >&2
  $VPY -m pip install -q --upgrade pip
  # torch first: a loose spec with no torch installed would pull a much larger build.
  $VPY -c 'import torch' 2>/dev/null || $VPY -m pip install -q "torch==2.13.0"
  $VPY -m pip install -q -r requirements-dev.txt
  echo "$req_hash" > "$stamp"
fi

case "$cmd" in
  setup) echo "quickstart: ready (.venv)";;
  gui)
    $VPY example/make_example.py
    exec $VPY interactive_gui.py --images example/clip --num_objects 2 "$@";;
  test)
    export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
    exec $VPY -m pytest -q "$@";;
esac
