"""The streamed attention probe for transformers causal LMs (SPEC sections 2-6).

One forward pass over prompt + response gives, for every head of the probed
layers, the per-head sums that every rhythm metric is linear in (the
``HeadSummary`` of rhythm-core), plus each token's entropy and log-probability:

>>> from transformers import AutoModelForCausalLM
>>> from rhythm.torch import probe
>>> model = AutoModelForCausalLM.from_pretrained("models/countdown-tiny")
>>> s = probe(model, ids, response_start=P)          # doctest: +SKIP
>>> s["waad"].shape                                   # doctest: +SKIP
(layers, heads, N - P)

No ``N x N`` attention map is ever held. The probe registers an attention
function (``"rhythm_probe"``) with transformers' ``AttentionInterface`` (and
the SDPA mask with ``AttentionMaskInterface``) that computes attention in
blocks of query rows, exactly as eager attention does row by row, so the
model's output is eager's; for the probed layers it reduces each block's
probabilities (float32, even for bf16/f16 models) to the summaries in float64.
The logits are never materialised as an ``N x vocab`` tensor: the final hidden
states go through the LM head in blocks of rows.

The model is switched to ``"rhythm_probe"`` for the pass and switched back
afterwards. The attention function may also be selected for ordinary use
(``attn_implementation="rhythm_probe"``); outside :func:`probe` it only
computes attention, in blocks.

For RL batches, :func:`rhythm_gammas` probes each row of a padded rollout
batch and returns the per-token ``gamma`` of a :class:`RhythmConfig`'s
strategy (computed by the Rust binding), and :func:`shape_advantages` applies
it (``gamma * A`` where ``A >= 0``); :mod:`rhythm.trl` and :mod:`rhythm.verl`
build on these.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "ATTN_IMPLEMENTATION",
    "RhythmConfig",
    "binding_params",
    "gamma_from_summary",
    "mix_seed",
    "rhythm_gammas",
    "shape_advantages",
    "probe",
    "probe_batch",
    "register",
    "resolve_layers",
    "sampled_layers",
    "token_stats",
]

#: The name the probe's attention function and mask are registered under.
ATTN_IMPLEMENTATION = "rhythm_probe"

#: Bytes of float32 scores one query block may hold (all heads together).
_BLOCK_BYTES = 64 * 1024 * 1024

_registered = False
_state = threading.local()

Layers = Union[str, Sequence[int]]


def sampled_layers(num_layers: int) -> list[int]:
    """The sampled layers of SPEC section 2 for a model of ``num_layers`` layers.

    ``lo = L // 3``, ``hi = 2L // 3``, layers ``lo + round_half_up(i (hi - lo) / 4)``
    for ``i = 0..4``, de-duplicated, ascending (36 layers: 12, 15, 18, 21, 24).
    """
    if num_layers < 1:
        raise ValueError(f"num_layers {num_layers}: expected at least 1")
    lo, hi = num_layers // 3, 2 * num_layers // 3
    # round_half_up(i*d/4) = floor((i*d + 2) / 4), exact in integers.
    return sorted({lo + (i * (hi - lo) + 2) // 4 for i in range(5)})


def resolve_layers(layers: Layers, num_layers: int) -> list[int]:
    """``"sampled"``, ``"all"`` or a list of layer indices, as a sorted list.

    Raises ``ValueError`` naming the bad value when a layer is out of range.
    """
    if isinstance(layers, str):
        if layers == "sampled":
            return sampled_layers(num_layers)
        if layers == "all":
            return list(range(num_layers))
        raise ValueError(f"layers {layers!r}: expected 'sampled', 'all' or a list of layer indices")
    out = sorted({int(x) for x in layers})
    if not out:
        raise ValueError("layers []: expected at least one layer index")
    bad = [x for x in out if not 0 <= x < num_layers]
    if bad:
        raise ValueError(f"layers {bad}: the model has {num_layers} layers (expected 0..{num_layers - 1})")
    return out


@dataclass
class _Collector:
    """Per-head accumulators of one probe pass (float64, on the model's device)."""

    response_start: int
    seq_len: int
    window: int
    horizon: tuple[int, Optional[int]]
    proximity: int
    layers: list[int]
    block_size: Optional[int]
    span_num: dict[int, torch.Tensor] = field(default_factory=dict)
    waad: dict[int, torch.Tensor] = field(default_factory=dict)
    fai_sum: dict[int, torch.Tensor] = field(default_factory=dict)
    vert_sum: dict[int, torch.Tensor] = field(default_factory=dict)

    def add_block(self, layer: int, t0: int, probs: torch.Tensor) -> None:
        """Adds query rows ``t0 .. t0 + rows`` of layer ``layer``.

        ``probs``: float32 ``[heads, rows, cols]``, row ``i`` the distribution of
        token ``t0 + i`` over columns ``0..cols`` (zeros past the diagonal).
        """
        p0, n = self.response_start, self.seq_len - self.response_start
        heads, rows, cols = probs.shape
        if t0 + rows <= p0:
            return
        if t0 < p0:  # drop prompt rows
            probs = probs[:, p0 - t0 :, :]
            t0, rows = p0, rows - (p0 - t0)
        dev = probs.device
        if layer not in self.span_num:
            self.span_num[layer] = torch.zeros(heads, dtype=torch.float64, device=dev)
            for acc in (self.waad, self.fai_sum, self.vert_sum):
                acc[layer] = torch.zeros(heads, n, dtype=torch.float64, device=dev)
        t = torch.arange(t0, t0 + rows, device=dev)
        s = torch.arange(cols, device=dev)
        dist = t[:, None] - s[None, :]  # [rows, cols], negative above the diagonal
        dist_f = dist.clamp(min=0).to(torch.float32)
        # Span numerator and WAAD: row sums weighted by t - s and min(t - s, W).
        span_rows = (probs * dist_f).sum(-1, dtype=torch.float64)  # [heads, rows]
        self.span_num[layer] += span_rows.sum(-1)
        waad_rows = (probs * dist_f.clamp(max=float(self.window))).sum(-1, dtype=torch.float64)
        self.waad[layer][:, t0 - p0 : t0 - p0 + rows] = waad_rows
        # Column sums over the response columns only.
        if cols <= p0:
            return
        resp = probs[:, :, p0:]
        d_resp = dist[:, p0:]
        lo, hi = self.horizon
        band = d_resp >= lo
        if hi is not None:
            band &= d_resp <= hi
        c1 = cols - p0
        self.fai_sum[layer][:, :c1] += (resp * band.to(torch.float32)).sum(-2, dtype=torch.float64)
        vert = (d_resp >= self.proximity).to(torch.float32)
        self.vert_sum[layer][:, :c1] += (resp * vert).sum(-2, dtype=torch.float64)


def _active() -> Optional[_Collector]:
    return getattr(_state, "collector", None)


@contextlib.contextmanager
def _collecting(c: _Collector) -> Iterator[_Collector]:
    prev = _active()
    _state.collector = c
    try:
        yield c
    finally:
        _state.collector = prev


def _block_rows(heads: int, cols: int, requested: Optional[int]) -> int:
    if requested is not None:
        return max(1, int(requested))
    return max(16, _BLOCK_BYTES // max(1, 4 * heads * cols))


def rhythm_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Eager attention computed in blocks of query rows (the registered function).

    ``query`` ``[B, Hq, T, D]``, ``key``/``value`` ``[B, Hkv, S, D]``; returns
    ``([B, T, Hq, D], None)``. Each block's scores are ``q k^T * scaling`` in the
    model's dtype, masked (the given mask, or causal when it is ``None``),
    softmaxed in float32 and cast back before multiplying ``value``, as eager
    attention does. During :func:`probe`, the float32 probabilities of the
    probed layers feed the summaries.
    """
    bsz, hq, tq, dim = query.shape
    skv = key.shape[-2]
    groups = hq // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    offset = skv - tq  # absolute position of query row 0
    col = _active()
    layer = getattr(module, "layer_idx", None)
    collect = col is not None and layer in col.layers
    if collect and (bsz != 1 or offset != 0):
        raise ValueError(
            f"rhythm probe: layer {layer} got batch {bsz} with {offset} cached positions; expected one sequence, no cache"
        )
    rows = _block_rows(hq, skv, col.block_size if col is not None else None)
    out = torch.empty(bsz, hq, tq, dim, dtype=value.dtype, device=value.device)
    for r0 in range(0, tq, rows):
        r1 = min(tq, r0 + rows)
        c1 = min(skv, offset + r1)  # causal: later columns are masked anyway
        scores = torch.matmul(query[:, :, r0:r1], key[:, :, :c1].transpose(2, 3)) * scaling
        if attention_mask is None:
            t = torch.arange(offset + r0, offset + r1, device=query.device)
            allowed = t[:, None] >= torch.arange(c1, device=query.device)[None, :]
            scores = scores.float().masked_fill(~allowed, -math.inf)
        else:
            m = attention_mask[:, :, r0:r1, :c1]
            if m.dtype == torch.bool:
                scores = scores.float().masked_fill(~m, -math.inf)
            else:
                scores = scores + m
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        if attention_mask is not None:
            # A fully masked row (padding) gives NaN from -inf everywhere: make it 0.
            probs = torch.nan_to_num(probs, nan=0.0)
        if collect:
            col.add_block(layer, offset + r0, probs[0])
        p = probs.to(value.dtype)
        if dropout > 0.0 and module.training:
            p = torch.nn.functional.dropout(p, p=dropout, training=True)
        out[:, :, r0:r1] = torch.matmul(p, value[:, :, :c1])
        del scores, probs, p
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Registers the probe's attention function and mask with transformers (idempotent).

    Returns the implementation name, ``"rhythm_probe"``.
    """
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(ATTN_IMPLEMENTATION, rhythm_attention)
        AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
        _registered = True
    return ATTN_IMPLEMENTATION


@contextlib.contextmanager
def _attn_implementation(model: torch.nn.Module, name: str) -> Iterator[None]:
    prev = getattr(model.config, "_attn_implementation", None)
    if prev == name:
        yield
        return
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        if prev is not None:
            model.set_attn_implementation(prev)


def _num_layers(model: torch.nn.Module) -> int:
    cfg = model.config
    n = getattr(cfg, "num_hidden_layers", None)
    if n is None and hasattr(cfg, "get_text_config"):
        n = getattr(cfg.get_text_config(), "num_hidden_layers", None)
    if n is None:
        raise ValueError("model config has no num_hidden_layers")
    return int(n)


def _as_ids(input_ids: Any, device: torch.device) -> torch.Tensor:
    ids = torch.as_tensor(input_ids)
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1:
        raise ValueError(f"input_ids shape {tuple(ids.shape)}: expected one sequence [N] or [1, N]")
    if ids.numel() == 0:
        raise ValueError("input_ids is empty: expected at least one token")
    if ids.dtype.is_floating_point:
        raise ValueError(f"input_ids dtype {ids.dtype}: expected integer token ids")
    return ids.to(device=device, dtype=torch.long)


def token_stats(
    model: torch.nn.Module, hidden: torch.Tensor, ids: torch.Tensor, block_rows: Optional[int] = None
) -> tuple[np.ndarray, np.ndarray]:
    """Entropy ``H[t]`` and ``log p(ids[t])`` from final hidden states, in row blocks.

    ``hidden`` ``[N, hidden]`` are the decoder's final (normed) states; row
    ``t - 1`` predicts token ``t``. Entry 0 of both outputs is 0. The LM head
    runs on ``block_rows`` rows at a time (default: about 64 MiB of float32
    logits per block) with a float32 softmax, so no ``N x vocab`` tensor is
    held.
    """
    head = model.get_output_embeddings()
    if block_rows is None:
        block_rows = max(1, _BLOCK_BYTES // (4 * int(head.weight.shape[0])))
    cap = getattr(model.config, "final_logit_softcapping", None)
    n = ids.shape[0]
    ent = torch.zeros(n, dtype=torch.float64, device=hidden.device)
    lp = torch.zeros(n, dtype=torch.float64, device=hidden.device)
    for r0 in range(0, n - 1, block_rows):
        r1 = min(n - 1, r0 + block_rows)
        logits = head(hidden[r0:r1]).float()
        if cap:  # Gemma-style soft-capping, as the model's own forward applies it
            logits = torch.tanh(logits / cap) * cap
        logp = torch.log_softmax(logits, dim=-1)
        ent[r0 + 1 : r1 + 1] = -(logp.exp() * logp).sum(-1).double()
        lp[r0 + 1 : r1 + 1] = logp.gather(-1, ids[r0 + 1 : r1 + 1, None])[:, 0].double()
        del logits, logp
    return ent.cpu().numpy(), lp.cpu().numpy()


def _decoder(model: torch.nn.Module) -> torch.nn.Module:
    if hasattr(model, "get_decoder"):
        dec = model.get_decoder()
        if dec is not None:
            return dec
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    if base is None:
        raise ValueError(f"{type(model).__name__}: cannot find the decoder (expected model.model)")
    return base


@torch.no_grad()
def probe(
    model: torch.nn.Module,
    input_ids: Any,
    response_start: int,
    *,
    layers: Layers = "sampled",
    window: int = 10,
    horizon: tuple[int, Optional[int]] = (10, 50),
    proximity: int = 4,
    block_size: Optional[int] = None,
    lm_block: Optional[int] = None,
    stats: bool = True,
) -> dict[str, Any]:
    """One streamed forward pass over one sequence (prompt + response).

    Args:
        model: a transformers causal LM using the attention interface (Qwen3,
            Qwen2, Llama, ...), on any device, any dtype.
        input_ids: token ids ``[N]`` or ``[1, N]`` (prompt then response).
        response_start: ``P``, the first response position (``1 <= P < N``).
        layers: ``"sampled"`` (SPEC section 2), ``"all"`` or layer indices.
        window: WAAD window ``W``.
        horizon: FAI horizon ``(lo, hi)``; ``hi=None`` means to the end.
        proximity: receiver-head proximity ``p``.
        block_size: query rows per attention block (default: about 64 MiB of
            float32 scores per block).
        lm_block: rows per LM-head block for entropies/log-probabilities
            (default: about 64 MiB of float32 logits per block).
        stats: also compute ``entropy`` and ``logprobs``.

    Returns:
        The summary dict of the binding's contract: ``response_start``,
        ``seq_len``, ``window``, ``horizon``, ``proximity``, ``layers``,
        ``span_num`` ``[L, H]``, ``waad``/``fai_sum``/``vert_sum`` ``[L, H, n]``
        (float64 numpy), and with ``stats`` ``entropy``/``logprobs`` ``[N]``.
    """
    register()
    device = next(model.parameters()).device
    ids = _as_ids(input_ids, device)
    n_tok = int(ids.shape[0])
    if not 1 <= int(response_start) < n_tok:
        raise ValueError(
            f"response_start {response_start}: expected 1 <= P < N = {n_tok} (a non-empty response after a prompt)"
        )
    lo, hi = horizon
    if lo < 0 or (hi is not None and hi < lo):
        raise ValueError(f"horizon {horizon}: expected 0 <= lo <= hi (hi None for 'to the end')")
    if window < 0 or proximity < 0:
        raise ValueError(f"window {window} / proximity {proximity}: expected non-negative integers")
    num_layers = _num_layers(model)
    sel = resolve_layers(layers, num_layers)
    col = _Collector(
        response_start=int(response_start),
        seq_len=n_tok,
        window=int(window),
        horizon=(int(lo), None if hi is None else int(hi)),
        proximity=int(proximity),
        layers=sel,
        block_size=block_size,
    )
    with _attn_implementation(model, ATTN_IMPLEMENTATION), _collecting(col):
        out = _decoder(model)(input_ids=ids[None], use_cache=False)
    missing = [l for l in sel if l not in col.span_num]
    if missing:
        raise RuntimeError(
            f"rhythm probe: layers {missing} never called the attention interface "
            f"({type(model).__name__} may not support custom attention functions)"
        )
    res: dict[str, Any] = {
        "response_start": col.response_start,
        "seq_len": n_tok,
        "window": col.window,
        "horizon": col.horizon,
        "proximity": col.proximity,
        "layers": sel,
        "span_num": torch.stack([col.span_num[l] for l in sel]).cpu().numpy(),
        "waad": torch.stack([col.waad[l] for l in sel]).cpu().numpy(),
        "fai_sum": torch.stack([col.fai_sum[l] for l in sel]).cpu().numpy(),
        "vert_sum": torch.stack([col.vert_sum[l] for l in sel]).cpu().numpy(),
    }
    if stats:
        hidden = out.last_hidden_state[0]
        res["entropy"], res["logprobs"] = token_stats(model, hidden, ids, lm_block)
    return res


def probe_batch(
    model: torch.nn.Module,
    sequences: Sequence[Any],
    response_starts: Sequence[int],
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """:func:`probe` over several sequences, one pass each (no padding).

    ``sequences`` are unpadded id lists or tensors, ``response_starts`` their
    ``P``; keyword arguments go to :func:`probe`.
    """
    if len(sequences) != len(response_starts):
        raise ValueError(
            f"{len(sequences)} sequences but {len(response_starts)} response_starts: expected one P per sequence"
        )
    return [probe(model, s, p, **kwargs) for s, p in zip(sequences, response_starts)]


# ---------------------------------------------------------------------------
# Per-token gamma for RL batches (shared by rhythm.trl and rhythm.verl).

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
    """splitmix64 of ``(a, b)``: the seed rhythm-rl derives for a pair (``rhythm_train::mix``)."""
    z = (a * 0x9E3779B97F4A7C15 + b + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def binding_params(cfg: RhythmConfig, seed: Optional[int] = None) -> Any:
    """The binding's ``rhythm.Params`` for ``cfg`` (``seed`` overrides ``cfg.seed``)."""
    import rhythm

    return rhythm.Params(
        window=cfg.window,
        horizon=cfg.horizon,
        q=cfg.q,
        head_ratio=cfg.head_ratio,
        proximity=cfg.proximity,
        k=cfg.k,
        gamma_amp=cfg.gamma_amp,
        alpha=cfg.alpha,
        tau_waad=cfg.tau_waad,
        tau_delta=cfg.tau_delta,
        seed=cfg.seed if seed is None else seed,
    )


def gamma_from_summary(summary: dict[str, Any], cfg: RhythmConfig, seed: Optional[int] = None) -> np.ndarray:
    """``gamma`` over the response of one probed sequence (:func:`probe`'s dict), from the binding.

    The rhythm comes from ``rhythm.rhythm_from_summaries``; the ``entropy``
    strategy uses the summary's entropies of the response tokens.
    """
    import rhythm

    params = binding_params(cfg, seed)
    p, n_tok = int(summary["response_start"]), int(summary["seq_len"])
    n = n_tok - p
    if cfg.strategy in ("none", "random"):
        g = rhythm.gamma(cfg.strategy, n=n, params=params)
    elif cfg.strategy == "entropy":
        g = rhythm.gamma(cfg.strategy, n=n, entropy=np.asarray(summary["entropy"][p:]), params=params)
    else:
        r = rhythm.rhythm_from_summaries(summary, params=params)
        g = r.gamma(cfg.strategy, params=params)
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
            seed = cfg.seed if seeds is None else int(seeds[i])
            if cfg.strategy == "random":  # needs no attention
                g = gamma_from_summary({"response_start": int(p_ids.numel()), "seq_len": int(p_ids.numel()) + n}, cfg, seed)
            else:
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
                    stats=cfg.strategy == "entropy",
                )
                g = gamma_from_summary(s, cfg, seed)
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
