#!/usr/bin/env bash
# Builds the Python package (bindings/python) and runs its tests.
#
#   tools/test-python.sh [pytest args...]
#
# Uses the virtual environment ./.venv (created with `python3 -m venv` if
# missing; RHYTHM_VENV=/path picks another, PYTHON=python3.12 another
# interpreter), installs the test dependencies into it, builds and installs
# the package with `pip install ./bindings/python`, builds the release CLI
# (`cargo build --release -p rhythm-cli`, which the agreement tests run;
# RHYTHM_BIN=/path/to/rhythm skips the build) and runs pytest on
# bindings/python/tests. Exits nonzero when any step or test fails.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${RHYTHM_VENV:-.venv}
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PYTHON=${PYTHON:-python3}

# Each step prints the seconds the previous ones took in all.
step() { printf '\n== [%ss] %s\n' "$SECONDS" "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# maturin, pytest and accelerate are found on PATH by the build and the tests.
export PATH="$VENV/bin:$PATH"

step "test dependencies"
# --no-cache-dir: torch and its CUDA wheels are gigabytes; a second copy in
# pip's cache is not worth the disk.
"$PY" -m pip install --quiet --no-cache-dir -r bindings/python/requirements-test.txt

step "building and installing the rhythm package"
# --no-build-isolation: build with the maturin installed above instead of
# downloading one per build. Cargo's build cache lives in bindings/python/target.
"$PY" -m pip install --quiet --no-build-isolation --no-deps --force-reinstall ./bindings/python

if [ -z "${RHYTHM_BIN:-}" ]; then
    step "building the rhythm CLI (cargo build --release -p rhythm-cli)"
    cargo build --release --quiet -p rhythm-cli
    export RHYTHM_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/rhythm"
fi

step "pytest bindings/python/tests"
"$PY" -m pytest bindings/python/tests "$@"
step "done"
