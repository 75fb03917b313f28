#!/usr/bin/env python3
"""What rhythm credit adds to a TRL GRPO step, side by side in one run.

    python bench/trl_overhead.py [--steps 4] [--rounds 2] [--strategy coupled] [--device cpu]
        [--batch 8] [--completion 128] [--num-iterations 1]

Runs plain ``trl.GRPOTrainer`` and ``rhythm.trl.RhythmGRPOTrainer`` on the
bundled model (models/countdown-tiny) with the same ``GRPOConfig``,
alternately, ``--rounds`` times each, ``--steps`` optimizer steps per run.
The learning rate is 0, so the policy never moves and both trainers see the
same rollouts (same seeds): the difference in step time is rhythm's alone.
Prints the median seconds per step (the first step of every run dropped),
the ratio, and rhythm's own ``rhythm/probe_s``. ``--num-iterations 2`` makes
TRL take its old-logprob pass, which the probe then rides on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bindings" / "python" / "tests"))


def run(kind: str, a: argparse.Namespace, out: Path) -> tuple[list[float], list[float]]:
    import torch
    from transformers import TrainerCallback

    from countdown_trl import countdown_reward, dataset, grpo_args, load_model, tokenizer
    from rhythm.trl import RhythmConfig, RhythmGRPOTrainer
    from trl import GRPOTrainer

    times: list[float] = []

    class Clock(TrainerCallback):
        t0 = 0.0

        def on_step_begin(self, *args, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, *args, **kw):
            times.append(time.perf_counter() - self.t0)

    args = grpo_args(out, per_device_train_batch_size=a.batch, num_generations=a.batch, max_steps=a.steps,
                     max_completion_length=a.completion, learning_rate=0.0, num_iterations=a.num_iterations,
                     use_cpu=a.device == "cpu", seed=0)
    kw = dict(model=load_model().to(a.device), reward_funcs=countdown_reward, args=args,
              train_dataset=dataset(max(64, a.batch * a.steps)), processing_class=tokenizer(), callbacks=[Clock()])
    torch.manual_seed(0)
    if kind == "plain":
        tr = GRPOTrainer(**kw)
    else:
        tr = RhythmGRPOTrainer(**kw, rhythm=RhythmConfig(a.strategy))
    tr.train()
    probe = [h["rhythm/probe_s"] for h in tr.state.log_history if "rhythm/probe_s" in h]
    return times[1:], probe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--strategy", default="coupled")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--completion", type=int, default=128)
    ap.add_argument("--num-iterations", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import os

    import torch
    import trl

    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="trl_overhead-"))
    steps = {"plain": [], "rhythm": []}
    probe: list[float] = []
    for r in range(a.rounds):
        for kind in ("plain", "rhythm"):
            t, p = run(kind, a, tmp / f"{kind}-{r}")
            steps[kind] += t
            probe += p
    sp, sr = statistics.median(steps["plain"]), statistics.median(steps["rhythm"])
    print(f"TRL {trl.__version__}, torch {torch.__version__}, {a.device}, {a.threads} threads, load {os.getloadavg()[0]:.1f}; "
          f"batch {a.batch} x completion <= {a.completion}, num_iterations {a.num_iterations}, "
          f"{len(steps['plain'])} steps each")
    print("| trainer | median s/step | x plain |")
    print("|---|---|---|")
    print(f"| GRPOTrainer | {sp:.3f} | 1.00 |")
    print(f"| RhythmGRPOTrainer ({a.strategy}) | {sr:.3f} | {sr / sp:.3f} |")
    if probe:
        print(f"rhythm/probe_s: median {statistics.median(probe):.3f} s per logged step")


if __name__ == "__main__":
    main()
