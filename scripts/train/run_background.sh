#!/usr/bin/env bash
# Start (or resume) a background training run that survives the terminal:
#   scripts/train/run_background.sh propagation prop [extra args...]
#   scripts/train/run_background.sh interaction inter [extra args...]
# Logs: runs/<name>/stdout.log (progress) and runs/<name>/log.jsonl (losses, validation).
# Stop: kill -INT $(cat runs/<name>/pid)   (saves runs/<name>/last.pt; rerun this script to resume)
set -euo pipefail
cd "$(dirname "$0")/../.."
kind=$1; name=$2; shift 2
mkdir -p "runs/$name"
. .venv/bin/activate
setsid nohup nice -n 10 python -m "scripts.train.train_$kind" --name "$name" "$@" \
    >> "runs/$name/stdout.log" 2>&1 < /dev/null &
echo $! > "runs/$name/pid"
echo "started $kind run '$name' (pid $(cat runs/$name/pid)); log: runs/$name/stdout.log"
