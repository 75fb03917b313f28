#!/usr/bin/env bash
# Copies every finished cell of runs/countdown (metrics.jsonl and
# config.toml; not the checkpoints) to docs/experiments/countdown/runs and
# redraws the table and curves there with `rhythm curves`:
#   bash experiments/countdown/publish.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=docs/experiments/countdown
mkdir -p "$dest/runs"
for run in runs/countdown/*/; do
  cell=$(basename "$run")
  if [ -f "$run/summary/summary.json" ]; then
    mkdir -p "$dest/runs/$cell"
    cp "$run/metrics.jsonl" "$run/config.toml" "$dest/runs/$cell/"
  fi
done
cargo build --release -q -p rhythm-cli
target/release/rhythm curves "$dest"/runs/*/ --out "$dest" \
  --start-accuracy "$(cat experiments/countdown/start_accuracy)" \
  --title "Countdown from countdown-tiny"
