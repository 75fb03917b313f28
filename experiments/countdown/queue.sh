#!/usr/bin/env bash
# Runs cells of the Countdown experiment one after another (seed by seed,
# every method for a seed before the next seed), skipping finished ones:
#   bash experiments/countdown/queue.sh [SEEDS...]   (default: 0 1 2)
# Each cell is `bash experiments/countdown/run.sh METHOD SEED`; a killed
# queue picks up where it stopped (run.sh resumes an unfinished cell).
set -uo pipefail
cd "$(dirname "$0")/../.."
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(0 1 2)
for seed in "${seeds[@]}"; do
  for method in none coupled random entropy local global coupled-bottom; do
    if [ -f "runs/countdown/$method-s$seed/summary/summary.json" ]; then
      continue
    fi
    echo "== $method seed $seed ($(date -u +%H:%M:%S))"
    bash experiments/countdown/run.sh "$method" "$seed" || echo "== $method seed $seed failed"
  done
done
