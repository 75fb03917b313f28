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


def _deferred(out):
    """The batch as TRL's loss sees it when gamma rides on the training forward."""
    b = copy.copy(out)
    b["rhythm_row"] = torch.arange(b["completion_ids"].shape[0])
    b["rhythm_step"] = torch.zeros(b["completion_ids"].shape[0], dtype=torch.long)
    return b


@pytest.mark.parametrize("strategy", ["coupled", "entropy"])
def test_gamma_rides_on_the_training_forward(tmp_path, strategy):
    """Default TRL (no old-logprob pass): the loss forward is probed; same gamma and loss as a separate pass."""
    plain, out = rollout(tmp_path)
    rh = rhythm_trainer(tmp_path, RhythmConfig(strategy=strategy, horizon=(2, 12)))
    rh.model.load_state_dict(plain.model.state_dict())
    assert not rh._trl_makes_policy_pass()
    explicit = rh.apply_rhythm(copy.copy(out))
    l0, g0 = loss_and_grads(rh, explicit)
    batch = _deferred(out)
    l1, g1 = loss_and_grads(rh, batch)
    m = out["completion_mask"].bool()
    assert (batch["rhythm_gamma"][m] > 1).any()
    np.testing.assert_allclose(batch["rhythm_gamma"].numpy(), explicit["rhythm_gamma"].numpy(), rtol=0, atol=1e-6)
    assert torch.allclose(l0, l1, rtol=1e-6, atol=1e-9)
    for k in g0:
        assert torch.allclose(g0[k], g1[k], rtol=1e-5, atol=1e-8), k
    mode = "train" if rh.model.training else "eval"
    assert len(rh._metrics[mode]["rhythm/probe_s"]) == 2 and rh._metrics[mode]["rhythm/probe_s"][-1] >= 0.0


def test_gamma_from_trls_old_logprob_pass(tmp_path):
    """num_iterations=2: TRL makes a no-grad policy pass; it is the probe, gamma is set before the update."""
    rh = RhythmGRPOTrainer(
        model=load_model(), reward_funcs=countdown_reward,
        args=grpo_args(tmp_path / "it2", max_completion_length=40, num_iterations=2),
        train_dataset=dataset(), processing_class=tokenizer(), rhythm=RhythmConfig(strategy="coupled", horizon=(2, 12)),
    )
    assert rh._trl_makes_policy_pass()
    calls = []
    orig = type(rh).__mro__[1]._get_per_token_logps_and_entropies

    def counting(self, *a, **k):
        calls.append(1)
        return orig(self, *a, **k)

    type(rh).__mro__[1]._get_per_token_logps_and_entropies = counting
    try:
        torch.manual_seed(3)
        out = rh._generate_and_score_completions([dataset()[0]] * 4)
    finally:
        type(rh).__mro__[1]._get_per_token_logps_and_entropies = orig
    assert len(calls) == 1  # one forward: TRL's own old-logprob pass
    assert "rhythm_gamma" in out and "rhythm_row" not in out and out["advantages"].dim() == 2
    ref = rhythm_gammas(rh.model, out["prompt_ids"], out["prompt_mask"], out["completion_ids"],
                        out["completion_mask"], rh.rhythm, seeds=rh.rhythm_row_seeds(4, 0, 0))
    np.testing.assert_allclose(out["rhythm_gamma"].numpy(), ref.numpy(), rtol=0, atol=1e-6)


def test_rhythm_grpo_config_from_yaml_and_validation(tmp_path):
    import rhythm
    from trl import TrlParser
    from transformers import HfArgumentParser

    from rhythm.trl import RhythmGRPOConfig

    names = {f[len("rhythm_"):] for f in RhythmGRPOConfig.__dataclass_fields__ if f.startswith("rhythm_")}
    assert names == set(rhythm.Params.rl().to_dict()) | {"strategy", "layers", "batch_size"}
    y = tmp_path / "cfg.yaml"
    y.write_text("output_dir: %s\nrhythm_strategy: global\nrhythm_horizon: '2:'\nrhythm_q: 0.25\n"
                 "rhythm_layers: '1,2'\nrhythm_receiver_ratio: 0.2\nseed: 7\nuse_cpu: true\nreport_to: []\n" % tmp_path)
    (args,) = TrlParser((RhythmGRPOConfig,)).parse_args_and_config(["--config", str(y), "--rhythm_k", "5"])
    cfg = args.rhythm_config()
    assert (cfg.strategy, cfg.horizon, cfg.q, cfg.layers, cfg.k, cfg.receiver_ratio, args.seed) == (
        "global", (2, None), 0.25, [1, 2], 5, 0.2, 7)
    (a2,) = HfArgumentParser((RhythmGRPOConfig,)).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--rhythm_strategy", "local", "--use_cpu", "true"])
    assert a2.rhythm_config().strategy == "local" and a2.rhythm_config().params == rhythm.Params.rl()
    assert RhythmGRPOConfig(output_dir=str(tmp_path), rhythm_strategy=rhythm.Strategy.COUPLED, use_cpu=True).rhythm_strategy == "coupled"
    for kw, msg in [({"rhythm_window": -1}, "window"), ({"rhythm_k": -3}, "k"), ({"rhythm_proximity": -1}, "proximity"),
                    ({"rhythm_q": 0.0}, "q"), ({"rhythm_horizon": "9:3"}, "horizon"), ({"rhythm_horizon": "x"}, "rhythm_horizon"),
                    ({"rhythm_strategy": "bogus"}, "strategy"), ({"rhythm_layers": "-1"}, "layers"),
                    ({"rhythm_batch_size": 0}, "batch_size")]:
        with pytest.raises(ValueError, match=msg):
            RhythmGRPOConfig(output_dir=str(tmp_path), use_cpu=True, **kw)


def test_rhythm_config_is_a_params_builder(tmp_path):
    import rhythm

    cfg = RhythmConfig(rhythm.Strategy.COUPLED, receiver_ratio=0.2, gamma_amp=0.5)
    assert cfg.strategy == "coupled" and cfg.params == rhythm.Params.rl(receiver_ratio=0.2, gamma_amp=0.5)
    assert cfg.window == 10 and cfg.to_dict()["receiver_ratio"] == 0.2
    for kw, msg in [({"window": -1}, "window"), ({"k": -3}, "k"), ({"proximity": -1}, "proximity"),
                    ({"layers": [-1]}, "layers"), ({"batch_size": 0}, "batch_size")]:
        with pytest.raises(ValueError, match=msg):
            RhythmConfig(**kw)
    with pytest.raises(TypeError, match="block_size"):
        RhythmConfig(block_size=0)
    with pytest.raises(ValueError, match="layers \\[99\\]"):
        RhythmGRPOTrainer(model=load_model(), reward_funcs=countdown_reward, args=grpo_args(tmp_path),
                          train_dataset=dataset(), processing_class=tokenizer(), rhythm=RhythmConfig(layers=[99]))
