#!/usr/bin/env bash
# Train the propagation network on the GPU machine a session may be lent (the `device` tool), from
# the repository root there, with the pack of `python -m scripts.train.device_pack` carried:
#
#   run(command="bash scripts/train/device_train.sh 7", carry=[".device_data"], timeout_s=560)
#
# MINUTES (default 7) of training; the learning rate drops x10 after 80% of them. Up to five
# snapshots of the averaged weights, snapshots.json, the trainer's log.jsonl and train.log land
# in $OUT (at most 8 files come back). Choose among them here with
# `python -m scripts.train.pick_snapshot <files_at>` (scripts/train/README.md).
# Extra arguments go to train_propagation (e.g. --init FILE, --lr, --batch).
# DEVICE=cpu PYTHON=.venv/bin/python OUT=runs/device_out runs the same thing on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-7}
shift || true
pack=${PACK:-.device_data}
out=${OUT:-runs/device_out}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
work=${WORK:-/tmp/device_train}
mkdir -p "$out" "$work"
export PYTHONPATH="$PWD/$pack/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
for f in "$pack/manifest.json" "$pack/backbone_lite0.pth" "$pack/davis/videos"; do
    [ -e "$f" ] || { echo "missing $f: build the pack with python -m scripts.train.device_pack" >&2; exit 2; }
done
fg=()
[ -d "$pack/static-fg/images" ] && fg=(--static-fg "$pack/static-fg" --p-static-fg 0.35)
if [ "$device" = cuda ]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true; fi
workers=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
read -r anneal snap < <($py -c "m=float('$minutes'); print(0.8 * m, m / 4.5)")
echo "training $minutes min on $device with $workers clip workers; snapshots every $snap min" >&2
set +e
$py -m scripts.train.train_propagation --name device --runs "$work/runs" --cache "$work/cache" \
    --data "$pack/davis" "${fg[@]}" --backbone-weights "$pack/backbone_lite0.pth" \
    --device "$device" --workers "$workers" --threads 2 --batch 8 --lr 5e-4 --iters 1000000 \
    --minutes "$minutes" --anneal-minutes "$anneal" --no-val --no-export \
    --snapshot-dir "$out" --snapshot-minutes "$snap" "$@" > "$out/train.log" 2>&1
rc=$?
set -e
cp "$work/runs/device/log.jsonl" "$out/" 2>/dev/null || true
tail -n 5 "$out/train.log" | tr '\r' '\n' | tail -n 5
grep '"loss"' "$out/log.jsonl" 2>/dev/null | tail -n 2 || true
exit $rc
