#!/usr/bin/env python3
"""A/B of two `rhythm` binaries on the GRPO step of bench/rl_vs_trl.py.

    python3 bench/ab_step.py OLD NEW [--rounds 3] [--steps 3] [--strategy coupled]
        [--model models/countdown-tiny] [--threads 2]

Runs `rhythm train` at the issue's step shape (8 prompts x 8 responses, up
to 320 new tokens, temperature 1, one optimizer step per batch) with OLD and
NEW alternately, ROUNDS times each, so that both see the same machine; prints
the median seconds per phase (rollout, probe, update, step) of each binary
over all steps but the first of every run, the ratio OLD / NEW, and whether
the two produced the same samples (generated token counts per step).
No Python packages are needed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def tasks(binary: str, path: Path, n: int) -> None:
    p = subprocess.run([binary, "eval", "--split", "train", "--limit", str(n), "--k", "0", "--json"],
                       cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"rhythm eval failed:\n{p.stderr[-2000:]}")
    rows = [{"nums": i["task"]["nums"], "target": i["task"]["target"]}
            for i in json.loads(p.stdout)["instances"]]
    path.write_text("".join(json.dumps(t) + "\n" for t in rows))


def run(binary: str, a, data: Path, out: Path) -> list[dict]:
    cmd = [binary, "train", "--model", a.model, "--task", "countdown", "--dataset", str(data),
           "--prompt-style", "compact", "--strategy", a.strategy, "--steps", str(a.steps),
           "--prompts-per-batch", "8", "--group-size", "8", "--micro-batch", "16",
           "--grad-steps", "1", "--max-new-tokens", "320", "--temperature", "1.0",
           "--kl-coef", "0", "--lr", "5e-5", "--eval-interval", "0",
           "--save-interval", str(a.steps + 1), "--out", str(out), "--no-progress"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r["step_s"] = r["rollout_s"] + r["probe_s"] + r["update_s"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--strategy", default="coupled")
    ap.add_argument("--model", default="models/countdown-tiny")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ab_step-"))
    data = tmp / "tasks.jsonl"
    tasks(a.new, data, 8 * a.steps)
    rows = {"old": [], "new": []}
    toks = {"old": None, "new": None}
    for k in range(a.rounds):
        for side in ("old", "new"):
            r = run(getattr(a, side), a, data, tmp / f"{side}-{k}")
            rows[side] += r[1:]
            toks[side] = [x["gen_tokens"] for x in r]
    print(f"{a.model}, strategy {a.strategy}, {a.rounds} rounds x {a.steps} steps "
          f"(first dropped), {a.threads} threads")
    print("| phase | old s | new s | old / new |")
    print("|---|---|---|---|")
    for key in ("rollout_s", "probe_s", "update_s", "step_s"):
        o = statistics.median(r[key] for r in rows["old"])
        n = statistics.median(r[key] for r in rows["new"])
        print(f"| {key[:-2]} | {o:.3f} | {n:.3f} | {o / n:.2f}x |")
    print(f"generated tokens per step: old {toks['old']}, new {toks['new']}"
          f" ({'same' if toks['old'] == toks['new'] else 'different'} samples)")


if __name__ == "__main__":
    main()
