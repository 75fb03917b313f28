#!/usr/bin/env bash
# Runs one cell of the Countdown v2 experiment (docs/experiments/countdown-v2.md)
# to the end, resuming it if it was stopped, and records its results.
#
#   bash experiments/countdown-v2/run.sh METHOD SEED [LR]
#
# METHOD: none | random | entropy | local | global | coupled | coupled-bottom
# SEED:   0, 1, 2, ...
# LR:     only for the learning-rate probe (cell METHOD-sSEED-lrLR); without it
#         the learning rate is experiments/countdown-v2/lr (the probe's choice).
#
# Steps, each skipped when its output exists (so a killed cell continues where
# it stopped, and a finished cell is never rerun):
#   1. train with experiments/countdown-v2/config.toml into runs/countdown-v2/CELL
#      (`rhythm train --resume` when the run exists);
#   2. score the final checkpoint greedily on instances 0..3071 of the generated
#      test stream (0..511: validation, 512..3071: the held-out test set);
#   3. write experiments/countdown-v2/results/CELL/: metrics.jsonl, config.toml,
#      cost.tsv (wall/user/sys seconds of every process) and, last, eval.json
#      (per-instance correctness); the cell is finished when eval.json exists.
#   4. delete the run's intermediate checkpoints (the final one stays).
# The code is that of experiments/countdown-v2/code_commit, always built in a
# git worktree of that commit under target/experiment-code/.
set -euo pipefail
cd "$(dirname "$0")/../.."
exp=experiments/countdown-v2
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: bash $exp/run.sh METHOD SEED [LR]" >&2
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
if [ $# -eq 3 ]; then
  lr=$3
  cell=$method-s$seed-lr$lr
else
  if [ ! -f $exp/lr ]; then
    echo "run.sh: $exp/lr is missing: run the learning-rate probe first (bash $exp/queue.sh)" >&2
    exit 2
  fi
  lr=$(cat $exp/lr)
  cell=$method-s$seed
fi
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
out=runs/countdown-v2/$cell
res=$exp/results/$cell
steps=$(sed -n 's/^steps = \([0-9]*\)$/\1/p' $exp/config.toml)
final=$(printf '%s/checkpoint-%06d' "$out" "$steps")
if [ -f "$res/eval.json" ]; then
  echo "run.sh: $cell is finished ($res/eval.json)"
  exit 0
fi

code=$(cat $exp/code_commit)
if ! git cat-file -e "$code^{commit}" 2>/dev/null; then
  echo "run.sh: commit $code ($exp/code_commit) is not in this repository; clone it with its history" >&2
  exit 2
fi
# Always a separate checkout of the pinned commit, so that edits in this
# checkout can never reach a cell's binary.
src=target/experiment-code/$code
if [ ! -d "$src" ]; then
  echo "run.sh: building the experiment's code, commit $code, in $src"
  git worktree add --detach "$src" "$code" >/dev/null
fi
(cd "$src" && cargo build --release -q -p rhythm-cli)
rhythm=$src/target/release/rhythm

mkdir -p "$res"
# Appends "PHASE wall user sys" of one process to the cell's cost log.
timed() {
  local phase=$1
  shift
  local t
  t=$(mktemp)
  /usr/bin/time -f "%e %U %S" -o "$t" "$@"
  printf '%s %s\n' "$phase" "$(cat "$t")" >> "$res/cost.tsv"
  rm -f "$t"
}

# 1. Train (or resume) to the last step.
if [ ! -f "$final/trainer_state.json" ]; then
  if [ -f "$out/metrics.jsonl" ]; then
    timed train "$rhythm" train --resume "$out"
  else
    timed train "$rhythm" train --config $exp/config.toml \
      --strategy "$method" --seed "$seed" --lr "$lr" --out "$out"
  fi
fi

# 2. Score the final checkpoint on validation + test, every instance kept.
if [ ! -f "$out/final-eval.json" ]; then
  timed eval "$rhythm" eval --model "$final" --split test --test-size 3072 \
    --prompt-style compact --max-new-tokens 320 --json > "$out/final-eval.json.tmp"
  mv "$out/final-eval.json.tmp" "$out/final-eval.json"
fi

# 3. Results: the copies first, eval.json (the cell's "finished" mark) last.
cp "$out/metrics.jsonl" "$res/metrics.jsonl.tmp" && mv "$res/metrics.jsonl.tmp" "$res/metrics.jsonl"
cp "$out/config.toml" "$res/config.toml.tmp" && mv "$res/config.toml.tmp" "$res/config.toml"
python3 $exp/compact.py "$out/final-eval.json" "$cell" "$lr" > "$res/eval.json.tmp"
mv "$res/eval.json.tmp" "$res/eval.json"

# 4. Only the final checkpoint is kept.
for c in "$out"/checkpoint-*; do
  [ "$c" = "$final" ] || rm -rf "$c"
done
# Probe cells report validation only: the learning rate is chosen on it.
echo "run.sh: $cell finished: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("validation %.1f%%" % (100*d["validation_acc"]) + ("" if "-lr" in sys.argv[2] else ", test %.1f%%" % (100*d["test_acc"])))' "$res/eval.json" "$cell")"
