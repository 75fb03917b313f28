#!/usr/bin/env python3
"""Reference gradients (PyTorch autograd, float64) for the hand-written
training pass of rhythm-model (crates/rhythm-model/src/backprop.rs).

    .venv/bin/python tools/make_grad_reference.py     # rewrites fixtures/grads/*.safetensors

For the bundled model (models/countdown-tiny) and the three fixtures
(fixtures/models/tiny-{qwen3,qwen2,llama}) it loads the checkpoint as saved,
upcast to float64, draws a batch of three sequences of different lengths
(ids from a seeded torch.Generator, each sequence on its own at positions
0..len, i.e. exactly what `Model::train_forward` computes), and a
coefficient per predicted position, and takes

    loss = sum_s sum_t coef[s][t] * ln p(ids_s[t + 1] | ids_s[..=t])

through transformers' eager forward. It writes fixtures/grads/<name>.safetensors:

    ids.{s}  [len_s]      int64     the sequences
    coef.{s} [len_s - 1]  float32   the coefficients (= dL/dlogp)
    logp.{s} [len_s - 1]  float64   the log-probabilities
    loss     [1]          float64
    grad.{param}          float64   the full gradient of a tensor of at most
                                    FULL elements; for larger tensors:
    pick.{param} [PICK]   int64     indices into the flattened tensor, and
    grad.{param} [PICK]   float64   the gradient there, plus
    norm.{param} [1]      float64   the L2 norm of the whole gradient

(the sample keeps the file small; a wrong backward shows in any 512 random
entries). A tied lm_head contributes to model.embed_tokens.weight, as in
rhythm. crates/rhythm-model/tests/grad_reference.rs compares against it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "grads"
FULL = 4096
PICK = 512

# name -> (checkpoint directory, sequence lengths, seed)
MODELS = {
    "countdown-tiny": ("models/countdown-tiny", [190, 75, 260], 1),
    "tiny-qwen3": ("fixtures/models/tiny-qwen3", [23, 9, 40], 2),
    "tiny-qwen2": ("fixtures/models/tiny-qwen2", [31, 12, 5], 3),
    "tiny-llama": ("fixtures/models/tiny-llama", [27, 50, 8], 4),
}


def reference(name: str, rel: str, lens: list[int], seed: int) -> dict[str, torch.Tensor]:
    model = AutoModelForCausalLM.from_pretrained(
        ROOT / rel, torch_dtype=torch.float64, attn_implementation="eager"
    )
    model.eval()
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), dtype=torch.float64)
    for s, n in enumerate(lens):
        ids = torch.randint(1, vocab, (n,), generator=gen)
        coef = torch.randn(n - 1, generator=gen).float()
        logits = model(input_ids=ids[None]).logits[0, :-1]
        logp = torch.log_softmax(logits, -1).gather(-1, ids[1:, None])[:, 0]
        loss = loss + (coef.double() * logp).sum()
        out[f"ids.{s}"] = ids.to(torch.int64)
        out[f"coef.{s}"] = coef.contiguous()
        out[f"logp.{s}"] = logp.detach().contiguous()
    loss.backward()
    out["loss"] = loss.detach().reshape(1)
    for pname, p in model.named_parameters():
        g = p.grad.detach().reshape(-1)
        if g.numel() <= FULL:
            out[f"grad.{pname}"] = g.clone()
        else:
            pick = torch.randperm(g.numel(), generator=gen)[:PICK].sort().values
            out[f"pick.{pname}"] = pick.to(torch.int64)
            out[f"grad.{pname}"] = g[pick].clone()
            out[f"norm.{pname}"] = g.norm().reshape(1)
    print(f"{name}: loss {loss.item():.6f}, {sum(lens)} tokens", file=sys.stderr)
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name, (rel, lens, seed) in MODELS.items():
        tensors = reference(name, rel, lens, seed)
        tmp = OUT / f".{name}.safetensors.tmp"
        save_file(
            tensors,
            str(tmp),
            metadata={"torch": torch.__version__, "transformers": transformers.__version__},
        )
        tmp.replace(OUT / f"{name}.safetensors")


if __name__ == "__main__":
    main()
