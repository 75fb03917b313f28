"""Rhythm credit in TRL's GRPO: a ``GRPOTrainer`` whose advantages are per token.

>>> from rhythm.trl import RhythmGRPOConfig, RhythmGRPOTrainer     # doctest: +SKIP
>>> args = RhythmGRPOConfig(output_dir="out", rhythm_strategy="coupled")  # doctest: +SKIP
>>> trainer = RhythmGRPOTrainer(model=..., reward_funcs=..., args=args, train_dataset=...)  # doctest: +SKIP

The probe rides on a forward TRL makes anyway (no second pass):

- when TRL makes a no-grad pass of the current policy over the rollout batch
  (old log-probs: ``num_iterations > 1``, ``steps_per_generation`` not
  aligned with ``gradient_accumulation_steps``, or vLLM importance sampling),
  that pass is probed and ``gamma`` is known before the update;
- otherwise (TRL's default) the policy has not moved between generation and
  the loss of that batch, so the training forward of each micro-batch is
  probed and ``gamma`` shapes that micro-batch's advantages before the loss
  reads them. ``gamma`` is data, never a gradient path.

Either way the advantages become ``(B, T)``: ``gamma[t] * A`` where
``A >= 0``, ``A`` elsewhere (SPEC section 8), ``gamma`` 1 on padding. TRL's
loss takes ``(B, T)`` advantages as they are; its Liger-kernel path does not,
so ``use_liger_kernel`` must be ``False``. The ``random`` and ``entropy``
strategies need no attention; ``none`` leaves TRL untouched.

Settings: a :class:`RhythmConfig` (``rhythm=``), or the ``rhythm_*`` fields of
:class:`RhythmGRPOConfig`, which ``HfArgumentParser`` / ``TrlParser`` read
from the command line or YAML. Logged with TRL's metrics:
``rhythm/gamma_mean`` (mean ``gamma`` over completion tokens, all
processes), ``rhythm/boosted_share`` (share with ``gamma > 1``) and
``rhythm/probe_s`` (seconds this process spent on the probe's summaries and
``gamma``, beyond the forward TRL makes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from trl import GRPOConfig, GRPOTrainer

import rhythm as _rhythm

from .credit import (
    PARAM_FIELDS,
    RhythmConfig,
    gammas_from_summaries,
    mix_seed,
    rhythm_gammas,
    row_seed,
    shape_advantages,
)
from .torch import _num_layers, probing, unwrap

__all__ = ["RhythmConfig", "RhythmGRPOConfig", "RhythmGRPOTrainer", "mix_seed", "rhythm_gammas", "shape_advantages"]

_D = _rhythm.Params.rl().to_dict()


def _horizon_text(h: tuple[int, Optional[int]]) -> str:
    return f"{h[0]}:{'' if h[1] is None else h[1]}"


def _horizon_of(text: Any) -> tuple[int, Optional[int]]:
    if isinstance(text, (tuple, list)):
        return (text[0], text[1])
    lo, sep, hi = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        return int(lo), (None if hi.strip() == "" else int(hi))
    except ValueError:
        raise ValueError(f"rhythm_horizon {text!r}: expected 'lo:hi' or 'lo:' (to the end), e.g. '10:50'") from None


def _help(text: str) -> dict[str, Any]:
    return {"help": text}


@dataclass
class RhythmGRPOConfig(GRPOConfig):
    """TRL's ``GRPOConfig`` with the rhythm settings as ``rhythm_*`` fields (defaults: ``rhythm.Params.rl()``).

    Every field is validated when the config is built, with the core's ranges
    and messages; :meth:`rhythm_config` gives the :class:`RhythmConfig`.
    """

    rhythm_strategy: str = field(default="coupled", metadata=_help(
        "Credit strategy: none, local, global, coupled, random, entropy, local-bottom, global-bottom, coupled-bottom."))
    rhythm_layers: str = field(default="sampled", metadata=_help(
        "Probed layers: 'sampled' (SPEC section 2), 'all' or indices '9,11,14'."))
    rhythm_batch_size: Optional[int] = field(default=None, metadata=_help(
        "Rows per probe forward where rhythm runs its own pass (None: the whole batch)."))
    rhythm_window: int = field(default=_D["window"], metadata=_help("WAAD window W."))
    rhythm_horizon: str = field(default=_horizon_text(_D["horizon"]), metadata=_help(
        "FAI horizon 'lo:hi' ('lo:' to the end of the response)."))
    rhythm_q: float = field(default=_D["q"], metadata=_help("Fraction q of response tokens selected."))
    rhythm_head_ratio: float = field(default=_D["head_ratio"], metadata=_help("Head ratio rho of the local/global groups."))
    rhythm_receiver_ratio: float = field(default=_D["receiver_ratio"], metadata=_help("Share of heads taken as receiver heads."))
    rhythm_proximity: int = field(default=_D["proximity"], metadata=_help("Receiver-head proximity p."))
    rhythm_k: int = field(default=_D["k"], metadata=_help("Neighbourhood k of locally dominated anchors."))
    rhythm_gamma_amp: float = field(default=_D["gamma_amp"], metadata=_help("Selected tokens get up to gamma_amp times their advantage."))
    rhythm_alpha: float = field(default=_D["alpha"], metadata=_help("alpha of the coupled strategy."))
    rhythm_tau_waad: Optional[float] = field(default=_D["tau_waad"], metadata=_help("tau_waad (None: the median over the response)."))
    rhythm_tau_delta: Optional[float] = field(default=_D["tau_delta"], metadata=_help("tau_delta (None: the median over the response)."))
    rhythm_seed: int = field(default=_D["seed"], metadata=_help("Seed of the random strategy (mixed with the step and the global row)."))

    def __post_init__(self) -> None:
        if isinstance(self.rhythm_strategy, _rhythm.Strategy):
            self.rhythm_strategy = str(self.rhythm_strategy)
        if isinstance(self.rhythm_layers, (list, tuple)):
            self.rhythm_layers = ",".join(str(int(x)) for x in self.rhythm_layers)
        if isinstance(self.rhythm_horizon, (tuple, list)):
            self.rhythm_horizon = _horizon_text(_horizon_of(self.rhythm_horizon))
        self.rhythm_config()  # validates every rhythm field before anything loads
        super().__post_init__()

    def rhythm_config(self) -> RhythmConfig:
        """The :class:`RhythmConfig` of the ``rhythm_*`` fields."""
        fields = {k: getattr(self, f"rhythm_{k}") for k in PARAM_FIELDS}
        fields["horizon"] = _horizon_of(self.rhythm_horizon)
        return RhythmConfig(self.rhythm_strategy, layers=self.rhythm_layers, batch_size=self.rhythm_batch_size, **fields)


class RhythmGRPOTrainer(GRPOTrainer):
    """TRL ``GRPOTrainer`` with rhythm credit on its advantages (see the module docs).

    Args: those of ``GRPOTrainer``, plus ``rhythm``: a :class:`RhythmConfig`
    (default: ``args.rhythm_config()`` for a :class:`RhythmGRPOConfig`, else
    coupled credit with SPEC's RL defaults). The probed layers are checked
    against the model here, before any rollout.
    """

    def __init__(self, *args: Any, rhythm: Optional[RhythmConfig] = None, **kwargs: Any) -> None:
        targs = kwargs.get("args", args[2] if len(args) > 2 else None)
        if rhythm is None:
            rhythm = targs.rhythm_config() if isinstance(targs, RhythmGRPOConfig) else RhythmConfig()
        elif not isinstance(rhythm, RhythmConfig):
            raise TypeError(f"RhythmGRPOTrainer: rhythm={rhythm!r}; expected a rhythm.trl.RhythmConfig")
        self.rhythm = rhythm
        if targs is not None and getattr(targs, "use_liger_kernel", False) and rhythm.strategy != "none":
            raise ValueError("RhythmGRPOTrainer: args.use_liger_kernel=True; expected False (Liger's loss takes (B,) advantages only)")
        super().__init__(*args, **kwargs)
        self.rhythm_layers = rhythm.check_layers(_num_layers(unwrap(self.model)))
        self._rhythm_step = 0
        self._rhythm_arm: Optional[dict[str, Any]] = None

    # -- seeds and the explicit path -------------------------------------------------

    def rhythm_row_seeds(self, rows: int, step: Optional[int] = None, first: Optional[int] = None) -> list[int]:
        """Seeds of this process's ``rows`` rows for the ``random`` strategy.

        ``mix(mix(seed ^ 0x5EED, step), global row index)``, rhythm-rl's
        derivation, so a row's draw does not depend on the number of processes.
        """
        step = self._rhythm_step if step is None else step
        first = self.accelerator.process_index * rows if first is None else first
        return [row_seed(self.rhythm.seed, step, first + i) for i in range(rows)]

    def apply_rhythm(self, output: dict[str, Any]) -> dict[str, Any]:
        """Shapes ``output["advantages"]`` with a batched probe pass of its own (a second forward).

        For callers outside the training loop; the trainer itself rides on
        TRL's forward. ``output`` is what ``_generate_and_score_completions``
        returned (``(B,)`` advantages); returns it with ``(B, T)`` advantages
        and ``rhythm_gamma``.
        """
        adv = output["advantages"]
        if adv.dim() != 1:
            raise ValueError(f"advantages shape {tuple(adv.shape)}: expected TRL's (B,) advantages")
        t0 = time.perf_counter()
        gam = rhythm_gammas(self.model, output["prompt_ids"], output["prompt_mask"], output["completion_ids"],
                            output["completion_mask"], self.rhythm, seeds=self.rhythm_row_seeds(adv.shape[0]))
        self._rhythm_set(output, gam, time.perf_counter() - t0)
        return output

    def _rhythm_set(self, batch: dict[str, Any], gam: torch.Tensor, seconds: float) -> None:
        """Replaces ``batch["advantages"]`` by the shaped ``(B, T)`` ones and logs."""
        batch["advantages"] = shape_advantages(batch["advantages"], gam.to(batch["advantages"].device))
        batch["rhythm_gamma"] = gam
        mask = batch["completion_mask"]
        m = mask.to(gam.dtype)
        local = torch.stack([(gam * m).sum(), ((gam > 1).to(gam.dtype) * m).sum(), m.sum()]).to(mask.device)
        tot = self.accelerator.gather(local[None]).sum(0)
        count = max(float(tot[2]), 1.0)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["rhythm/gamma_mean"].append(float(tot[0]) / count)
        self._metrics[mode]["rhythm/boosted_share"].append(float(tot[1]) / count)
        self._metrics[mode]["rhythm/probe_s"].append(seconds)

    # -- riding on TRL's forwards ----------------------------------------------------

    def _trl_makes_policy_pass(self) -> bool:
        """Whether TRL's ``_generate_and_score_completions`` makes a no-grad pass of the policy (old log-probs)."""
        every = self.args.steps_per_generation * self.num_iterations
        vllm_is = getattr(self, "use_vllm", False) and getattr(self, "vllm_importance_sampling_correction", False)
        return self.args.gradient_accumulation_steps % every != 0 or bool(vllm_is)

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        arm = self._rhythm_arm
        if arm is None or "summaries" in arm or unwrap(model) is not unwrap(self.model):
            return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        cfg = self.rhythm
        if cfg.strategy == "entropy":
            kwargs["compute_entropy"] = True
        summaries = None
        if cfg.needs_attention:
            with probing(model, response_tail=logits_to_keep, layers=self.rhythm_layers, window=cfg.window,
                         horizon=cfg.horizon, proximity=cfg.proximity) as pr:
                out = super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
            summaries, seconds = pr.summaries(), pr.seconds
        else:
            out = super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
            seconds = 0.0
        arm.update(summaries=summaries, entropies=out[1], seconds=seconds)
        batch = arm.get("loss_inputs")
        if batch is not None:  # the training forward: shape this micro-batch before the loss reads it
            t0 = time.perf_counter()
            seeds = [row_seed(cfg.seed, int(s), int(r)) for s, r in zip(batch["rhythm_step"], batch["rhythm_row"])]
            gam = gammas_from_summaries(summaries or [None] * len(seeds), self._completion_mask(batch), cfg, seeds,
                                        None if out[1] is None else out[1].detach())
            self._rhythm_set(batch, gam, seconds + time.perf_counter() - t0)
        return out

    @staticmethod
    def _completion_mask(batch: dict[str, Any]) -> torch.Tensor:
        m = batch["completion_mask"].bool()
        return m & batch["prompt_mask"].bool().any(1, keepdim=True)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        cfg = self.rhythm
        step = self._rhythm_step
        arm: Optional[dict[str, Any]] = {} if cfg.strategy != "none" and self._trl_makes_policy_pass() else None
        self._rhythm_arm = arm
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self._rhythm_arm = None
        self._rhythm_step += 1
        if cfg.strategy == "none":
            return output
        bsz = output["completion_ids"].shape[0]
        first = self.accelerator.process_index * bsz
        if arm is not None and "summaries" in arm or cfg.strategy == "random":
            t0 = time.perf_counter()
            seeds = self.rhythm_row_seeds(bsz, step, first)
            ent = None if arm is None or arm.get("entropies") is None else arm["entropies"].detach()
            gam = gammas_from_summaries((arm or {}).get("summaries") or [None] * bsz, self._completion_mask(output),
                                        cfg, seeds, ent)
            self._rhythm_set(output, gam, (arm or {}).get("seconds", 0.0) + time.perf_counter() - t0)
        else:  # gamma comes from each micro-batch's training forward (see _compute_loss)
            dev = output["completion_ids"].device
            output["rhythm_row"] = torch.arange(first, first + bsz, device=dev)
            output["rhythm_step"] = torch.full((bsz,), step, dtype=torch.long, device=dev)
        return output

    def _compute_loss(self, model, inputs):
        if "rhythm_row" in inputs and "rhythm_gamma" not in inputs:
            self._rhythm_arm = {"loss_inputs": inputs}
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._rhythm_arm = None

