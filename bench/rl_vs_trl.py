#!/usr/bin/env python3
"""GRPO throughput: TRL's GRPOTrainer against `rhythm train`, back to back.

    .venv/bin/python bench/rl_vs_trl.py [--model models/countdown-tiny] [--steps 6]
        [--threads 2] [--skip-trl] [--rhythm-only none,coupled] [--candle]

Both train the same model on the same Countdown prompts (the first
8 x steps instances of rhythm's generated train split, rendered in rhythm's
`compact` style) at the issue's step
shape: 8 prompts x 8 responses, up to 320 new tokens, temperature 1, one
optimizer step per batch, no KL, lr 5e-5, on the CPU with the same number of
threads. Printed per run: median seconds/step and completion tokens/s over
the steady-state steps (the first step is dropped), the ratio to TRL, and
the mean reward of those steps (a model that earns none gives GRPO nothing
to update: see tools/make_big_model.py --embed-tiny).
For rhythm also the per-phase median seconds (rollout, probe, update) and
tokens/s next to the FLOP floor (the time the matmul + attention FLOPs
would take at this machine's f32 GEMM rate, measured at start with
torch.mm) of the rollout and of probe + update together (the probe runs the
training forward of the responses that get a gradient, which the update
reuses for its backward). `--candle` adds a `rhythm train` run on the candle paths
(RHYTHM_UPDATE=candle RHYTHM_DECODE=candle: candle-op decoding and candle
autograd), i.e. the engine before the hand-written decoder and
forward/backward.
The load average is printed next to every run. On a machine shared with
other jobs use --threads 1: torch's OpenMP threads spin-wait, and with 2
threads on 2 busy cores its generate ran 12x slower than with 1 thread.

TRL's side: a TrainerCallback times each optimizer step (generation,
reward, logp and update included) and reads `completions/mean_length`.
rhythm's side: `metrics.jsonl` (rollout_s + probe_s + update_s per step).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_tasks(binary: Path, path: Path, n: int) -> list[dict]:
    """The first n instances of rhythm's generated Countdown train split (data seed 0)."""
    p = subprocess.run([str(binary), "eval", "--split", "train", "--limit", str(n), "--k", "0",
                        "--json"], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"rhythm eval failed:\n{p.stderr[-2000:]}")
    tasks = [{"nums": i["task"]["nums"], "target": i["task"]["target"]}
             for i in json.loads(p.stdout)["instances"]]
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return tasks


def prompt(t: dict) -> str:
    return f"nums: {' '.join(map(str, t['nums']))} target: {t['target']}\n"


def countdown_reward(text: str, nums: list[int], target: int) -> float:
    """1 if the last <answer>EXPR</answer> uses each number once and equals target."""
    m = re.findall(r"<answer>(.*?)</answer>", text, re.S)
    if not m:
        return 0.0
    expr = m[-1].strip()
    if not re.fullmatch(r"[0-9+\-*/() ]+", expr):
        return 0.0
    if sorted(int(x) for x in re.findall(r"\d+", expr)) != sorted(nums):
        return 0.0
    try:
        val = eval(re.sub(r"(\d+)", r"Fraction(\1)", expr), {"Fraction": Fraction})
    except (ZeroDivisionError, SyntaxError):
        return 0.0
    return 1.0 if val == target else 0.0


def gemm_gflops(threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * 1024**3 / best / 1e9


def model_flops(model: Path):
    """Per-token forward FLOPs (matmuls incl. lm_head) and attention FLOPs per token per context position."""
    cfg = json.loads((model / "config.json").read_text())
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nq, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    d = cfg.get("head_dim") or h // nq
    layers = cfg["num_hidden_layers"]
    per_layer = h * nq * d * 2 + h * nkv * d * 2 + 3 * h * i
    matmul = 2 * (layers * per_layer + h * v)
    attn_per_ctx = 2 * 2 * nq * d * layers  # QK^T and PV per (query, key) pair
    return matmul, attn_per_ctx


def run_trl(model: Path, tasks: list[dict], steps: int, threads: int, out: Path) -> list[dict]:
    code = f"""
import json, sys, time, torch
sys.path.insert(0, {str(ROOT / 'bench')!r})
from rl_vs_trl import countdown_reward, prompt
from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer
torch.set_num_threads({threads})
tasks = json.load(open({str(out / 'tasks.json')!r}))
ds = Dataset.from_list([{{"prompt": prompt(t), "nums": t["nums"], "target": t["target"]}} for t in tasks])
def reward(completions, nums, target, **kw):
    return [countdown_reward(c, n, t) for c, n, t in zip(completions, nums, target)]
tok = AutoTokenizer.from_pretrained({str(model)!r})
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
class Timer(TrainerCallback):
    def __init__(self):
        self.rows = []
        self.t0 = None
    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        self.rows.append({{"step_s": time.perf_counter() - self.t0}})
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "completions/mean_length" in logs and self.rows:
            self.rows[-1]["mean_length"] = logs["completions/mean_length"]
            self.rows[-1]["reward"] = logs.get("reward", float("nan"))
args = GRPOConfig(output_dir={str(out / 'trl')!r}, per_device_train_batch_size=64,
    gradient_accumulation_steps=1, num_generations=8, max_completion_length=320,
    temperature=1.0, beta=0.0, learning_rate=5e-5, max_steps={steps}, logging_steps=1,
    num_iterations=1, use_cpu=True, bf16=False, report_to=[], save_strategy="no",
    shuffle_dataset=False, seed=0, disable_tqdm=True)
timer = Timer()
tr = GRPOTrainer(model={str(model)!r}, reward_funcs=reward, args=args, train_dataset=ds,
    processing_class=tok, callbacks=[timer])
tr.train()
print("ROWS " + json.dumps(timer.rows))
"""
    (out / "tasks.json").write_text(json.dumps(tasks))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"TRL run failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    line = [l for l in p.stdout.splitlines() if l.startswith("ROWS ")][-1]
    rows = json.loads(line[5:])
    return [
        {"step_s": r["step_s"], "gen_tokens": r.get("mean_length", 0.0) * 64,
         "reward": r.get("reward", float("nan"))}
        for r in rows
    ]


def run_rhythm(binary: Path, model: Path, data: Path, strategy: str, steps: int, threads: int,
               out: Path, candle: bool) -> list[dict]:
    run = out / f"rhythm-{strategy}{'-candle' if candle else ''}"
    cmd = [str(binary), "train", "--model", str(model), "--task", "countdown",
           "--dataset", str(data), "--prompt-style", "compact", "--strategy", strategy,
           "--steps", str(steps), "--prompts-per-batch", "8", "--group-size", "8",
           "--micro-batch", "16", "--grad-steps", "1", "--max-new-tokens", "320",
           "--temperature", "1.0", "--kl-coef", "0", "--lr", "5e-5", "--eval-interval", "0",
           "--save-interval", str(steps + 1), "--out", str(run), "--no-progress"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    if candle:
        env["RHYTHM_UPDATE"] = "candle"
        env["RHYTHM_DECODE"] = "candle"
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"rhythm run failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r["step_s"] = r["rollout_s"] + r["probe_s"] + r["update_s"]
    return rows


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/countdown-tiny")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--binary", default="target/release/rhythm")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--rhythm-only", default="none,coupled")
    ap.add_argument("--candle", action="store_true", help="also rhythm on the candle paths (before)")
    a = ap.parse_args()
    model = (ROOT / a.model).resolve()
    binary = (ROOT / a.binary).resolve()
    out = Path(tempfile.mkdtemp(prefix="rl_vs_trl-"))
    data = out / "tasks.jsonl"
    tasks = write_tasks(binary, data, 8 * a.steps)
    gflops = gemm_gflops(a.threads)
    matmul, attn = model_flops(model)
    print(f"model {a.model}, {a.steps} steps of 8x8 (first dropped), {a.threads} threads, "
          f"torch f32 GEMM {gflops:.0f} GFLOP/s, out {out}")
    results = []
    runs = []
    if not a.skip_trl:
        runs.append(("TRL GRPOTrainer", lambda: run_trl(model, tasks, a.steps, a.threads, out)))
    for s in a.rhythm_only.split(","):
        if a.candle:
            runs.append((f"rhythm {s} (candle paths)",
                         lambda s=s: run_rhythm(binary, model, data, s, a.steps, a.threads, out, True)))
        runs.append((f"rhythm {s}", lambda s=s: run_rhythm(binary, model, data, s, a.steps, a.threads, out, False)))
    for name, fn in runs:
        load = os.getloadavg()[0]
        rows = fn()[1:]
        step = med(rows, "step_s")
        tps = statistics.median(r["gen_tokens"] / r["step_s"] for r in rows)
        reward = statistics.mean(r["reward"] for r in rows)
        results.append((name, step, tps, load, rows, reward))
    base = next((r[2] for r in results if r[0].startswith("TRL")), None)
    print(f"\n| run | s/step | completion tok/s | vs TRL | mean reward | load |")
    print("|---|---|---|---|---|---|")
    for name, step, tps, load, _, reward in results:
        ratio = f"{tps / base:.2f}x" if base else "-"
        print(f"| {name} | {step:.2f} | {tps:,.0f} | {ratio} | {reward:.3f} | {load:.1f} |")
    print("\nPer phase (rhythm; medians; floor = FLOPs at the GEMM rate above):")
    print("| run | rollout s | probe s | update s | rollout tok/s (floor) "
          "| probe + update tok/s (floor) |")
    print("|---|---|---|---|---|---|")
    for name, _, _, _, rows, _ in results:
        if not name.startswith("rhythm"):
            continue
        # Mean context per token ~ half the mean sequence length (causal);
        # the bundled tokenizer is character-level, so a prompt is about as
        # many tokens as characters.
        prompt_len = statistics.mean(len(prompt(t)) for t in tasks)
        mean_len = statistics.median(r["response_len"] for r in rows) + prompt_len

        def rate(tokens, seconds, mult):
            tps = statistics.median(tokens(r) / seconds(r) for r in rows if seconds(r) > 0)
            floor = gflops * 1e9 / (mult * (matmul + attn * mean_len / 2))
            return f"{tps:,.0f} ({floor:,.0f})"
        # The rollout decodes every generated token (one forward each). The
        # probe runs the training forward of the responses that get a
        # gradient (the update reuses it) and the update their backward:
        # together forward + backward (3x a forward's FLOPs) of update_tokens.
        secs = [statistics.median(r[k] for r in rows) for k in ("rollout_s", "probe_s", "update_s")]
        print(f"| {name} | {secs[0]:.3f} | {secs[1]:.3f} | {secs[2]:.3f} "
              f"| {rate(lambda r: r['gen_tokens'], lambda r: r['rollout_s'], 1)} "
              f"| {rate(lambda r: r['update_tokens'], lambda r: r['probe_s'] + r['update_s'], 3)} |")


if __name__ == "__main__":
    main()
