#!/usr/bin/env python3
"""f32 matmul throughput, side by side: candle (through rhythm's speed
example) and PyTorch, on the shape of an MLP projection of Qwen3-0.6B,
[N, 1024] x [1024, 3072], the best of 5 each:

    python bench/matmul.py [--tokens 2048] [--threads 2]

Needs torch for the peer side. Prints GFLOP/s and the ratio.
"""
import argparse
import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "rhythm-model", "--example", "speed"],
                   check=True, cwd=ROOT)
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    out = subprocess.run([str(ROOT / "target/release/examples/speed"), str(a.tokens), "matmul"],
                         capture_output=True, text=True, env=env, check=True).stderr
    candle = float(re.search(r"([0-9.]+) GFLOP/s", out).group(1))
    import torch
    torch.set_num_threads(a.threads)
    x, w = torch.randn(a.tokens, 1024), torch.randn(3072, 1024)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        torch.nn.functional.linear(x, w)
        best = min(best, time.perf_counter() - t)
    peer = 2 * a.tokens * 1024 * 3072 / best / 1e9
    print(f"f32 matmul [{a.tokens}, 1024] x [1024, 3072], {a.threads} threads, load {os.getloadavg()[0]:.1f}")
    print(f"candle (rhythm) {candle:7.1f} GFLOP/s   torch {torch.__version__} {peer:7.1f} GFLOP/s   torch/candle {peer / candle:.2f}")


if __name__ == "__main__":
    main()
