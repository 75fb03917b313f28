"""Rhythm credit in veRL: wrap ``compute_advantage`` and scale nonnegative token advantages.

veRL's GRPO advantages are already per token, ``[bs, response_length]``, made
on the driver by ``verl.trainer.ppo.ray_trainer.compute_advantage``. The hook:

1. somewhere the current policy lives (the actor's no-grad ``compute_log_prob``
   pass, or a local copy of the policy), compute ``gamma`` for the batch with
   :func:`compute_rhythm_gamma` and store it as ``batch["rhythm_gamma"]``;
2. :func:`install` wraps ``compute_advantage`` so that afterwards
   ``advantages *= where(advantages >= 0, gamma, 1)`` (SPEC section 8).

Nothing here imports veRL except :func:`install`; the functions work on any
object with a ``.batch`` mapping of tensors (a ``DataProto`` or a dict) with
veRL's keys ``prompts`` ``[bs, P]`` (left-padded), ``responses`` ``[bs, R]``,
``attention_mask`` ``[bs, P + R]`` and optionally ``response_mask``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import torch

from .torch import _MASK64, RhythmConfig, mix_seed, rhythm_gammas

__all__ = ["GAMMA_KEY", "apply_gamma", "compute_rhythm_gamma", "install", "wrap_compute_advantage"]

#: The batch key the hook reads ``gamma`` from.
GAMMA_KEY = "rhythm_gamma"


def _batch(data: Any) -> Any:
    return data.batch if hasattr(data, "batch") else data


def apply_gamma(advantages: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``advantages * where(advantages >= 0, gamma, 1)`` for ``[bs, R]`` tensors."""
    if advantages.shape != gamma.shape:
        raise ValueError(
            f"advantages {tuple(advantages.shape)} / gamma {tuple(gamma.shape)}: expected the same [bs, response_length]"
        )
    g = gamma.to(device=advantages.device, dtype=advantages.dtype)
    return advantages * torch.where(advantages >= 0, g, torch.ones_like(g))


@torch.no_grad()
def compute_rhythm_gamma(
    model: torch.nn.Module, data: Any, cfg: Optional[RhythmConfig] = None, step: int = 0
) -> torch.Tensor:
    """Probes ``model`` over each row of a veRL batch and stores ``gamma`` as ``batch["rhythm_gamma"]``.

    Returns the ``[bs, response_length]`` float32 ``gamma`` (1 on padding).
    Row ``i``'s seed for the ``random`` strategy is
    ``mix(mix(cfg.seed ^ 0x5EED, step), i)``, as in rhythm-rl.
    """
    cfg = cfg if cfg is not None else RhythmConfig()
    b = _batch(data)
    prompts, responses, attn = b["prompts"], b["responses"], b["attention_mask"]
    plen = prompts.shape[1]
    if attn.shape[1] != plen + responses.shape[1]:
        raise ValueError(
            f"attention_mask width {attn.shape[1]}: expected prompts {plen} + responses {responses.shape[1]}"
        )
    resp_mask = b["response_mask"] if "response_mask" in b.keys() else attn[:, plen:]
    base = mix_seed((cfg.seed ^ 0x5EED) & _MASK64, step)
    seeds = [mix_seed(base, i) for i in range(prompts.shape[0])]
    gam = rhythm_gammas(model, prompts, attn[:, :plen], responses, resp_mask, cfg, seeds=seeds)
    b[GAMMA_KEY] = gam
    return gam


def wrap_compute_advantage(fn: Callable[..., Any], gamma_key: str = GAMMA_KEY) -> Callable[..., Any]:
    """``fn`` (veRL's ``compute_advantage(data, ...)``) followed by :func:`apply_gamma`.

    Rows without ``gamma_key`` in the batch are left as ``fn`` made them.
    """

    @functools.wraps(fn)
    def wrapped(data: Any, *args: Any, **kwargs: Any) -> Any:
        out = fn(data, *args, **kwargs)
        b = _batch(out)
        if gamma_key in b.keys():
            b["advantages"] = apply_gamma(b["advantages"], b[gamma_key])
        return out

    wrapped.__rhythm_wrapped__ = True  # type: ignore[attr-defined]
    return wrapped


def install(gamma_key: str = GAMMA_KEY, module: Optional[Any] = None) -> None:
    """Wraps ``compute_advantage`` in ``verl.trainer.ppo.ray_trainer`` (or ``module``), once."""
    if module is None:
        import verl.trainer.ppo.ray_trainer as module  # noqa: PLC0415
    fn = module.compute_advantage
    if not getattr(fn, "__rhythm_wrapped__", False):
        module.compute_advantage = wrap_compute_advantage(fn, gamma_key)
