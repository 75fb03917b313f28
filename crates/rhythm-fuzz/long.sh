#!/bin/sh
# The long coverage-guided run of docs/reliability.md: every target in turn
# (one libFuzzer process at a time, nice 19, via run.sh) until RUNS
# executions or its time cap, whichever comes first; the logs (libFuzzer's
# final stats) go to $CARGO_TARGET_DIR/fuzz/logs/TARGET.log.
#   crates/rhythm-fuzz/long.sh [RUNS] [CAP_SCALE_PERCENT]
# CAP_SCALE_PERCENT scales the per-target time caps below (default 100).
set -u
runs=${1:-10000000}; scale=${2:-100}
here=$(cd "$(dirname "$0")" && pwd)
logs=${CARGO_TARGET_DIR:-$here/../../target}/fuzz/logs
mkdir -p "$logs"
# target  -max_len  time cap (s)
while read -r t len cap; do
  start=$(date +%s)
  "$here/run.sh" "$t" $((cap * scale / 100)) -runs="$runs" -max_len="$len" \
    >"$logs/$t.log" 2>&1
  rc=$?
  echo "$t rc=$rc wall_s=$(( $(date +%s) - start ))" | tee -a "$logs/summary.txt"
done <<'LIST'
maps 640 150
config_json 4096 200
answers 512 300
safetensors 4096 700
jsonl 4096 600
model_files 8192 650
checkpoint 4096 650
toml 4096 850
LIST
