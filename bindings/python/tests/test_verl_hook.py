"""The veRL hook without veRL (it pins transformers < 5.11): gamma application and the wrapper."""

from __future__ import annotations

import types

import pytest
import torch

from countdown_trl import load_model, tokenizer
from rhythm.torch import RhythmConfig
from rhythm.verl import apply_gamma, compute_rhythm_gamma, install, wrap_compute_advantage


def test_apply_gamma_scales_nonnegative_only():
    adv = torch.tensor([[1.0, 1.0, 0.0], [-2.0, -2.0, -2.0]])
    gam = torch.tensor([[1.5, 1.0, 1.5], [1.5, 1.25, 1.0]])
    out = apply_gamma(adv, gam)
    assert torch.equal(out, torch.tensor([[1.5, 1.0, 0.0], [-2.0, -2.0, -2.0]]))
    with pytest.raises(ValueError, match="same \\[bs, response_length\\]"):
        apply_gamma(adv, gam[:, :2])


def grpo_like(data, *args, **kwargs):
    """Stands in for veRL's compute_advantage: token advantages = row score on the response mask."""
    b = data.batch
    b["advantages"] = b["scores"][:, None] * b["response_mask"].float()
    return data


def veRL_batch():
    tok = tokenizer()
    prompts = ["nums: 89 22 78 target: 33\n", "nums: 7 8 9 target: 65\n"]
    responses = ["<think>\n89-78=11 11+22=33\n</think>\n<answer>89-78+22</answer>", "<think>\n7*8=56 56+9=65\n</think>"]
    p_ids = [tok(p)["input_ids"] for p in prompts]
    r_ids = [tok(r)["input_ids"] for r in responses]
    pl, rl = max(map(len, p_ids)), max(map(len, r_ids))
    prompts_t = torch.tensor([[0] * (pl - len(x)) + x for x in p_ids])
    resp_t = torch.tensor([x + [0] * (rl - len(x)) for x in r_ids])
    pm = torch.tensor([[0] * (pl - len(x)) + [1] * len(x) for x in p_ids])
    rm = torch.tensor([[1] * len(x) + [0] * (rl - len(x)) for x in r_ids])
    batch = {
        "prompts": prompts_t,
        "responses": resp_t,
        "attention_mask": torch.cat([pm, rm], 1),
        "response_mask": rm,
        "scores": torch.tensor([0.8, -0.8]),
    }
    return types.SimpleNamespace(batch=batch), [len(x) for x in r_ids]


def test_wrapped_compute_advantage_uses_gamma():
    rhythm = pytest.importorskip("rhythm")
    if not hasattr(rhythm, "gamma"):
        pytest.skip("the Rust binding (rhythm.gamma) is not installed")
    data, lens = veRL_batch()
    cfg = RhythmConfig(strategy="coupled", horizon=(2, 12))
    gam = compute_rhythm_gamma(load_model(), data, cfg)
    assert data.batch["rhythm_gamma"] is gam
    assert (gam[0, : lens[0]] > 1).any() and torch.all(gam[1, lens[1] :] == 1)
    module = types.SimpleNamespace(compute_advantage=grpo_like)
    install(module=module)
    install(module=module)  # idempotent: wrapped once
    out = module.compute_advantage(data)
    adv = out.batch["advantages"]
    mask = data.batch["response_mask"].bool()
    assert torch.allclose(adv[0][mask[0]], 0.8 * gam[0][mask[0]])  # positive row scaled
    assert torch.allclose(adv[1][mask[1]], torch.full((lens[1],), -0.8))  # negative row untouched
    # Without gamma in the batch the wrapper changes nothing.
    data2, _ = veRL_batch()
    out2 = wrap_compute_advantage(grpo_like)(data2)
    assert torch.equal(out2.batch["advantages"][0][mask[0]], torch.full((lens[0],), 0.8))


def test_random_strategy_seeds_by_row():
    rhythm = pytest.importorskip("rhythm")
    if not hasattr(rhythm, "gamma"):
        pytest.skip("the Rust binding (rhythm.gamma) is not installed")
    data, lens = veRL_batch()
    model = load_model()
    a = compute_rhythm_gamma(model, data, RhythmConfig(strategy="random"), step=0).clone()
    b = compute_rhythm_gamma(model, data, RhythmConfig(strategy="random"), step=0)
    c = compute_rhythm_gamma(model, data, RhythmConfig(strategy="random"), step=1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int((a[0, : lens[0]] > 1).sum()) == -(-4 * lens[0] // 10)  # ceil_q(0.4, n)
