#!/usr/bin/env bash
# Runs the same commands with two `rhythm` binaries and diffs what they
# print and write: the recorded comparison for refactors that must not change
# behaviour. Usage: tools/compare_cli.sh OLD_BINARY NEW_BINARY [WORKDIR]
# (run from the repository root; WORKDIR defaults to a fresh temp directory).
# Exit status 0 when every command gives identical stdout, exit status and
# output files; the differences otherwise.
set -uo pipefail
old=$1 new=$2 work=${3:-$(mktemp -d)}
mkdir -p "$work"
maps=examples/tiny-qwen3.maps.safetensors
cmds=(
  "score $maps --json --strategy coupled"
  "score $maps --json --strategy local --layers sampled"
  "score $maps --json --strategy global --horizon 1:end --q 0.3"
  "score $maps --json --strategy random --seed 3"
  "score $maps --strategy coupled"
  "score $maps --q 0"
  "probe --model fixtures/models/tiny-qwen3 --ids 5,9,2,7,1,3,8,4,6,2,9,1 --response-start 4 --stream --json --layers all"
  "probe --model fixtures/models/tiny-llama --ids 5,9,2,7,1,3,8,4 --response-start 3 --stream --layers 0,1 --strategy global"
  "analyze --countdown 0 --out OUT/analyze"
  "analyze --countdown 1 --horizon 10:50 --layers all --out OUT/analyze2"
  "stats --countdown 3 --json"
  "eval --test-size 4 --json"
  "train --steps 1 --prompts-per-batch 2 --group-size 2 --max-new-tokens 16 --out OUT/train --no-progress"
)
status=0
for side in old new; do
  bin=${!side}
  mkdir -p "$work/$side"
  i=0
  for c in "${cmds[@]}"; do
    i=$((i + 1))
    c=${c//OUT/$work/$side}
    # shellcheck disable=SC2086
    "$bin" $c 2>"$work/$side/$i.err" | sed "s#$work/$side#OUT#g" >"$work/$side/$i.out"
    echo "${PIPESTATUS[0]}" >"$work/$side/$i.rc"
  done
done
i=0
for c in "${cmds[@]}"; do
  i=$((i + 1))
  for ext in out rc; do
    if ! diff -q "$work/old/$i.$ext" "$work/new/$i.$ext" >/dev/null; then
      echo "DIFFERS ($ext): $c"
      diff "$work/old/$i.$ext" "$work/new/$i.$ext" | head -5
      status=1
    fi
  done
done
# Files written (reports, analysis JSON, metrics without timing columns).
for f in analyze/analysis.json analyze/report.html analyze2/analysis.json train/config.toml; do
  if ! cmp -s "$work/old/$f" "$work/new/$f"; then
    echo "DIFFERS (file): $f"
    status=1
  fi
done
strip_timing() { sed -E 's/"(rollout_s|probe_s|rhythm_s|update_s)":[0-9.e-]+/"\1":T/g' "$1"; }
if ! diff <(strip_timing "$work/old/train/metrics.jsonl") <(strip_timing "$work/new/train/metrics.jsonl") >/dev/null; then
  echo "DIFFERS (file): train/metrics.jsonl (timing fields aside)"
  status=1
fi
[ $status = 0 ] && echo "identical: ${#cmds[@]} commands, their exit codes and files"
exit $status
