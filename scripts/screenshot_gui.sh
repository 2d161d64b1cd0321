#!/usr/bin/env bash
# Screenshot of the GUI after a real interaction, for docs and visual checks.
#
#   scripts/screenshot_gui.sh [OUT.png] [extra interactive_gui.py args...]
#
# Generates the example clip if needed, writes a demo script (one positive scribble inside each
# object on frame 0, taken from the example's ground truth, then Propagate, then a jump to a
# later frame), runs the GUI under Xvfb with --demo-script/--screenshot (the same handlers the
# mouse uses) and saves the window as OUT.png (default out/gui_screenshot.png).
# Needs Xvfb (apt-get install -y xvfb); without it, falls back to Qt's offscreen platform.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-out/gui_screenshot.png}"
shift || true
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
mkdir -p "$(dirname "$OUT")"
"$PY" example/make_example.py >/dev/null

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" - "$TMP/demo.json" <<'EOF'
import json, sys
import cv2
import numpy as np
sys.path.insert(0, '.')
from util.mask_io import read_label_png

gt = read_label_png('example/masks/00000.png')
h, w = gt.shape
steps = []
for obj in (1, 2):
    inner = cv2.erode((gt == obj).astype(np.uint8), np.ones((25, 25), np.uint8))
    ys, xs = np.nonzero(inner)
    # A gentle curve through the object's middle, in fractions of the frame (resolution-free).
    cy = np.median(ys)
    row = np.flatnonzero(inner[int(cy)])
    x0, x1 = row[len(row) // 5], row[4 * len(row) // 5]
    pts = [[float(x) / w, float(cy + 0.08 * (x1 - x0) * np.sin(np.pi * (x - x0) / max(x1 - x0, 1))) / h]
           for x in np.linspace(x0, x1, 12)]
    steps += [{'action': 'object', 'id': obj},
              {'action': 'scribble', 'points': pts, 'norm': True, 'positive': True}]
steps += [{'action': 'propagate'}, {'action': 'goto', 'frame': 24}, {'action': 'object', 'id': 1},
          {'action': 'wait', 'ms': 300}]
json.dump(steps, open(sys.argv[1], 'w'))
EOF

ARGS=(interactive_gui.py --images example/clip --num_objects 2 --workspace "$TMP/ws" --no-resume
      --demo-script "$TMP/demo.json" --screenshot "$OUT" "$@")
if command -v xvfb-run >/dev/null; then
  xvfb-run -a -s "-screen 0 1600x1000x24" "$PY" "${ARGS[@]}"
else
  echo "screenshot_gui: xvfb-run not found, using QT_QPA_PLATFORM=offscreen" >&2
  QT_QPA_PLATFORM=offscreen "$PY" "${ARGS[@]}"
fi
echo "wrote $OUT"
