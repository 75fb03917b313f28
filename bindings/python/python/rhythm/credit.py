"""Per-token rhythm credit for RL batches, shared by :mod:`rhythm.trl` and :mod:`rhythm.verl`.

:class:`RhythmConfig` is the strategy, the probed layers and a
``rhythm.Params`` (every metric and credit setting, validated by the Rust
core when the config is built). :func:`rhythm_gammas` probes a padded rollout
batch in TRL's layout in one batched pass (:func:`rhythm.torch.probe_batch`)
and returns the ``(B, T)`` ``gamma``; :func:`shape_advantages` applies it
(``gamma * A`` where ``A >= 0``, SPEC section 8).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

import rhythm as _rhythm

from .torch import Layers, probe_batch, resolve_layers

__all__ = [
    "PARAM_FIELDS",
    "RhythmConfig",
    "STRATEGIES",
    "gamma_from_summary",
    "gammas_from_summaries",
    "mix_seed",
    "rhythm_gammas",
    "shape_advantages",
]

#: The strategy names (``rhythm.STRATEGIES``).
STRATEGIES: tuple[str, ...] = tuple(_rhythm.STRATEGIES)
#: The fields of ``rhythm.Params``, in SPEC order.
PARAM_FIELDS: tuple[str, ...] = tuple(_rhythm.Params.rl().to_dict())
_MASK64 = (1 << 64) - 1
#: Strategies whose gamma needs the attention probe.
_ATTENTION = tuple(str(s) for s in _rhythm.Strategy.all() if s.needs_attention)


def _strategy_name(strategy: Any) -> str:
    if isinstance(strategy, _rhythm.Strategy):
        return str(strategy)
    if isinstance(strategy, str) and strategy in STRATEGIES:
        return strategy
    raise ValueError(f"RhythmConfig.strategy {strategy!r}: expected one of {', '.join(STRATEGIES)} or a rhythm.Strategy")


def _layers_of(layers: Any) -> Union[str, list[int]]:
    if isinstance(layers, str):
        if layers in ("sampled", "all"):
            return layers
        try:
            layers = [int(x) for x in layers.split(",") if x.strip()]
        except ValueError:
            raise ValueError(
                f"RhythmConfig.layers {layers!r}: expected 'sampled', 'all' or layer indices (a list or '9,11,14')"
            ) from None
    try:
        out = sorted({int(x) for x in layers})
    except (TypeError, ValueError):
        raise ValueError(f"RhythmConfig.layers {layers!r}: expected 'sampled', 'all' or a list of layer indices") from None
    if not out or out[0] < 0 or any(isinstance(x, bool) for x in layers):
        raise ValueError(f"RhythmConfig.layers {layers!r}: expected non-negative layer indices (at least one)")
    return out


class RhythmConfig:
    """The rhythm settings of the GRPO integrations: strategy, probed layers, ``rhythm.Params``.

    ``RhythmConfig(strategy="coupled", layers="sampled", batch_size=None,
    params=None, **fields)``: ``strategy`` is a name or a ``rhythm.Strategy``;
    ``layers`` ``"sampled"`` (SPEC section 2), ``"all"``, a list of indices or
    ``"9,11,14"``; ``batch_size`` the rows per probe forward (``None``: the
    whole batch); ``fields`` any ``rhythm.Params`` field (window, horizon, q,
    head_ratio, receiver_ratio, proximity, k, gamma_amp, alpha, tau_waad,
    tau_delta, seed) laid over ``params`` (default ``rhythm.Params.rl()``, SPEC's
    RL defaults). Every value is validated here, with the core's ranges and
    messages; the layers are checked against the model when a trainer is built.
    The ``Params`` fields read as attributes (``cfg.window``).
    """

    __slots__ = ("strategy", "layers", "batch_size", "params")

    def __init__(
        self,
        strategy: Any = "coupled",
        *,
        layers: Layers = "sampled",
        batch_size: Optional[int] = None,
        params: Optional[Any] = None,
        **fields: Any,
    ) -> None:
        self.strategy = _strategy_name(strategy)
        self.layers = _layers_of(layers)
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"RhythmConfig.batch_size {batch_size!r}: expected an integer >= 1 or None")
        self.batch_size = batch_size
        bad = sorted(set(fields) - set(PARAM_FIELDS))
        if bad:
            raise TypeError(f"RhythmConfig got an unexpected keyword argument {bad[0]!r}, expected one of "
                            f"strategy, layers, batch_size, params, {', '.join(PARAM_FIELDS)}")
        base = _rhythm.Params.rl() if params is None else params
        if not isinstance(base, _rhythm.Params):
            raise TypeError(f"RhythmConfig.params {params!r}: expected a rhythm.Params")
        try:
            self.params = base.replace(**fields)
        except (ValueError, TypeError) as e:
            raise type(e)(f"RhythmConfig: {e}") from None

    def __getattr__(self, name: str) -> Any:
        if name in PARAM_FIELDS:
            return getattr(object.__getattribute__(self, "params"), name)
        raise AttributeError(f"'RhythmConfig' object has no attribute {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RhythmConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"RhythmConfig(strategy={self.strategy!r}, layers={self.layers!r}, batch_size={self.batch_size!r}, params={self.params!r})"

    def replace(self, **changes: Any) -> "RhythmConfig":
        """A copy with the given settings changed (validated)."""
        d = {"strategy": self.strategy, "layers": self.layers, "batch_size": self.batch_size, "params": self.params}
        d.update({k: changes.pop(k) for k in list(changes) if k in d})
        return RhythmConfig(**d, **changes)

    @property
    def needs_attention(self) -> bool:
        """Whether the strategy's ``gamma`` needs the attention probe."""
        return self.strategy in _ATTENTION

    def check_layers(self, num_layers: int) -> list[int]:
        """The probed layers for a model of ``num_layers`` layers (``ValueError`` when out of range)."""
        try:
            return resolve_layers(self.layers, num_layers)
        except ValueError as e:
            raise ValueError(f"RhythmConfig.{e}") from None

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for logs)."""
        return {"strategy": self.strategy, "layers": self.layers, "batch_size": self.batch_size, **self.params.to_dict()}


def mix_seed(a: int, b: int) -> int:
    """splitmix64 of ``(a, b)``: the seed rhythm-rl derives for a pair (``rhythm_train::mix``)."""
    z = (a * 0x9E3779B97F4A7C15 + b + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def row_seed(seed: int, step: int, row: int) -> int:
    """``mix(mix(seed ^ 0x5EED, step), row)``: rhythm-rl's seed of global row ``row`` at ``step``."""
    return mix_seed(mix_seed((seed ^ 0x5EED) & _MASK64, step), row)


def gamma_from_summary(
    summary: Optional[dict[str, Any]], cfg: RhythmConfig, seed: Optional[int] = None, n: Optional[int] = None,
    entropy: Optional[np.ndarray] = None,
) -> np.ndarray:
    """``gamma`` over one response: from its probe summary, or for ``none``/``random``/``entropy`` from ``n``.

    ``entropy``: the response tokens' entropies for the ``entropy`` strategy
    (default: the summary's).
    """
    params = cfg.params if seed is None else cfg.params.replace(seed=int(seed))
    if summary is not None:
        n = int(summary["seq_len"]) - int(summary["response_start"])
    if n is None:
        raise ValueError("gamma_from_summary: expected a summary or n")
    if cfg.strategy in ("none", "random"):
        g = _rhythm.gamma(cfg.strategy, n=n, params=params)
    elif cfg.strategy == "entropy":
        if entropy is None:
            if summary is None or "entropy" not in summary:
                raise ValueError("gamma_from_summary: the entropy strategy needs the response's entropies")
            entropy = np.asarray(summary["entropy"][int(summary["response_start"]):])
        g = _rhythm.gamma("entropy", n=n, entropy=np.asarray(entropy, dtype=np.float64), params=params)
    else:
        if summary is None:
            raise ValueError(f"gamma_from_summary: strategy {cfg.strategy} needs a probe summary")
        r = _rhythm.rhythm_from_summaries(summary, params=params)
        g = r.gamma(cfg.strategy, params=params)
    return np.asarray(g, dtype=np.float64)


def gammas_from_summaries(
    summaries: Sequence[Optional[dict[str, Any]]],
    completion_mask: torch.Tensor,
    cfg: RhythmConfig,
    seeds: Optional[Sequence[int]] = None,
    entropies: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``(B, T)`` float32 ``gamma`` from per-row summaries (``None`` rows and padding get 1).

    ``completion_mask`` ``(B, T)``: each row's completion tokens (a prefix);
    ``entropies`` ``(B, T)`` for the ``entropy`` strategy.
    """
    bsz, tlen = completion_mask.shape
    gam = torch.ones(bsz, tlen, dtype=torch.float32, device=completion_mask.device)
    if cfg.strategy == "none":
        return gam
    keep_all = completion_mask.bool()
    for i in range(bsz):
        keep = keep_all[i]
        n = int(keep.sum())
        if n == 0 or (cfg.needs_attention and summaries[i] is None):
            continue
        seed = None if seeds is None else int(seeds[i])
        ent = None if entropies is None else entropies[i][keep].double().cpu().numpy()
        g = gamma_from_summary(summaries[i] if cfg.needs_attention else None, cfg, seed, n=n, entropy=ent)
        if g.shape != (n,):
            raise RuntimeError(f"rhythm.gamma returned shape {g.shape} for a response of {n} tokens")
        pos = torch.nonzero(keep, as_tuple=False)[:, 0]
        gam[i, pos] = torch.as_tensor(g, dtype=torch.float32, device=gam.device)
    return gam


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
    """Per-token ``gamma`` ``(B, T)`` (float32) for a TRL rollout batch, in one batched probe.

    The batch is probed as TRL lays it out (``[prompt_ids | completion_ids]``
    with ``[prompt_mask | completion_mask]``: left-padded prompts,
    right-padded completions, the response from column ``P``), through
    ``model``'s own forward (pass the wrapped model under FSDP / ZeRO-3).
    ``gamma`` is 1 on padding and on rows without completion or prompt tokens
    (and everywhere with ``strategy="none"``, for which no probe runs).
    ``seeds[i]`` is row ``i``'s seed for the ``random`` strategy (default
    ``cfg.seed``).
    """
    bsz, tlen = completion_ids.shape
    cm = completion_mask.bool()
    if cfg.strategy == "none":
        return torch.ones(bsz, tlen, dtype=torch.float32, device=completion_ids.device)
    # Rows without a prompt token cannot be probed: they keep gamma 1.
    cm = cm & prompt_mask.bool().any(1, keepdim=True)
    summaries: list[Optional[dict[str, Any]]] = [None] * bsz
    entropies = None
    if cfg.strategy != "random":
        ids = torch.cat([prompt_ids, completion_ids], 1)
        mask = torch.cat([prompt_mask.bool(), cm], 1)
        rows = [i for i in range(bsz) if bool(cm[i].any())]
        if rows:
            out = probe_batch(
                model, ids[rows], prompt_ids.shape[1], mask[rows].long(), layers=cfg.layers, window=cfg.window,
                horizon=cfg.horizon, proximity=cfg.proximity, stats=cfg.strategy == "entropy",
                batch_size=cfg.batch_size,
            )
            for i, s in zip(rows, out):
                summaries[i] = s
            if cfg.strategy == "entropy":
                entropies = torch.zeros(bsz, tlen, dtype=torch.float64)
                for i, s in zip(rows, out):
                    if s is not None:
                        e = torch.as_tensor(s["entropy"][s["response_start"]:])
                        entropies[i, : e.shape[0]] = e
    return gammas_from_summaries(summaries, cm, cfg, seeds, entropies)


def shape_advantages(advantages: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``(B,)`` advantages and ``(B, T)`` ``gamma`` -> ``(B, T)``: ``gamma * A`` where ``A >= 0``, else ``A``."""
    if advantages.dim() != 1 or gamma.dim() != 2 or gamma.shape[0] != advantages.shape[0]:
        raise ValueError(
            f"advantages {tuple(advantages.shape)} / gamma {tuple(gamma.shape)}: expected (B,) and (B, T)"
        )
    a = advantages[:, None].to(gamma.dtype)
    return torch.where(a >= 0, gamma * a, a.expand_as(gamma)).to(advantages.dtype)
