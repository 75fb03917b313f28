#!/bin/sh
# RUSTC_WRAPPER: sanitizer-coverage instrumentation for rhythm's own crates
# and the fuzz binaries only (dependencies are reused uninstrumented).
case " $* " in
  *" --crate-name rhythm_core "*|*" --crate-name rhythm_model "*|*" --crate-name rhythm_rl "*|*" --crate-name rhythm_fuzz "*|*" --crate-name fuzz_"*)
    exec "$@" -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
      -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares ;;
esac
exec "$@"
