#!/bin/sh
# Coverage-guided fuzzing on stable Rust (docs/reliability.md).
#   crates/rhythm-fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
# Builds the libFuzzer binaries in $CARGO_TARGET_DIR/fuzz (default
# target/fuzz) with the release profile plus debug assertions and overflow
# checks (as cargo-fuzz does), instrumenting rhythm's own crates only
# (instrument.sh), then fuzzes TARGET from its work corpus (seeded with a
# copy of the committed corpus) for SECONDS, one process, at nice 19.
# Crashes land in $CARGO_TARGET_DIR/fuzz/artifacts/TARGET/. Flags given
# after SECONDS override the defaults (libFuzzer takes the last one).
set -eu
target=$1; secs=$2; shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${CARGO_TARGET_DIR:-$root/target}/fuzz
RUSTC_WRAPPER="$root/crates/rhythm-fuzz/instrument.sh" CARGO_TARGET_DIR="$out" \
  CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
  cargo build --release -p rhythm-fuzz --features libfuzzer --bins
# The scratch files of the path-taking readers (src/lib.rs) go to a RAM
# disk when there is one (they are rewritten, and fsync'd, every input), in
# a directory of this run that is removed at the end.
base=${TMPDIR:-}
if [ -z "$base" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
TMPDIR=$(mktemp -d "${base:-/tmp}/rhythm-fuzz.XXXXXX"); export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
trap 'exit 130' INT TERM
work=$out/corpus/$target
mkdir -p "$work" "$out/artifacts/$target"
cp -n crates/rhythm-fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
nice -n 19 "$out/release/fuzz_$target" "$work" -max_total_time="$secs" \
  -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$out/artifacts/$target/" "$@"
