#!/usr/bin/env python3
"""The torch probe's summaries against the float64 definition at long N, peaked and flat heads.

    python bench/probe_exactness.py [--tokens 8192] [--threads 2]

Builds (in memory, random weights, no download) a 2-layer model with
Qwen3-0.6B's attention shapes (hidden 1024, 16 query heads, 8 KV heads,
head_dim 128, RoPE theta 1e6): layer 0 has ``k_proj = q_proj`` and a large
``q_norm``/``k_norm`` gain, so every head is peaked on and near the diagonal
(the float32 cancellation case of the span numerator); layer 1 has a tiny
``q_norm`` gain, so its heads are nearly flat. It runs
``rhythm.torch.probe(..., layers="all", stats=False)`` in float32 over N
random ids (response from N // 4), captures each layer's post-RoPE query and
key through an attention function, computes every head's map in float64 and
its summaries straight from SPEC (``tests/helpers.reference_summary``), and
prints, per layer and key, the relative error ``max |ours - ref| / max |ref|``
beside that of the model's own float32 eager attention (float32 scores and
softmax, summed in float64), and whether it is within 1e-5. Exit status 1
when any is not.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bindings" / "python" / "tests"))

from helpers import reference_summary  # noqa: E402

KEYS = ("span_num", "waad", "fai_sum", "vert_sum")


def build(seed: int = 0):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(
        vocab_size=1000, hidden_size=1024, intermediate_size=3072, num_hidden_layers=2, num_attention_heads=16,
        num_key_value_heads=8, head_dim=128, rope_theta=1e6, max_position_embeddings=40960, tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        a0 = model.model.layers[0].self_attn
        # Query head h equals its KV head h // 2: every head peaked on and near the
        # diagonal (self score ~ gain^2 sqrt(128) = 18, as large as real models' scores).
        qw = a0.q_proj.weight.view(16, 128, 1024)
        qw.copy_(a0.k_proj.weight.view(8, 128, 1024).repeat_interleave(2, 0))
        a0.q_norm.weight.fill_(1.25)
        a0.k_norm.weight.fill_(1.25)
        model.model.layers[1].self_attn.q_norm.weight.fill_(0.02)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--horizon", default="10:50", help="lo:hi or lo: (to the end)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from rhythm.torch import probe

    lo, _, hi = a.horizon.partition(":")
    horizon = (int(lo), None if hi == "" else int(hi))
    model = build().to(a.device)
    n_tok, p = a.tokens, a.tokens // 4
    ids = torch.randint(0, 1000, (n_tok,), generator=torch.Generator().manual_seed(1)).to(a.device)
    t0 = time.perf_counter()
    s = probe(model, ids, p, layers="all", horizon=horizon, stats=False)
    probe_s = time.perf_counter() - t0
    captured: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def capture(module, query, key, value, attention_mask, scaling=None, **kw):
        g = query.shape[1] // key.shape[1]
        captured[module.layer_idx] = (query[0].double().cpu(), key[0].repeat_interleave(g, 0).double().cpu(), scaling)
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kw)

    AttentionInterface.register("capture_qk", capture)
    model.set_attn_implementation("capture_qk")
    with torch.no_grad():
        model(ids[None], logits_to_keep=1)
    worst, base = {}, {}
    causal = torch.ones(n_tok, n_tok, dtype=torch.bool).tril()
    for layer in (0, 1):
        q, k, scale = captured[layer]
        refs = {key: [] for key in KEYS}
        f32 = {key: [] for key in KEYS}
        for h in range(q.shape[0]):
            sc = (q[h] @ k[h].T) * scale
            amap = torch.softmax(sc.masked_fill(~causal, -torch.inf), -1).numpy()[None]
            r = reference_summary(amap, p, s["window"], horizon, s["proximity"])
            # The model's own float32 attention (eager: f32 scores, f32 softmax), summed in float64.
            sc32 = (q[h].float() @ k[h].float().T) * scale
            m32 = torch.softmax(sc32.masked_fill(~causal, -torch.inf), -1).numpy()[None]
            r32 = reference_summary(m32, p, s["window"], horizon, s["proximity"])
            for key in KEYS:
                refs[key].append(r[key][0])
                f32[key].append(r32[key][0])
            del sc, amap, sc32, m32
        for key in KEYS:
            ref = np.stack(refs[key])
            ours = s[key][layer]
            err = float(np.abs(ours - ref).max() / max(1e-30, np.abs(ref).max()))
            worst[(layer, key)] = err
            base[(layer, key)] = float(np.abs(np.stack(f32[key]) - ref).max() / max(1e-30, np.abs(ref).max()))
        waad = s["waad"][layer].mean()
        print(f"layer {layer} ({'peaked' if layer == 0 else 'flat'} heads): mean WAAD {waad:.3f} of W={s['window']}, "
              + ", ".join(f"{key} {worst[(layer, key)]:.1e} (f32 eager {base[(layer, key)]:.1e})" for key in KEYS), flush=True)
    ok = all(v <= 1e-5 for v in worst.values())
    print(f"N={n_tok} P={p} horizon={horizon}: probe {probe_s:.1f}s; worst relative error "
          f"{max(worst.values()):.2e} ({'within' if ok else 'NOT within'} 1e-5)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
