#!/usr/bin/env python3
"""Side-by-side speed and peak memory: rhythm vs transformers on CPU.

    python bench/compare.py [--model DIR] [--tokens 2048] [--long 8192] [--threads 2]

Builds (once) a RANDOM checkpoint with Qwen3-0.6B's shapes in bf16
(bench/make_qwen3_0p6b.py, no download), then runs, each in a fresh child
process whose own peak RSS is read with os.wait4:

  plain forward, N tokens      rhythm `speed N forward`   vs transformers eager, f32
  probe, N tokens              rhythm `speed N stream`    vs transformers eager + output_attentions, f32
  probe, all layers, LONG      rhythm `speed LONG stream-all` (transformers runs out of
                               memory at 4,096 tokens with attentions on 24 GB; not run)

and prints one table with time and memory ratios (transformers / rhythm).
Both sides compute in f32 from the bf16 checkpoint (rhythm always computes in
f32; transformers in bf16 on this CPU was >10x slower than in f32, see
docs/benchmarks.md). Needs Python with torch and transformers for the peer
side; `--skip-peer` runs rhythm alone. The machine must be idle: loadavg
before each run is printed beside it.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_child(cmd, env=None):
    """Runs cmd, returns (wall seconds, peak RSS GB, stdout+stderr text)."""
    load = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, ru = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"command failed ({status}): {' '.join(map(str, cmd))}\n{out[-2000:]}")
    return time.time() - t0, ru.ru_maxrss * 1024 / 1e9, out, load


def rhythm(binary, tokens, mode, model):
    wall, rss, out, load = run_child([str(binary), str(tokens), mode, str(model)])
    m = re.search(rf"{re.escape(mode)} N={tokens}: ([0-9.]+)s", out)
    if not m:
        sys.exit(f"could not read the timing from the speed example:\n{out}")
    return {"seconds": float(m.group(1)), "peak_rss_gb": rss, "load": load}


def peer(model, tokens, attentions, threads):
    cmd = [sys.executable, str(ROOT / "bench/peer_transformers.py"), "--model", str(model),
           "--tokens", str(tokens), "--dtype", "f32", "--threads", str(threads)]
    if attentions:
        cmd.append("--attentions")
    wall, _, out, load = run_child(cmd)
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    j = json.loads(line)
    return {"seconds": j["seconds"], "peak_rss_gb": j["peak_rss_gb"], "load": load}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/qwen3-0.6b-random")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--long", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-peer", action="store_true")
    a = ap.parse_args()
    model = Path(a.model)
    if not (model / "config.json").exists():
        subprocess.run([sys.executable, str(ROOT / "bench/make_qwen3_0p6b.py"), str(model)], check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "rhythm-model", "--example", "speed"],
                   check=True, cwd=ROOT)
    binary = ROOT / "target/release/examples/speed"
    os.environ["RAYON_NUM_THREADS"] = str(a.threads)
    rows = []
    r = rhythm(binary, a.tokens, "forward", model)
    p = None if a.skip_peer else peer(model, a.tokens, False, a.threads)
    rows.append((f"plain forward, {a.tokens} tokens", r, p))
    r = rhythm(binary, a.tokens, "stream", model)
    p = None if a.skip_peer else peer(model, a.tokens, True, a.threads)
    rows.append((f"probe (sampled layers) vs output_attentions, {a.tokens} tokens", r, p))
    if a.long:
        r = rhythm(binary, a.long, "stream-all", model)
        rows.append((f"streamed probe, all layers + entropy, {a.long} tokens", r, None))
    print(f"{'workload':58} {'rhythm s':>9} {'GB':>6} {'torch s':>9} {'GB':>6} {'time x':>7} {'mem x':>6}  load")
    for name, r, p in rows:
        if p:
            print(f"{name:58} {r['seconds']:9.1f} {r['peak_rss_gb']:6.2f} {p['seconds']:9.1f} {p['peak_rss_gb']:6.2f}"
                  f" {p['seconds'] / r['seconds']:7.2f} {p['peak_rss_gb'] / r['peak_rss_gb']:6.2f}  {r['load']:.1f}/{p['load']:.1f}")
        else:
            print(f"{name:58} {r['seconds']:9.1f} {r['peak_rss_gb']:6.2f} {'-':>9} {'-':>6} {'-':>7} {'-':>6}  {r['load']:.1f}")


if __name__ == "__main__":
    main()
