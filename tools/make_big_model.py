#!/usr/bin/env python3
"""A larger Qwen3 checkpoint for the GRPO throughput benchmark.

    .venv/bin/python tools/make_big_model.py [OUT] [--embed-tiny]   # default OUT /tmp/rhythm-big

hidden 512, 8 layers, 8 query / 4 key-value heads of 64, MLP 1536, tied
embeddings, 384 positions, the bundled model's tokenizer (vocabulary 64), so
that bench/rl_vs_trl.py --model OUT runs the same Countdown prompts on it.
Weights are drawn from a seeded generator (no download); float32.

With --embed-tiny the bundled model (hidden 128, 4 layers, 4/2 heads of 32,
MLP 512) is embedded in the random one so that the larger model computes
the same function (logits equal to float rounding; printed): a random model
never earns a Countdown reward, so every GRPO advantage would be zero and a
trainer that skips zero-advantage batches (rhythm does) would never run its
update; embedded, both trainers sample, score and update as on the bundled
model, at the larger model's cost. How: the residual stream's first 128
dimensions are the tiny model's and the other 384 stay zero (every weight
that writes them is zero; the RMSNorm gains are scaled by sqrt(128/512) to
undo the wider mean); tiny head h is big head h (h < 4; GQA groups of 2 in
both), its 32 dimensions placed at 2i and 2i + 32 so that RoPE's frequency
pairs match (head_dim 64's pair j has the frequency of head_dim 32's pair
j/2), k_norm scaled by 1/sqrt(2) for the attention scale 1/8 instead of
1/sqrt(32); the other heads, MLP neurons and layers 4-7 are random, their
outputs (o_proj columns, down_proj columns and rows) zero. Training moves
those zeros at once, so it is the same model only at the start.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "models" / "countdown-tiny"


def embed_tiny(model) -> float:
    """Writes the bundled model into `model` (see the module doc); returns the
    largest |logit difference| relative to the largest |logit| on a Countdown prompt."""
    from safetensors.torch import load_file

    t = load_file(str(SRC / "model.safetensors"))
    sd = model.state_dict()
    h_t, h_b, d_t, d_b, nq_t, nkv_t = 128, 512, 32, 64, 4, 2
    norm = (h_t / h_b) ** 0.5
    # Tiny head dimension i -> big 2i (first half), i + 16 -> 2i + 32.
    place = torch.tensor([2 * i for i in range(d_t // 2)] + [2 * i + d_b // 2 for i in range(d_t // 2)])

    def rows(n_heads):
        return torch.cat([hh * d_b + place for hh in range(n_heads)])

    with torch.no_grad():
        sd["model.embed_tokens.weight"].zero_()
        sd["model.embed_tokens.weight"][:, :h_t] = t["model.embed_tokens.weight"]
        sd["model.norm.weight"].fill_(norm)
        sd["model.norm.weight"][:h_t] = t["model.norm.weight"] * norm
        for l in range(8):
            p = f"model.layers.{l}."
            sd[p + "self_attn.o_proj.weight"].zero_()
            sd[p + "mlp.down_proj.weight"].zero_()
            if l >= 4:
                continue
            for n in ["input_layernorm", "post_attention_layernorm"]:
                sd[p + n + ".weight"].fill_(norm)
                sd[p + n + ".weight"][:h_t] = t[p + n + ".weight"] * norm
            for name, nh in [("q_proj", nq_t), ("k_proj", nkv_t)]:
                w = sd[p + f"self_attn.{name}.weight"]
                w[: nh * d_b].zero_()
                w[rows(nh), :h_t] = t[p + f"self_attn.{name}.weight"]
            v = sd[p + "self_attn.v_proj.weight"]
            v[: nkv_t * d_b].zero_()
            v[torch.cat([g * d_b + torch.arange(d_t) for g in range(nkv_t)]), :h_t] = t[p + "self_attn.v_proj.weight"]
            o = sd[p + "self_attn.o_proj.weight"]
            o[:h_t, torch.cat([hh * d_b + torch.arange(d_t) for hh in range(nq_t)])] = t[p + "self_attn.o_proj.weight"]
            for name, scale in [("q_norm", 1.0), ("k_norm", 0.5 ** 0.5)]:
                w = sd[p + f"self_attn.{name}.weight"]
                w.fill_(1.0)
                w[place] = t[p + f"self_attn.{name}.weight"] * scale
            for name in ["gate_proj", "up_proj"]:
                sd[p + f"mlp.{name}.weight"][:512, :h_t] = t[p + f"mlp.{name}.weight"]
                sd[p + f"mlp.{name}.weight"][:512, h_t:] = 0.0
            sd[p + "mlp.down_proj.weight"][:h_t, :512] = t[p + "mlp.down_proj.weight"]
    model.load_state_dict(sd)
    from transformers import AutoTokenizer, Qwen3ForCausalLM as M

    tiny = M.from_pretrained(str(SRC)).float().eval()
    tok = AutoTokenizer.from_pretrained(str(SRC))
    ids = torch.tensor([tok("nums: 3 7 25 50 target: 75\n")["input_ids"]])
    model.eval()
    with torch.no_grad():
        a, b = tiny(ids).logits, model(ids).logits
        diff = ((a - b).abs().max() / a.abs().max()).item()
    return diff


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    embed = "--embed-tiny" in sys.argv[1:]
    out = Path(args[0] if args else "/tmp/rhythm-big")
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
    if embed:
        diff = embed_tiny(model)
        print(f"embedded models/countdown-tiny: max |logit difference| / max |logit| {diff:.2e}")
        if diff > 1e-4:
            sys.exit("the embedded model does not compute the bundled model's function")
    model.save_pretrained(tmp, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
        shutil.copy(SRC / f, tmp / f)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: {n:,} parameters")


if __name__ == "__main__":
    main()
