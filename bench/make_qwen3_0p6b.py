#!/usr/bin/env python3
"""Write a RANDOM checkpoint with exactly Qwen3-0.6B's architecture (no download).

    python bench/make_qwen3_0p6b.py /tmp/qwen3-0.6b-random

Weights are bf16 (as the real checkpoint), drawn with transformers' own init
(normal(0, 0.02), norms = 1) from a fixed seed; tie_word_embeddings=true, so
the file holds no lm_head.weight.  ~1.2 GB on disk: keep it out of git.
Only for speed/memory benchmarks: the outputs are meaningless.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

# Qwen/Qwen3-0.6B config.json, field for field.
QWEN3_0P6B = dict(
    architectures=["Qwen3ForCausalLM"],
    attention_bias=False,
    attention_dropout=0.0,
    bos_token_id=151643,
    eos_token_id=151645,
    head_dim=128,
    hidden_act="silu",
    hidden_size=1024,
    initializer_range=0.02,
    intermediate_size=3072,
    max_position_embeddings=40960,
    max_window_layers=28,
    num_attention_heads=16,
    num_hidden_layers=28,
    num_key_value_heads=8,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    sliding_window=None,
    tie_word_embeddings=True,
    use_cache=True,
    use_sliding_window=False,
    vocab_size=151936,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.time()
    torch.manual_seed(args.seed)
    cfg = Qwen3Config(**QWEN3_0P6B)
    model = Qwen3ForCausalLM._from_config(cfg, attn_implementation="eager", dtype=torch.bfloat16)
    model.generation_config.bos_token_id = 151643
    model.generation_config.eos_token_id = [151645, 151643]
    model.generation_config.pad_token_id = 151643
    args.dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.dir, safe_serialization=True)

    # Also write the hub spellings (rope_theta / rope_scaling / torch_dtype)
    # next to transformers 5's rope_parameters / dtype, like the real file.
    p = args.dir / "config.json"
    c = json.loads(p.read_text())
    c["rope_theta"] = QWEN3_0P6B["rope_theta"]
    c["rope_scaling"] = None
    c["torch_dtype"] = "bfloat16"
    c["dtype"] = "bfloat16"
    p.write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")

    n = sum(x.numel() for x in model.parameters())
    print(json.dumps({"dir": str(args.dir), "params": n, "dtype": "bfloat16", "seconds": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
