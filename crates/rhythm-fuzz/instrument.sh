#!/bin/sh
# RUSTC_WRAPPER used by run.sh: sanitizer-coverage instrumentation (the
# passes cargo-fuzz uses, all stable `-C` options) for rhythm's own crates,
# the fuzz binaries and the parsers they drive (serde_json, toml,
# safetensors); every other dependency (candle, tokenizers, ...) is built
# as usual, which keeps the build short.
case " $* " in
  *" --crate-name rhythm_core "*|*" --crate-name rhythm_model "*|*" --crate-name rhythm_rl "*|\
  *" --crate-name rhythm_fuzz "*|*" --crate-name fuzz_"*|*" --crate-name serde_json "*|\
  *" --crate-name toml "*|*" --crate-name toml_parser "*|*" --crate-name toml_datetime "*|\
  *" --crate-name serde_spanned "*|*" --crate-name safetensors "*)
    exec "$@" -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
      -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares ;;
esac
exec "$@"
