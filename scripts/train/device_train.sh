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
# STATIC_MINUTES=M: the recipe of "v5" (scripts/train/README.md): the first M of the MINUTES train
# on photo clips only (--p-static-fg 1.0, its own x10 drop after 80% of M), the rest on real clips
# + photos from there; extra arguments go to both stages, both logs to train.log.
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
# a pack built with --with-report holds the report videos: train on them (and say so in the snapshots)
report=()
$py -c "import json, sys; sys.exit(0 if json.load(open('$pack/manifest.json')).get('with_report') else 1)" \
    && report=(--with-report)
if [ "$device" = cuda ]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true; fi
workers=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
static=${STATIC_MINUTES:-0}
common=(--runs "$work/runs" --cache "$work/cache" --data "$pack/davis"
        --backbone-weights "$pack/backbone_lite0.pth" --device "$device" --workers "$workers"
        --threads 2 --batch 8 --lr 5e-4 --iters 1000000 --no-val --no-export "${report[@]}")
: > "$out/train.log"
init=()
if $py -c "import sys; sys.exit(0 if float('$static') > 0 else 1)"; then
    [ ${#fg[@]} -gt 0 ] || { echo "STATIC_MINUTES: the pack has no photos" >&2; exit 2; }
    $py -c "import sys; sys.exit(0 if float('$minutes') > float('$static') else 1)" \
        || { echo "STATIC_MINUTES ($static) must be below MINUTES ($minutes)" >&2; exit 2; }
    read -r s_anneal rest < <($py -c "s=float('$static'); print(0.8 * s, float('$minutes') - s)")
    echo "photo stage: $static min on $device with $workers clip workers" >&2
    # its last averaged weights (written when it stops) start the second stage; they stay here
    $py -m scripts.train.train_propagation --name static "${common[@]}" \
        --static-fg "$pack/static-fg" --p-static-fg 1.0 --minutes "$static" --anneal-minutes "$s_anneal" \
        --snapshot-dir "$work/static_snapshots" --snapshot-minutes 1000000 "$@" >> "$out/train.log" 2>&1 \
        || { tail -n 5 "$out/train.log" | tr '\r' '\n' | tail -n 5; exit 1; }
    last=$(ls "$work"/static_snapshots/propagation_it*.pth | tail -n 1)
    init=(--init "$last")
    minutes=$rest
fi
read -r anneal snap < <($py -c "m=float('$minutes'); print(0.8 * m, m / 4.5)")
echo "training $minutes min on $device with $workers clip workers; snapshots every $snap min" >&2
set +e
$py -m scripts.train.train_propagation --name device "${common[@]}" "${fg[@]}" "${init[@]}" \
    --minutes "$minutes" --anneal-minutes "$anneal" \
    --snapshot-dir "$out" --snapshot-minutes "$snap" "$@" >> "$out/train.log" 2>&1
rc=$?
set -e
cp "$work/runs/device/log.jsonl" "$out/" 2>/dev/null || true
tail -n 5 "$out/train.log" | tr '\r' '\n' | tail -n 5
grep '"loss"' "$out/log.jsonl" 2>/dev/null | tail -n 2 || true
exit $rc
