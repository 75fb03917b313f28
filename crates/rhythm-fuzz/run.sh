#!/bin/sh
# Coverage-guided fuzzing on stable Rust (docs/reliability.md).
#   crates/rhythm-fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
# Builds the libFuzzer binaries in target/fuzz, instrumenting rhythm's own
# crates only (instrument.sh), then fuzzes TARGET from a copy of its
# committed corpus for SECONDS. Crashes land in target/fuzz/artifacts/.
set -eu
target=$1; secs=$2; shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
RUSTC_WRAPPER="$root/crates/rhythm-fuzz/instrument.sh" CARGO_TARGET_DIR=target/fuzz \
  cargo build -p rhythm-fuzz --features libfuzzer --bins
work=target/fuzz/corpus/$target
mkdir -p "$work" target/fuzz/artifacts
cp -n crates/rhythm-fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
exec target/fuzz/debug/fuzz_"$target" "$work" -max_total_time="$secs" \
  -rss_limit_mb=2048 -max_len=65536 -artifact_prefix=target/fuzz/artifacts/ "$@"
