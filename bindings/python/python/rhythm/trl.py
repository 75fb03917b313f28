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

from typing import Any, Optional

import torch

from .torch import _MASK64, RhythmConfig, mix_seed, rhythm_gammas, shape_advantages

__all__ = ["RhythmConfig", "RhythmGRPOTrainer", "mix_seed", "rhythm_gammas", "shape_advantages"]


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
        """Seeds of this process's ``rows`` rows for the ``random`` strategy.

        ``mix(mix(seed ^ 0x5EED, step), global row index)``, rhythm-rl's
        derivation, so a row's draw does not depend on the number of processes.
        """
        first = self.accelerator.process_index * rows
        base = mix_seed((self.rhythm.seed ^ 0x5EED) & _MASK64, self._rhythm_step)
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
