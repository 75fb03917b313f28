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
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
# The task file and the `rhythm train` command of the TRL comparison.
from rl_vs_trl import run_rhythm, write_tasks  # noqa: E402


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
    write_tasks(Path(a.new).resolve(), data, 8 * a.steps)
    rows = {"old": [], "new": []}
    toks = {"old": None, "new": None}
    for k in range(a.rounds):
        for side in ("old", "new"):
            binary = Path(getattr(a, side)).resolve()
            r = run_rhythm(binary, (ROOT / a.model).resolve(), data, a.strategy, a.steps,
                           a.threads, tmp / f"{side}-{k}", False)
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
