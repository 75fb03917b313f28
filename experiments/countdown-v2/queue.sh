#!/usr/bin/env bash
# Runs the whole Countdown v2 experiment (docs/experiments/countdown-v2.md) in
# its pre-registered order, one cell after another, skipping finished cells
# and resuming a stopped one: run it again after any stop.
#
#   nice -n 19 bash experiments/countdown-v2/queue.sh        # everything
#   bash experiments/countdown-v2/queue.sh --list            # the order, with status
#
# 1. The learning-rate probe: `none`, seed 100 (not an experiment seed), at each
#    of LRS; the learning rate of every later cell is the one with the best
#    validation accuracy at the last step (ties: the smaller), written to
#    experiments/countdown-v2/lr.
# 2. The primary comparison first: `none` and `coupled`, seeds 0..11.
# 3. The other five methods, seeds 0..4, seed by seed.
# (Until 2026-12-01 12:30 UTC the order was seeds 0..4 of all seven methods,
# then seeds 5..11 of the two; it was changed so that the primary cells finish
# first. A cell's result does not depend on when it runs.)
# One queue at a time (a lock file under runs/).
set -uo pipefail
cd "$(dirname "$0")/../.."
exp=experiments/countdown-v2
LRS=(1e-5 2e-5 5e-5)
METHODS=(none coupled entropy global random local coupled-bottom)

cells() {
  for lr in "${LRS[@]}"; do echo "none 100 $lr"; done
  for seed in 0 1 2 3 4 5 6 7 8 9 10 11; do
    for m in none coupled; do echo "$m $seed"; done
  done
  for seed in 0 1 2 3 4; do
    for m in "${METHODS[@]:2}"; do echo "$m $seed"; done
  done
}
cell_name() { if [ -n "${3:-}" ]; then echo "$1-s$2-lr$3"; else echo "$1-s$2"; fi; }

if [ "${1:-}" = "--list" ]; then
  cells | while read -r m s lr; do
    c=$(cell_name "$m" "$s" "$lr")
    if [ -f "$exp/results/$c/eval.json" ]; then st=done
    elif [ -d "runs/countdown-v2/$c" ]; then st=started
    else st=queued; fi
    echo "$c $st"
  done
  exit 0
fi

mkdir -p runs/countdown-v2
exec 9> runs/countdown-v2/.queue.lock
if ! flock -n 9; then
  echo "queue.sh: another queue is running (runs/countdown-v2/.queue.lock)" >&2
  exit 1
fi

choose_lr() {
  python3 - "$exp" "${LRS[@]}" <<'PY'
import json, sys
exp, lrs = sys.argv[1], sys.argv[2:]
acc = {}
for lr in lrs:
    with open(f"{exp}/results/none-s100-lr{lr}/eval.json") as f:
        acc[lr] = json.load(f)["validation_acc"]
best = max(acc.values())
print(min((float(lr), lr) for lr, a in acc.items() if a == best)[1])
PY
}

cells | while read -r m s lr; do
  c=$(cell_name "$m" "$s" "$lr")
  [ -f "$exp/results/$c/eval.json" ] && continue
  if [ -z "$lr" ] && [ ! -f "$exp/lr" ]; then
    chosen=$(choose_lr) || { echo "queue.sh: cannot choose the learning rate" >&2; exit 1; }
    echo "$chosen" > "$exp/lr.tmp" && mv "$exp/lr.tmp" "$exp/lr"
    echo "== learning rate chosen on validation: $chosen"
  fi
  echo "== $c ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  # shellcheck disable=SC2086
  bash $exp/run.sh "$m" "$s" $lr || echo "== $c failed ($(date -u +%H:%M:%S))"
done
