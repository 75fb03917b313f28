"""Rhythm credit in TRL's GRPO: a ``GRPOTrainer`` whose advantages are per token.

>>> from rhythm.trl import RhythmConfig, RhythmGRPOTrainer      # doctest: +SKIP
>>> trainer = RhythmGRPOTrainer(model=..., reward_funcs=..., args=GRPOConfig(...),
...                             train_dataset=..., rhythm=RhythmConfig(strategy="coupled"))

After TRL has generated and scored a rollout batch (``_generate_and_score_completions``),
the trainer runs the streamed probe (:mod:`rhythm.torch`) on the current policy
over each prompt + completion (no gradients, before the update), computes the
per-token scale ``gamma`` with the binding, and replaces the ``(B,)`` advantages
by ``(B, T)`` ones: ``gamma[t] * A`` where ``A >= 0``, ``A`` elsewhere (SPEC
section 8), on completion tokens (``gamma`` is 1 on padding). ``gamma`` is data,
never a gradient path. TRL's loss accepts ``(B, T)`` advantages as they are;
its Liger-kernel path does not, so ``use_liger_kernel`` must be ``False``.

Logged to TRL's metrics: ``rhythm/gamma_mean`` (mean ``gamma`` over completion
tokens, all processes) and ``rhythm/boosted_share`` (share of those tokens with
``gamma > 1``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from .torch import probe

__all__ = ["RhythmConfig", "RhythmGRPOTrainer", "mix_seed", "rhythm_gammas", "shape_advantages"]

STRATEGIES = (
    "none",
    "local",
    "global",
    "coupled",
    "random",
    "entropy",
    "local-bottom",
    "global-bottom",
    "coupled-bottom",
)
_MASK64 = (1 << 64) - 1


@dataclass
class RhythmConfig:
    """Every rhythm setting of the GRPO integration (SPEC defaults for RL)."""

    #: Credit strategy: none, local, global, coupled, random, entropy, or a ``-bottom`` ablation.
    strategy: str = "coupled"
    #: WAAD window ``W``.
    window: int = 10
    #: FAI horizon ``(lo, hi)``; ``hi=None`` means to the end of the response.
    horizon: tuple[int, Optional[int]] = (10, 50)
    #: Fraction ``q`` of response tokens selected.
    q: float = 0.4
    #: Selected tokens get up to ``gamma_amp`` times their advantage.
    gamma_amp: float = 1.5
    #: ``alpha`` of the coupled strategy.
    alpha: float = 0.5
    #: Neighbourhood ``k`` of locally dominated anchors.
    k: int = 3
    #: Head ratio ``rho`` of the local and global head groups.
    head_ratio: float = 0.3
    #: Receiver-head proximity ``p``.
    proximity: int = 4
    #: ``tau_waad`` (``None``: the median of WAAD over the response).
    tau_waad: Optional[float] = None
    #: ``tau_delta`` (``None``: the median of Delta over the response).
    tau_delta: Optional[float] = None
    #: Probed layers: ``"sampled"`` (SPEC section 2), ``"all"`` or indices.
    layers: Union[str, list[int]] = "sampled"
    #: Seed of the ``random`` strategy (mixed with the step and the row's global index).
    seed: int = 0
    #: Query rows per attention block in the probe (``None``: about 64 MiB of scores).
    block_size: Optional[int] = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"RhythmConfig.strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        lo, hi = self.horizon
        if lo < 0 or (hi is not None and hi < lo):
            raise ValueError(f"RhythmConfig.horizon {self.horizon}: expected 0 <= lo <= hi (hi None for the end)")
        if not 0.0 < self.q <= 1.0:
            raise ValueError(f"RhythmConfig.q {self.q}: expected 0 < q <= 1")
        if not 0.0 < self.head_ratio <= 1.0:
            raise ValueError(f"RhythmConfig.head_ratio {self.head_ratio}: expected 0 < head_ratio <= 1")
        if self.gamma_amp < 1.0:
            raise ValueError(f"RhythmConfig.gamma_amp {self.gamma_amp}: expected >= 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"RhythmConfig.alpha {self.alpha}: expected 0 <= alpha <= 1")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for logs)."""
        return asdict(self)


def mix_seed(a: int, b: int) -> int:
    """splitmix64 of ``(a, b)``: the seed rhythm-rl derives for a pair (its ``trainer::mix``)."""
    z = (a * 0x9E3779B97F4A7C15 + b + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _gamma_from_binding(summary: dict[str, Any], cfg: RhythmConfig, seed: int) -> np.ndarray:
    """``gamma`` over the response of one probed sequence, from the Rust binding."""
    import rhythm

    g = rhythm.gamma(
        summary,
        strategy=cfg.strategy,
        q=cfg.q,
        gamma_amp=cfg.gamma_amp,
        alpha=cfg.alpha,
        k=cfg.k,
        head_ratio=cfg.head_ratio,
        tau_waad=cfg.tau_waad,
        tau_delta=cfg.tau_delta,
        seed=seed,
    )
    return np.asarray(g, dtype=np.float64)


@torch.no_grad()
def rhythm_gammas(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    cfg: RhythmConfig,
    seeds: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """Per-token ``gamma`` ``(B, T)`` (float32) for a TRL rollout batch.

    Row ``i`` is probed unpadded: its prompt tokens where ``prompt_mask`` is 1
    (left padding dropped), then its completion tokens where
    ``completion_mask`` is 1; ``P`` is the prompt's length. ``gamma`` is 1 on
    padding and on rows without completion tokens (or with ``strategy="none"``,
    for which no probe runs). ``seeds[i]`` is row ``i``'s seed for the
    ``random`` strategy (default ``cfg.seed``).
    """
    bsz, tlen = completion_ids.shape
    gam = torch.ones(bsz, tlen, dtype=torch.float32, device=completion_ids.device)
    if cfg.strategy == "none":
        return gam
    was_training = model.training
    model.eval()
    try:
        for i in range(bsz):
            p_ids = prompt_ids[i][prompt_mask[i].bool()]
            c_keep = completion_mask[i].bool()
            c_ids = completion_ids[i][c_keep]
            n = int(c_ids.numel())
            if n == 0 or p_ids.numel() == 0:
                continue
            seq = torch.cat([p_ids, c_ids])
            s = probe(
                model,
                seq,
                int(p_ids.numel()),
                layers=cfg.layers,
                window=cfg.window,
                horizon=cfg.horizon,
                proximity=cfg.proximity,
                block_size=cfg.block_size,
                stats=True,
            )
            seed = cfg.seed if seeds is None else int(seeds[i])
            g = _gamma_from_binding(s, cfg, seed)
            if g.shape != (n,):
                raise RuntimeError(f"rhythm.gamma returned shape {g.shape} for a response of {n} tokens")
            # Completion tokens are a prefix of the row unless a mask zeroed them all.
            pos = torch.nonzero(c_keep, as_tuple=False)[:, 0]
            gam[i, pos] = torch.as_tensor(g, dtype=torch.float32, device=gam.device)
    finally:
        model.train(was_training)
    return gam


def shape_advantages(advantages: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``(B,)`` advantages and ``(B, T)`` ``gamma`` -> ``(B, T)``: ``gamma * A`` where ``A >= 0``, else ``A``."""
    if advantages.dim() != 1 or gamma.dim() != 2 or gamma.shape[0] != advantages.shape[0]:
        raise ValueError(
            f"advantages {tuple(advantages.shape)} / gamma {tuple(gamma.shape)}: expected (B,) and (B, T)"
        )
    a = advantages[:, None].to(gamma.dtype)
    return torch.where(a >= 0, gamma * a, a.expand_as(gamma)).to(advantages.dtype)


def _grpo_trainer_base() -> type:
    from trl import GRPOTrainer

    return GRPOTrainer


class RhythmGRPOTrainer(_grpo_trainer_base()):  # type: ignore[misc]
    """TRL ``GRPOTrainer`` with rhythm credit on its advantages (see the module docs).

    Args: those of ``GRPOTrainer``, plus ``rhythm``: a :class:`RhythmConfig`
    (default: coupled credit, SPEC defaults).
    """

    def __init__(self, *args: Any, rhythm: Optional[RhythmConfig] = None, **kwargs: Any) -> None:
        self.rhythm = rhythm if rhythm is not None else RhythmConfig()
        targs = kwargs.get("args")
        if targs is not None and getattr(targs, "use_liger_kernel", False):
            raise ValueError("RhythmGRPOTrainer: args.use_liger_kernel=True; expected False (Liger's loss takes (B,) advantages only)")
        super().__init__(*args, **kwargs)
        self._rhythm_step = 0

    def rhythm_row_seeds(self, rows: int) -> list[int]:
        """Seeds of this process's ``rows`` rows: ``mix(mix(seed, step), global row index)``."""
        first = self.accelerator.process_index * rows
        base = mix_seed(self.rhythm.seed & _MASK64, self._rhythm_step)
        return [mix_seed(base, first + i) for i in range(rows)]

    def apply_rhythm(self, output: dict[str, Any]) -> dict[str, Any]:
        """Replaces ``output["advantages"]`` ``(B,)`` by the rhythm-shaped ``(B, T)`` ones.

        ``output`` is what TRL's ``_generate_and_score_completions`` returned
        (this process's rows); the dict is returned with ``advantages`` replaced
        and ``rhythm_gamma`` ``(B, T)`` added.
        """
        adv = output["advantages"]
        if adv.dim() != 1:
            raise ValueError(f"advantages shape {tuple(adv.shape)}: expected TRL's (B,) advantages")
        model = self.accelerator.unwrap_model(self.model)
        mask = output["completion_mask"]
        gam = rhythm_gammas(
            model,
            output["prompt_ids"],
            output["prompt_mask"],
            output["completion_ids"],
            mask,
            self.rhythm,
            seeds=self.rhythm_row_seeds(adv.shape[0]),
        )
        output["advantages"] = shape_advantages(adv, gam)
        output["rhythm_gamma"] = gam
        self._log_gamma(gam, mask)
        return output

    def _log_gamma(self, gam: torch.Tensor, mask: torch.Tensor) -> None:
        m = mask.to(gam.dtype)
        local = torch.stack([(gam * m).sum(), ((gam > 1).to(gam.dtype) * m).sum(), m.sum()])
        tot = self.accelerator.gather(local[None]).sum(0)
        count = max(float(tot[2]), 1.0)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["rhythm/gamma_mean"].append(float(tot[0]) / count)
        self._metrics[mode]["rhythm/boosted_share"].append(float(tot[1]) / count)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        output = self.apply_rhythm(output)
        self._rhythm_step += 1
        return output
