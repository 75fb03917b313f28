#!/usr/bin/env python3
"""A larger random Qwen3 checkpoint for the GRPO throughput benchmark.

    .venv/bin/python tools/make_big_model.py [OUT]     # default /tmp/rhythm-big

hidden 512, 8 layers, 8 query / 4 key-value heads of 64, MLP 1536, tied
embeddings, 384 positions, the bundled model's tokenizer (vocabulary 64), so
that bench/rl_vs_trl.py --model OUT runs the same Countdown prompts on it.
Weights are drawn from a seeded generator (no download); float32.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "models" / "countdown-tiny"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/rhythm-big")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(0)
    cfg = Qwen3Config(
        vocab_size=64,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=64,
        max_position_embeddings=384,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    model = Qwen3ForCausalLM(cfg).float()
    model.save_pretrained(tmp, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
        shutil.copy(SRC / f, tmp / f)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: {n:,} parameters")


if __name__ == "__main__":
    main()
