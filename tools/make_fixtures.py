#!/usr/bin/env python3
"""Build the tiny random checkpoints + goldens used by the `rhythm-model` tests.

    python tools/make_fixtures.py            # (re)writes fixtures/models/*

Nothing is downloaded: every weight is drawn from a seeded torch.Generator and
the tokenizer is built in code with the `tokenizers` library.  Running the
script twice gives byte-identical files (given the same torch/transformers).

For each model in MODELS it writes fixtures/models/<name>/:
    config.json, generation_config.json, model.safetensors   (save_pretrained)
    tokenizer.json, tokenizer_config.json
    golden.safetensors   input_ids [N] i64, logits [N,V] f32, attn.{l} [H,N,N] f32,
                         hidden_last [N,D] f32 (output of the final RMSNorm)
    golden.json          greedy / batch_greedy / tokenizer goldens + versions

The goldens are computed in float32 from the checkpoint *as saved* (it is
loaded back from disk and upcast), so a bf16/f16 checkpoint's goldens are the
float32 forward of the rounded weights.  See docs/fixtures.md.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "models"

VOCAB = 96
N_TOKENS = 24
MAX_NEW = 12
EOS_ID = 0
EOS = "<|endoftext|>"

# --------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------

SPECIAL = [EOS, "<|im_start|>", "<|im_end|>"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
CHARS = (
    list("0123456789")
    + list("+-*/()=")
    + [" ", "\n"]
    + list(".,?!:")
    + [chr(c) for c in range(ord("a"), ord("z") + 1)]
)
WORDS = ["the", "is", "so", "we", "wait", "let", "check", "step", "answer", "add", "sum"]


def build_tokenizer() -> Tokenizer:
    """A char-level BPE with a few word merges; exactly VOCAB ids, 0 = <|endoftext|>.

    No pre-tokenizer, no normalizer, no post-processor (no BOS is added), Fuse
    decoder (tokens are concatenated).  The special/tag strings are added
    tokens, so they are matched whole before BPE runs.
    """
    vocab: dict[str, int] = {}

    def add(tok: str) -> None:
        if tok not in vocab:
            vocab[tok] = len(vocab)

    for t in SPECIAL + TAGS + CHARS:
        add(t)
    merges: list[tuple[str, str]] = []
    for w in WORDS:
        cur = w[0]
        for ch in w[1:]:
            nxt = cur + ch
            if nxt not in vocab:
                merges.append((cur, ch))
                add(nxt)
            cur = nxt
    k = 0
    while len(vocab) < VOCAB:
        add(f"<|reserved_{k}|>")
        k += 1
    assert len(vocab) == VOCAB, len(vocab)
    assert vocab[EOS] == EOS_ID

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False))
    tok.decoder = decoders.Fuse()
    reserved = [t for t in vocab if t.startswith("<|reserved_")]
    tok.add_special_tokens(SPECIAL + reserved)
    tok.add_tokens(TAGS)
    return tok


TOKENIZER_TEXTS = [
    "<think>12+34=46</think><answer>46</answer>",
    "let the sum be (3*4)-5. wait, check step 2!",
    "we add 7 and 8, so the answer is 15<|endoftext|>",
]

# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    rms_norm_eps=1e-6,
    max_position_embeddings=128,
    eos_token_id=EOS_ID,
    pad_token_id=EOS_ID,
    bos_token_id=None,
    hidden_act="silu",
)

# llama3 rope: original_max_position_embeddings=160 puts the 4 rotary
# frequencies of head_dim 8 (wavelengths 6.3, 63, 628, 6283) into all three
# branches of the llama3 rule: 6.3 < 160/4 unchanged, 63 in [40,160] smoothed
# (smooth = 0.516), 628 and 6283 > 160 divided by `factor`.
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 160,
}

MODELS = [
    dict(
        name="tiny-qwen3",
        seed=1001,
        cls=Qwen3ForCausalLM,
        config=Qwen3Config(
            **COMMON,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            tie_word_embeddings=True,
            rope_theta=10000.0,
        ),
        dtype=torch.float32,
        legacy_rope_scaling=None,
        rope_theta=10000.0,
    ),
    dict(
        name="tiny-qwen2",
        seed=1002,
        cls=Qwen2ForCausalLM,
        config=Qwen2Config(
            **COMMON,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            tie_word_embeddings=False,
            rope_theta=10000.0,
        ),
        dtype=torch.bfloat16,
        legacy_rope_scaling=None,
        rope_theta=10000.0,
    ),
    dict(
        name="tiny-llama",
        seed=1003,
        cls=LlamaForCausalLM,
        config=LlamaConfig(
            **{**COMMON, "max_position_embeddings": 256},
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            tie_word_embeddings=False,
            rope_theta=10000.0,
            rope_scaling=dict(LLAMA3_ROPE),
        ),
        dtype=torch.float16,
        legacy_rope_scaling=dict(LLAMA3_ROPE),
        rope_theta=10000.0,
    ),
]

# q/k gain: Qwen3 RMS-normalises q and k per head (q_norm/k_norm), so there
# the gain goes into the q_norm/k_norm weights; elsewhere into q_proj/k_proj.
QK_GAIN = 2.0
# residual-branch gain, so the layers (not the input embedding, which with tied
# embeddings would make every token predict itself) drive the next token
OUT_GAIN = 3.0
# greedy goldens: every step's top1 - top2 logit gap must exceed this, so that
# a faithful reimplementation cannot flip an argmax through rounding noise
MIN_MARGIN = 0.05


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter from one seeded generator (order: sorted names)."""
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        shape = p.shape
        if name.endswith("norm.weight"):
            val = 1.0 + 0.25 * torch.randn(shape, generator=g)
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                val = val * QK_GAIN
        elif name.endswith(".bias"):
            val = 0.3 * torch.randn(shape, generator=g)
        elif "embed_tokens" in name:
            val = torch.randn(shape, generator=g)
        else:  # linear weight [out, in]
            val = torch.randn(shape, generator=g) / math.sqrt(shape[1])
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                val = val * OUT_GAIN
            if name.endswith(("q_proj.weight", "k_proj.weight")) and not any(
                n.endswith("q_norm.weight") for n in params
            ):
                val = val * QK_GAIN
        p.copy_(val.to(p.dtype))


def patch_config_json(path: Path, spec: dict) -> None:
    """transformers 5 writes `rope_parameters` / `dtype`; real hub checkpoints
    (Qwen3-0.6B, Llama-3.x) use `rope_theta` / `rope_scaling` / `torch_dtype`.
    Write both spellings (they agree) so either parser works."""
    cfg = json.loads(path.read_text())
    cfg["rope_theta"] = spec["rope_theta"]
    cfg["rope_scaling"] = spec["legacy_rope_scaling"]
    dt = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[spec["dtype"]]
    cfg["torch_dtype"] = dt
    cfg["dtype"] = dt
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def manual_greedy(model, prompt: list[int], n: int) -> list[int]:
    """Greedy decoding by full recomputation (no KV cache, no eos stop)."""
    ids = list(prompt)
    out, margin = [], float("inf")
    for _ in range(n):
        logits = model(torch.tensor([ids])).logits[0, -1]
        top = torch.topk(logits, 2).values
        margin = min(margin, float(top[0] - top[1]))
        t = int(torch.argmax(logits))
        out.append(t)
        ids.append(t)
    return out, margin


def attn_stats(attns: list[torch.Tensor]) -> dict:
    # rows 4.. (early rows are trivially peaked by causality)
    mx = torch.stack([a[:, 4:, :].max(dim=-1).values for a in attns])
    return {
        "median_row_max": round(float(mx.median()), 4),
        "frac_rows_max_gt_0.5": round(float((mx > 0.5).float().mean()), 4),
    }


@torch.no_grad()
def make_model(spec: dict, tok: Tokenizer) -> dict:
    name = spec["name"]
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)

    torch.manual_seed(spec["seed"])
    model = spec["cls"]._from_config(spec["config"], attn_implementation="eager", dtype=torch.float32)
    init_weights(model, spec["seed"])
    model = model.to(spec["dtype"])
    model.generation_config.eos_token_id = EOS_ID
    model.generation_config.pad_token_id = EOS_ID
    model.generation_config.bos_token_id = None
    model.save_pretrained(d, safe_serialization=True)
    patch_config_json(d / "config.json", spec)

    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "eos_token": EOS,
                "pad_token": EOS,
                "bos_token": None,
                "unk_token": None,
                "model_max_length": spec["config"].max_position_embeddings,
                "padding_side": "left",
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )

    # ---- goldens: reload the saved checkpoint and compute in float32 ----
    m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    m.eval()
    # sanity: the reloaded f32 weights are exactly the rounded saved weights
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), m.named_parameters()):
        assert n1 == n2 and torch.equal(p1.float(), p2), n1

    g = torch.Generator().manual_seed(spec["seed"] + 7)
    input_ids = torch.randint(1, VOCAB, (N_TOKENS,), generator=g, dtype=torch.int64)
    o = m(input_ids[None], output_attentions=True, output_hidden_states=True)
    logits = o.logits[0].float().contiguous()
    hidden_last = o.hidden_states[-1][0].float().contiguous()
    assert torch.allclose(m.lm_head(hidden_last), logits, atol=1e-5)
    attns = [a[0].float().contiguous() for a in o.attentions]
    tensors = {"input_ids": input_ids.contiguous(), "logits": logits, "hidden_last": hidden_last}
    for l, a in enumerate(attns):
        tensors[f"attn.{l}"] = a
    save_file(tensors, str(d / "golden.safetensors"), metadata={"format": "pt"})
    stats = attn_stats(attns)
    assert stats["median_row_max"] > 0.5, (name, stats)

    # ---- greedy generation goldens ----
    greedy = []
    prompt_lens = [1, 5, 11]
    for i, plen in enumerate(prompt_lens):
        s = spec["seed"] * 100 + i
        while True:
            gg = torch.Generator().manual_seed(s)
            prompt = torch.randint(1, VOCAB, (plen,), generator=gg, dtype=torch.int64).tolist()
            ref, margin = manual_greedy(m, prompt, MAX_NEW)
            if EOS_ID not in ref and margin > MIN_MARGIN:
                break
            s += 1000  # pick another prompt: no eos, no near-tie in the goldens
        gen = m.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, plen, dtype=torch.int64),
            do_sample=False,
            max_new_tokens=MAX_NEW,
            eos_token_id=None,
            pad_token_id=EOS_ID,
        )
        out = gen[0, plen:].tolist()
        assert out == ref, (name, prompt, out, ref)
        assert len(out) == MAX_NEW
        greedy.append(
            {"prompt_ids": prompt, "max_new_tokens": MAX_NEW, "output_ids": out, "min_top2_margin": round(margin, 4)}
        )

    # ---- left-padded batch: prompts 1 and 2 (lengths 5 and 11) ----
    p_a, p_b = greedy[1]["prompt_ids"], greedy[2]["prompt_ids"]
    L = max(len(p_a), len(p_b))
    rows, mask = [], []
    for p in (p_a, p_b):
        pad = L - len(p)
        rows.append([EOS_ID] * pad + p)
        mask.append([0] * pad + [1] * len(p))
    gen = m.generate(
        torch.tensor(rows),
        attention_mask=torch.tensor(mask),
        do_sample=False,
        max_new_tokens=MAX_NEW,
        eos_token_id=None,
        pad_token_id=EOS_ID,
    )
    batch_out = gen[:, L:].tolist()
    batch_greedy = {
        "input_ids": rows,
        "attention_mask": mask,
        "pad_token_id": EOS_ID,
        "padding_side": "left",
        "max_new_tokens": MAX_NEW,
        "output_ids": batch_out,
        "matches_unbatched": [batch_out[0] == greedy[1]["output_ids"], batch_out[1] == greedy[2]["output_ids"]],
        "note": "transformers uses position_ids = cumsum(attention_mask) - 1 (pads at 1) and masks pad keys",
    }

    tok_golden = [{"text": t, "ids": tok.encode(t).ids} for t in TOKENIZER_TEXTS]
    for t in tok_golden:
        assert tok.decode(t["ids"], skip_special_tokens=False) == t["text"], t

    golden = {
        "model": name,
        "architecture": spec["cls"].__name__,
        "checkpoint_dtype": str(spec["dtype"]).replace("torch.", ""),
        "golden_dtype": "float32",
        "golden_note": "logits/attn/hidden_last: float32 forward (eager attention, no mask/padding) "
        "over input_ids, from the saved checkpoint loaded back and upcast to float32",
        "eos_token_id": EOS_ID,
        "eos_handling": "generate(do_sample=False, eos_token_id=None): no stopping on eos; prompts were "
        "chosen so that eos (id 0) never appears in output_ids; each output was checked equal to a "
        "no-cache full-recompute argmax loop",
        "greedy": greedy,
        "batch_greedy": batch_greedy,
        "tokenizer": tok_golden,
        "attention_stats": stats,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    (d / "golden.json").write_text(json.dumps(golden, indent=1, sort_keys=False) + "\n")
    size = sum(f.stat().st_size for f in d.iterdir())
    print(f"{name}: {size/1024:.0f} KiB, attention {stats}, greedy {[x['output_ids'] for x in greedy]}, "
          f"batch matches {batch_greedy['matches_unbatched']}")
    assert size < 1_000_000
    return golden


def main() -> int:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    tok = build_tokenizer()
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    OUT.mkdir(parents=True, exist_ok=True)
    for spec in MODELS:
        make_model(spec, tok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
