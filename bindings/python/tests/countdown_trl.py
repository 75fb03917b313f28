"""A tiny in-memory Countdown setup for the TRL tests (countdown-tiny, no downloads)."""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from typing import Optional

import torch

from helpers import COUNTDOWN

# Training-split-like instances (3 numbers, reachable targets).
INSTANCES = [
    ([89, 22, 78], 33),
    ([12, 5, 3], 20),
    ([7, 8, 9], 65),
    ([45, 3, 10], 25),
    ([6, 2, 30], 4),
    ([50, 25, 2], 100),
    ([9, 4, 11], 47),
    ([13, 7, 3], 88),
]


def tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(COUNTDOWN / "tokenizer.json"),
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
    )


def dataset(n: int = 8):
    from datasets import Dataset

    rows = [
        {"prompt": f"nums: {' '.join(map(str, nums))} target: {target}\n", "nums": nums, "target": target}
        for nums, target in INSTANCES[:n]
    ]
    return Dataset.from_list(rows)


def _parse(expr: str) -> Optional[tuple[Fraction, list[int]]]:
    """Recursive-descent parse of + - * / ( ) and integer literals; exact rationals."""
    toks = re.findall(r"\d+|[-+*/()]|\S", expr.replace(" ", ""))
    pos = 0
    lits: list[int] = []

    def atom() -> Fraction:
        nonlocal pos
        if pos >= len(toks):
            raise ValueError
        t = toks[pos]
        pos += 1
        if t == "(":
            v = add()
            if pos >= len(toks) or toks[pos] != ")":
                raise ValueError
            pos += 1
            return v
        if t.isdigit() and (t == "0" or not t.startswith("0")):
            lits.append(int(t))
            return Fraction(int(t))
        raise ValueError

    def mul() -> Fraction:
        nonlocal pos
        v = atom()
        while pos < len(toks) and toks[pos] in "*/":
            op = toks[pos]
            pos += 1
            r = atom()
            if op == "/":
                if r == 0:
                    raise ValueError
                v = v / r
            else:
                v = v * r
        return v

    def add() -> Fraction:
        nonlocal pos
        v = mul()
        while pos < len(toks) and toks[pos] in "+-":
            op = toks[pos]
            pos += 1
            r = mul()
            v = v + r if op == "+" else v - r
        return v

    try:
        v = add()
    except (ValueError, ZeroDivisionError):
        return None
    if pos != len(toks):
        return None
    return v, lits


def countdown_reward(completions, nums, target, **kwargs) -> list[float]:
    """1 when the last <answer> uses exactly the numbers and hits the target, else 0."""
    out = []
    for text, ns, tg in zip(completions, nums, target):
        answers = re.findall(r"<answer>(.*?)</answer>", text, flags=re.S)
        r = _parse(answers[-1]) if answers else None
        ok = r is not None and r[0] == tg and Counter(r[1]) == Counter(ns)
        out.append(1.0 if ok else 0.0)
    return out


def grpo_args(out_dir, **kw):
    from trl import GRPOConfig

    base = dict(
        output_dir=str(out_dir),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=48,
        max_steps=2,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=0,
        temperature=1.0,
        use_liger_kernel=False,
        dataloader_num_workers=0,
    )
    base.update(kw)
    return GRPOConfig(**base)


def load_model():
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(COUNTDOWN, dtype=torch.float32)
