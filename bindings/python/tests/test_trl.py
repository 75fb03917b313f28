"""RhythmGRPOTrainer against TRL's GRPOTrainer on countdown-tiny (CPU, a few seconds each)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from countdown_trl import countdown_reward, dataset, grpo_args, load_model, tokenizer
from rhythm.torch import probe
from rhythm.trl import RhythmConfig, RhythmGRPOTrainer, mix_seed, rhythm_gammas, shape_advantages

trl = pytest.importorskip("trl")

ADV = torch.tensor([1.0, -0.5, 0.3, 0.0])


def rollout(tmp_path):
    """One scored rollout batch (4 completions of one prompt) from plain TRL, with fixed advantages."""
    plain = trl.GRPOTrainer(
        model=load_model(),
        reward_funcs=countdown_reward,
        args=grpo_args(tmp_path / "plain", max_completion_length=40),
        train_dataset=dataset(),
        processing_class=tokenizer(),
    )
    rows = [dataset()[0]] * 4
    torch.manual_seed(3)
    out = plain._generate_and_score_completions(rows)
    out["advantages"] = ADV.clone()
    return plain, out


def rhythm_trainer(tmp_path, cfg):
    return RhythmGRPOTrainer(
        model=load_model(),
        reward_funcs=countdown_reward,
        args=grpo_args(tmp_path / "rhythm", max_completion_length=40),
        train_dataset=dataset(),
        processing_class=tokenizer(),
        rhythm=cfg,
    )


def loss_and_grads(trainer, batch):
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def test_shape_advantages_only_nonnegative():
    a = torch.tensor([2.0, -1.0, 0.0])
    g = torch.tensor([[1.5, 1.0], [1.5, 1.25], [1.5, 1.0]])
    out = shape_advantages(a, g)
    assert torch.equal(out, torch.tensor([[3.0, 2.0], [-1.0, -1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="expected \\(B,\\) and \\(B, T\\)"):
        shape_advantages(a[None], g)


def test_config_validation_and_seeds(tmp_path):
    with pytest.raises(ValueError, match="strategy 'bogus'"):
        RhythmConfig(strategy="bogus")
    with pytest.raises(ValueError, match="horizon"):
        RhythmConfig(horizon=(5, 2))
    with pytest.raises(ValueError, match="use_liger_kernel"):
        RhythmGRPOTrainer(model=load_model(), reward_funcs=countdown_reward, args=grpo_args(tmp_path, use_liger_kernel=True))
    # Seeds are 64-bit, order-sensitive and deterministic.
    assert 0 <= mix_seed(2**64 - 1, 7) < 2**64
    assert mix_seed(1, 2) != mix_seed(2, 1) and mix_seed(1, 2) == mix_seed(1, 2)


def test_none_gives_plain_grpo_loss_and_gradients(tmp_path):
    plain, out = rollout(tmp_path)
    rh = rhythm_trainer(tmp_path, RhythmConfig(strategy="none"))
    rh.model.load_state_dict(plain.model.state_dict())
    shaped = rh.apply_rhythm(copy.copy(out))
    assert shaped["advantages"].shape == out["completion_ids"].shape
    l0, g0 = loss_and_grads(plain, out)
    l1, g1 = loss_and_grads(rh, shaped)
    assert l0.item() != 0.0
    assert torch.equal(l0, l1)
    assert g0.keys() == g1.keys() and len(g0) > 0
    for k in g0:
        assert torch.allclose(g0[k], g1[k], rtol=0, atol=1e-9), k


def test_coupled_weights_are_the_bindings_gamma(tmp_path):
    rhythm = pytest.importorskip("rhythm")
    if not hasattr(rhythm, "gamma"):
        pytest.skip("the Rust binding (rhythm.gamma) is not installed")
    plain, out = rollout(tmp_path)
    cfg = RhythmConfig(strategy="coupled", horizon=(2, 12))
    rh = rhythm_trainer(tmp_path, cfg)
    rh.model.load_state_dict(plain.model.state_dict())
    shaped = rh.apply_rhythm(copy.copy(out))
    adv = shaped["advantages"]
    seeds = rh.rhythm_row_seeds(4)
    boosted = 0
    for i in range(4):
        p_ids = out["prompt_ids"][i][out["prompt_mask"][i].bool()]
        keep = out["completion_mask"][i].bool()
        c_ids = out["completion_ids"][i][keep]
        seq = torch.cat([p_ids, c_ids])
        s = probe(rh.model, seq, len(p_ids), horizon=cfg.horizon)
        params = rhythm.Params(window=10, horizon=(2, 12), q=0.4, head_ratio=0.3, proximity=4, k=3,
                               gamma_amp=1.5, alpha=0.5, seed=seeds[i])
        r = rhythm.rhythm_from_summaries(s, params=params)
        g = np.asarray(rhythm.gamma("coupled", rhythm=r, params=params))
        assert g.shape == (len(c_ids),)
        applied = shaped["rhythm_gamma"][i][keep].double().numpy()
        np.testing.assert_allclose(applied, g, rtol=0, atol=1e-7)
        a = ADV[i].item()
        want = torch.tensor(g * a if a >= 0 else np.full(len(g), a), dtype=adv.dtype)
        assert torch.allclose(adv[i][keep], want, atol=1e-7)
        assert torch.all(shaped["rhythm_gamma"][i][~keep] == 1.0)
        boosted += int((g > 1).sum())
    assert boosted > 0
    mode = "train" if rh.model.training else "eval"
    logged = rh._metrics[mode]["rhythm/gamma_mean"][-1]
    m = out["completion_mask"].bool()
    assert logged == pytest.approx(shaped["rhythm_gamma"][m].double().mean().item(), rel=1e-6) and logged > 1.0


def test_short_coupled_run_completes(tmp_path):
    pytest.importorskip("rhythm")
    import rhythm

    if not hasattr(rhythm, "gamma"):
        pytest.skip("the Rust binding (rhythm.gamma) is not installed")
    rh = RhythmGRPOTrainer(
        model=load_model(),
        reward_funcs=countdown_reward,
        args=grpo_args(tmp_path / "run", max_steps=3, max_completion_length=64),
        train_dataset=dataset(),
        processing_class=tokenizer(),
        rhythm=RhythmConfig(strategy="coupled"),
    )
    rh.train()
    logs = [h for h in rh.state.log_history if "rhythm/gamma_mean" in h]
    assert len(logs) == 3
    for h in logs:
        assert 1.0 <= h["rhythm/gamma_mean"] <= 1.5 and 0.0 < h["rhythm/boosted_share"] <= 1.0


def test_rhythm_gammas_skips_empty_rows():
    model = load_model()
    pid = torch.tensor([[0, 26, 23], [26, 23, 24]])
    pm = torch.tensor([[0, 1, 1], [1, 1, 1]])
    cid = torch.tensor([[7, 8, 0], [9, 0, 0]])
    cm = torch.tensor([[0, 0, 0], [1, 0, 0]])
    g = rhythm_gammas(model, pid, pm, cid, cm, RhythmConfig(strategy="none"))
    assert torch.equal(g, torch.ones(2, 3))
