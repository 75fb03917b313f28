#!/usr/bin/env bash
# One-command GPU check of the PyTorch probe (issue #21): random weights made
# here, nothing downloaded, about 8 minutes on one H100.
#
#   bash bench/gpu_check.sh            # needs ./.venv from tools/test-python.sh
#
# 1. the probe on CUDA against float64 maps (bench/probe_exactness.py, peaked
#    and flat heads with Qwen3-0.6B's attention shapes, 8,192 tokens);
# 2. the probe benchmark on Qwen3-0.6B's shapes (bench/probe_memory.py, bf16,
#    2K / 8K / 32K tokens: plain sdpa forward, sampled and all layers probed);
# 3. the TRL overhead benchmark on CUDA (bench/trl_overhead.py);
# and prints the tables one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
M=${RHYTHM_BENCH_MODEL:-/tmp/qwen3-0.6b-random}
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())'
[ -f "$M/config.json" ] || "$PY" bench/make_qwen3_0p6b.py "$M"
echo "== 1. exactness on CUDA (float64 maps)"
"$PY" bench/probe_exactness.py --device cuda --tokens 8192
echo "== 2. probe cost, Qwen3-0.6B shapes, bf16"
"$PY" bench/probe_memory.py --device cuda --dtype bf16 --model "$M" --tokens 2048 8192 32768 \
    --cases plain plain-last probe-sampled probe-all --json /tmp/probe_memory.cuda.json
echo "== 3. TRL step overhead on CUDA"
"$PY" bench/trl_overhead.py --device cuda --steps 4 --rounds 2
