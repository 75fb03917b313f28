#!/usr/bin/env bash
# Re-runs one cell of the Countdown experiment (docs/experiments/countdown.md)
# from scratch and checks it against the published numbers.
#
#   bash experiments/countdown/run.sh METHOD SEED
#
# METHOD: none | random | entropy | local | global | coupled | coupled-bottom
# SEED:   0, 1, 2, ...
#
# It trains from the bundled model with experiments/countdown/config.toml
# into runs/countdown/METHOD-sSEED (an existing run there is resumed, so a
# killed cell can be continued by running the same command), then compares
# every step's reward, accuracy and test accuracy with the published
# docs/experiments/countdown/runs/METHOD-sSEED/metrics.jsonl. The numbers
# are the same on the same machine type with the same thread count
# (RAYON_NUM_THREADS, default 2 here, as published).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -ne 2 ]; then
  echo "usage: bash experiments/countdown/run.sh METHOD SEED" >&2
  exit 2
fi
method=$1
seed=$2
case $method in
  none|random|entropy|local|global|coupled|coupled-bottom) ;;
  *) echo "run.sh: unknown METHOD '$method' (none, random, entropy, local, global, coupled, coupled-bottom)" >&2; exit 2 ;;
esac
case $seed in
  ''|*[!0-9]*) echo "run.sh: SEED must be a non-negative integer, got '$seed'" >&2; exit 2 ;;
esac
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
cell=$method-s$seed
out=runs/countdown/$cell
cargo build --release -q -p rhythm-cli
rhythm=target/release/rhythm
if [ -f "$out/metrics.jsonl" ]; then
  "$rhythm" train --resume "$out"
else
  "$rhythm" train --config experiments/countdown/config.toml \
    --strategy "$method" --seed "$seed" --out "$out"
fi
"$rhythm" curves "$out" --out "$out/summary" --start-accuracy "$(cat experiments/countdown/start_accuracy)"

published=docs/experiments/countdown/runs/$cell/metrics.jsonl
if [ ! -f "$published" ]; then
  echo "run.sh: no published run $published to compare with (a new cell)"
  exit 0
fi
# The deterministic columns of every step (times and throughput differ).
columns() {
  grep -o '"\(step\|reward\|accuracy\|response_len\|gamma_mean\|loss\|eval_accuracy\)":[^,}]*' "$1"
}
if diff <(columns "$published") <(columns "$out/metrics.jsonl") > "$out/diff.txt"; then
  echo "run.sh: $cell reproduces the published numbers ($published)"
else
  echo "run.sh: $cell differs from $published (first differences below, all in $out/diff.txt)" >&2
  head -n 20 "$out/diff.txt" >&2
  exit 1
fi
