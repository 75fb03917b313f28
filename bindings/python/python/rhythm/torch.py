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

How, without an ``N x N`` map and without a loop over query rows:

1. Every layer runs the stock fused attention kernel. For a probed layer the
   probe calls the kernel op that also returns each row's log-sum-exp
   ``lse_t`` (on CPU ``aten._scaled_dot_product_flash_attention_for_cpu``, the
   op ``scaled_dot_product_attention`` itself dispatches to; on CUDA the flash
   or memory-efficient op), so the layer's output is the plain forward's and
   any probability is ``A[t, s] = exp(q_t . k_s * scale - lse_t)``.
2. The near band: ``J`` diagonals ``A[t, t - j]``, ``j < J`` (``J = max(W, p,
   lo, hi + 1)``), from one batched matmul of each 64-row query block against
   its ``64 + J`` keys (an ``unfold`` view, no copy). WAAD is
   ``sum_{j<W} A[t,t-j] j + W (1 - sum_{j<W} A[t,t-j])``; FAI's window
   ``[lo, hi]`` is a sum along the same diagonals read column-wise.
3. The far column mass: ``sum_{t in R, t >= s + p} A[t, s]`` (the
   receiver-head vertical sums) is the partition function of a *transposed*
   attention in which the keys ``k_s`` query the queries ``q_t`` with the bias
   ``-lse_t``: the bias rides in one extra head dimension, the condition
   ``t >= s + p`` becomes the kernel's causal mask once both sequences are
   reversed and the keys shifted by ``p``, and the kernel's own log-sum-exp
   output *is* ``log`` of the column mass. A value column holding ``t`` gives
   the mass-weighted mean row, hence the far part of the span numerator
   ``sum A[t,s] (t - s)`` without the float32 cancellation of ``t - E_t[s]``.
   FAI to the end of the response is this mass plus or minus a few diagonals.

So a probed layer costs its own attention, one more attention-shaped kernel
call over the response rows, and ``O(B H N J)`` band work; memory per layer is
``O(B H N (J + d))``. The summaries are float32 products reduced in float64,
for bf16/f16 models too. Entropies and log-probabilities come from the final
hidden states in blocks of rows, inside the model's forward (so under FSDP the
LM head's weight is gathered), never as ``N x vocab`` logits.

The model runs through its own ``forward`` (the wrapped one, under DDP, FSDP
or DeepSpeed, when that is what is passed), switched for the pass to the
attention function ``"rhythm_probe"`` registered with transformers'
``AttentionInterface``: non-probed layers, and everything outside a probe,
call the model's own implementation (``sdpa`` or ``eager``; other
implementations run as ``sdpa`` during the pass).

Batches use TRL's layout: each row's real tokens are contiguous (left-padded
prompt, then the response, then right padding), given by ``attention_mask``;
:func:`probe_batch` returns one summary dict per row in that row's unpadded
coordinates, equal to :func:`probe` on the row alone.

The RL side (``RhythmConfig``, ``rhythm_gammas``, ``shape_advantages``) lives
in :mod:`rhythm.credit` and is re-exported here.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "ATTN_IMPLEMENTATION",
    "Probe",
    "probe",
    "probe_batch",
    "probing",
    "register",
    "resolve_layers",
    "sampled_layers",
    "token_stats",
    "unwrap",
]

#: The name the probe's attention function and mask are registered under.
ATTN_IMPLEMENTATION = "rhythm_probe"
_EAGER_NAME = "rhythm_probe_eager"

#: Bytes of float32 logits one LM-head block may hold.
_BLOCK_BYTES = 64 * 1024 * 1024
#: Query rows per band block (the band is ``_BAND_ROWS + J`` keys wide).
_BAND_ROWS = 64
#: The bias that removes a key from the transposed pass (exp underflows to 0).
_BIG = 1.0e30

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
    try:
        out = sorted({_int_of("layers", x) for x in layers})
    except TypeError:
        raise ValueError(f"layers {layers!r}: expected 'sampled', 'all' or a list of layer indices") from None
    if not out:
        raise ValueError("layers []: expected at least one layer index")
    bad = [x for x in out if not 0 <= x < num_layers]
    if bad:
        raise ValueError(f"layers {bad}: the model has {num_layers} layers (expected 0..{num_layers - 1})")
    return out


def _int_of(name: str, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise ValueError(f"{name} {x!r}: expected an integer")
    return int(x)


def check_settings(window: int, horizon: tuple[int, Optional[int]], proximity: int) -> tuple[int, tuple[int, Optional[int]], int]:
    """Validates the probe's settings; returns them as plain ints (``ValueError`` naming the bad one)."""
    w = _int_of("window", window)
    p = _int_of("proximity", proximity)
    if w < 1:
        raise ValueError(f"window {window}: expected an integer >= 1")
    if p < 0:
        raise ValueError(f"proximity {proximity}: expected an integer >= 0")
    try:
        lo, hi = horizon
    except (TypeError, ValueError):
        raise ValueError(f"horizon {horizon!r}: expected (lo, hi) with 0 <= lo <= hi, hi None for the end") from None
    lo = _int_of("horizon lo", lo)
    hi = None if hi is None else _int_of("horizon hi", hi)
    if lo < 0 or (hi is not None and hi < lo):
        raise ValueError(f"horizon {horizon}: expected 0 <= lo <= hi (hi None for the end)")
    return w, (lo, hi), p


# ---------------------------------------------------------------------------
# Row layout of one forward call.


@dataclass
class _Rows:
    """The rows of one forward: padded ``[B, N]``, real tokens ``[off, end)``, response ``[start, end)``."""

    first: int  # global index of row 0
    off: torch.Tensor  # [B] long
    start: torch.Tensor  # [B] long
    end: torch.Tensor  # [B] long
    n_tok: int


def _rows_of(mask: Optional[torch.Tensor], bsz: int, n_tok: int, starts: torch.Tensor, first: int) -> _Rows:
    dev = starts.device
    if mask is None:
        off = torch.zeros(bsz, dtype=torch.long, device=dev)
        end = torch.full((bsz,), n_tok, dtype=torch.long, device=dev)
    else:
        m = mask.to(device=dev).bool()
        if m.shape != (bsz, n_tok):
            raise ValueError(f"attention_mask shape {tuple(m.shape)}: expected {(bsz, n_tok)}")
        count = m.sum(1)
        idx = torch.arange(n_tok, device=dev)
        off = torch.where(m, idx, n_tok).min(1).values
        end = torch.where(m, idx + 1, 0).max(1).values
        if bool(((end - off) != count).any()):
            bad = int(((end - off) != count).nonzero()[0, 0])
            raise ValueError(
                f"attention_mask row {first + bad}: real tokens are not contiguous "
                "(expected left padding, the sequence, then right padding)"
            )
        off = torch.where(count > 0, off, 0)
        end = torch.where(count > 0, end, 0)
    st = starts.to(dev)
    if st.shape != (bsz,):
        raise ValueError(f"response starts shape {tuple(st.shape)}: expected ({bsz},)")
    return _Rows(first=first, off=off, start=st, end=end, n_tok=n_tok)


# ---------------------------------------------------------------------------
# The collector: settings of a probe pass and its per-layer results.


@dataclass
class _Collector:
    layers: list[int]
    window: int
    horizon: tuple[int, Optional[int]]
    proximity: int
    stats: bool
    inner: str
    lm_block: Optional[int] = None
    rows: Optional[_Rows] = None
    #: layer -> list over forwards of (span_num [B,H], waad/fai/vert [B,H,N]) float64 CPU
    out: dict[int, list[tuple[torch.Tensor, ...]]] = field(default_factory=dict)
    #: list over forwards of (entropy, logprobs) [B, N] float64 CPU
    token: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def band(self) -> int:
        lo, hi = self.horizon
        return max(self.window, self.proximity, lo, 0 if hi is None else hi + 1, 1)


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


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# ---------------------------------------------------------------------------
# Attention: the stock kernel with its log-sum-exp.


def _float_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, -math.inf)
    return mask.to(dtype)


def _lse_blocked(q: torch.Tensor, k: torch.Tensor, mask: Optional[torch.Tensor], scale: float) -> torch.Tensor:
    """Log-sum-exp of the rows for devices without an LSE-returning kernel (blocks of query rows)."""
    bsz, heads, n_q, _ = q.shape
    lse = torch.empty(bsz, heads, n_q, dtype=torch.float32, device=q.device)
    rows = max(16, _BLOCK_BYTES // max(1, 4 * heads * bsz * k.shape[2]))
    for r0 in range(0, n_q, rows):
        r1 = min(n_q, r0 + rows)
        s = torch.matmul(q[:, :, r0:r1].float(), k.float().transpose(2, 3)) * scale
        if mask is None:
            t = torch.arange(r0, r1, device=q.device)[:, None]
            s = s.masked_fill(t < torch.arange(k.shape[2], device=q.device)[None, :], -math.inf)
        else:
            s = s + _float_mask(mask[:, :, r0:r1], torch.float32)
        lse[:, :, r0:r1] = torch.logsumexp(s, -1)
    return lse


def attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: Optional[torch.Tensor],
    scale: float,
    dropout: float = 0.0,
    causal: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T scale + mask) v`` ``[B, H, Nq, Dv]`` and each row's float32 log-sum-exp ``[B, H, Nq]``.

    ``q``/``k``/``v`` have the same number of heads. Without ``mask``,
    ``causal`` applies the top-left causal mask (key ``j`` visible to query
    ``i`` iff ``j <= i``). Calls the op ``scaled_dot_product_attention``
    dispatches to (CPU flash; CUDA flash or memory-efficient), so the output is
    the stock kernel's; elsewhere it falls back to ``sdpa`` plus a blocked
    log-sum-exp.
    """
    dev = q.device.type
    if torch.is_autocast_enabled(dev):  # as sdpa under autocast: everything in the autocast dtype
        dt = torch.get_autocast_dtype(dev)
        q, k, v = q.to(dt), k.to(dt), v.to(dt)
    elif k.dtype != q.dtype or v.dtype != q.dtype:
        k, v = k.to(q.dtype), v.to(q.dtype)
    fm = None if mask is None else _float_mask(mask, q.dtype)
    is_causal = causal and mask is None
    if q.device.type == "cpu" and q.shape[-1] == v.shape[-1]:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, dropout, is_causal, attn_mask=fm, scale=scale
        )
        return out, lse
    if q.device.type == "cuda":
        d = q.shape[-1]
        if fm is None and q.dtype in (torch.float16, torch.bfloat16) and d % 8 == 0 and d <= 256 and d == v.shape[-1]:
            res = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, dropout, is_causal, False, scale=scale)
            return res[0], res[1]
        bias = None if fm is None else fm.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        res = torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, bias, True, dropout, is_causal, scale=scale
        )
        return res[0], res[1][..., : q.shape[2]]
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=fm, dropout_p=dropout, is_causal=is_causal, scale=scale
    )
    return out, _lse_blocked(q, k, mask if mask is not None else None, scale)


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return x
    b, h, n, d = x.shape
    return x[:, :, None].expand(b, h, groups, n, d).reshape(b, h * groups, n, d)


# ---------------------------------------------------------------------------
# The summaries of one probed layer.


def _band(q: torch.Tensor, k: torch.Tensor, J: int) -> torch.Tensor:
    """``S[b, h, t, j] = q_t . k_{t-j}`` for ``j < J`` (garbage where ``t - j < 0``), float32 ``[B, H, N, J]``."""
    bsz, heads, n_tok, d = q.shape
    r = _BAND_ROWS
    nb = -(-n_tok // r)
    qp = torch.nn.functional.pad(q, (0, 0, 0, nb * r - n_tok))
    kp = torch.nn.functional.pad(k, (0, 0, J, nb * r - n_tok))  # key s sits at row s + J
    win = kp.unfold(2, r + J, r)  # [B, H, nb, d, r + J]: keys b*r - J .. b*r + r - 1
    s = torch.matmul(qp.view(bsz, heads, nb, r, d), win)  # [B, H, nb, r, r + J]
    # Row i of block b is t = b r + i; column c is key b r - J + c, so j = i + J - c.
    # Diagonal j' = J - 1 - j sits at column i + 1 + j': a strided view.
    s = s.contiguous()
    st = s.stride()
    rev = s.as_strided((bsz, heads, nb, r, J), (st[0], st[1], st[2], st[3] + 1, 1), s.storage_offset() + 1)
    return rev.flip(-1).reshape(bsz, heads, nb * r, J)[:, :, :n_tok]


def _summarize_layer(c: _Collector, q: torch.Tensor, k: torch.Tensor, lse: torch.Tensor, scale: float) -> tuple[torch.Tensor, ...]:
    """span_num ``[B, H]`` and waad / fai_sum / vert_sum ``[B, H, N]`` (float64) of one layer."""
    rows = c.rows
    assert rows is not None
    bsz, heads, n_tok, d = q.shape
    dev = q.device
    W, (lo, hi), p, J = c.window, c.horizon, c.proximity, c.band
    qf, kf, lse = q.float(), k.float(), lse.float()
    t = torch.arange(n_tok, device=dev)
    off, st, en = rows.off[:, None], rows.start[:, None], rows.end[:, None]
    row_in_r = ((t[None] >= st) & (t[None] < en))[:, None]  # [B, 1, N]
    # 1. The near band A[t, t - j], j < J, zero where the key is padding or t is not a response row.
    j = torch.arange(J, device=dev)
    key = t[:, None] - j[None, :]  # [N, J]
    valid = (key[None] >= off[:, :, None]) & row_in_r[:, 0, :, None]  # [B, N, J]
    a = torch.exp(_band(qf, kf, J) * scale - lse[..., None])
    a = torch.where(valid[:, None], a, torch.zeros((), device=dev)).double()  # [B, H, N, J]
    # 2. WAAD and the near part of the span numerator.
    jw = j[:W].double()
    near = a[..., :W]
    waad = (near * jw).sum(-1) + W * (1.0 - near.sum(-1))
    waad = torch.where(row_in_r, waad, torch.zeros((), dtype=waad.dtype, device=dev))
    span = (a[..., :p] * j[:p].double()).sum((-1, -2))
    # 3. Column-wise diagonals: col[s, j] = A[s + j, s].
    ap = torch.nn.functional.pad(a, (0, 0, 0, J)).contiguous()
    sa = ap.stride()
    col = ap.as_strided((bsz, heads, n_tok, J), (sa[0], sa[1], sa[2], sa[2] + 1), ap.storage_offset())
    # 4. The transposed pass: far column mass sum_{t in R, t >= s + p} A[t, s] and its mean row.
    r0 = int(rows.start.min())
    nt = n_tok - r0
    dp = d + 8
    qt = torch.zeros(bsz, heads, n_tok, dp, dtype=torch.float32, device=dev)
    qt[..., :d] = kf * scale
    qt[..., d] = 1.0
    kt = torch.zeros(bsz, heads, nt + p, dp, dtype=torch.float32, device=dev)
    vt = torch.zeros(bsz, heads, nt + p, dp, dtype=torch.float32, device=dev)
    keep = row_in_r[..., r0:].expand(bsz, heads, nt)
    kt[:, :, p:, :d] = torch.where(keep[..., None], qf[:, :, r0:], torch.zeros((), device=dev)).flip(2)
    kt[:, :, :p, d] = -_BIG
    kt[:, :, p:, d] = torch.where(keep, -lse[:, :, r0:], torch.full((), -_BIG, device=dev)).flip(2)
    vt[:, :, p:, 0] = torch.arange(nt, dtype=torch.float32, device=dev).flip(0)
    lk = min(nt + p, n_tok)
    out_t, lse_t = attention_with_lse(qt.flip(2), kt[:, :, :lk], vt[:, :, :lk], None, 1.0)
    mass = torch.exp(lse_t.flip(2).double())  # [B, H, N] by column s
    mean_row = out_t[..., 0].flip(2).double() + r0
    real_col = (t[None] >= off)[:, None]
    mass = torch.where(real_col & (mass > 0), mass, torch.zeros((), dtype=mass.dtype, device=dev))
    span = span + (mass * (mean_row - t.double())).sum(-1)
    col_in_r = row_in_r
    vert = torch.where(col_in_r, mass, torch.zeros((), dtype=mass.dtype, device=dev))
    if hi is not None:
        fai = col[..., lo : hi + 1].sum(-1)
    elif lo < p:
        fai = vert + col[..., lo:p].sum(-1)
    else:
        fai = vert - col[..., p:lo].sum(-1)
    fai = torch.where(col_in_r, fai, torch.zeros((), dtype=fai.dtype, device=dev))
    keep_from = r0
    return (
        span.cpu(),
        waad[..., keep_from:].cpu(),
        fai[..., keep_from:].cpu(),
        vert[..., keep_from:].cpu(),
    )


# ---------------------------------------------------------------------------
# The registered attention function.

_INNER_CACHE: dict[type, Callable[..., Any]] = {}


def _eager_of(module: torch.nn.Module) -> Callable[..., Any]:
    fn = _INNER_CACHE.get(type(module))
    if fn is None:
        fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
        if fn is None:
            from transformers.integrations.sdpa_attention import sdpa_attention_forward

            fn = sdpa_attention_forward
        _INNER_CACHE[type(module)] = fn
    return fn


def _delegate(name: str, module: torch.nn.Module, query, key, value, attention_mask, **kwargs: Any):
    if name == "eager":
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            attention_mask = torch.where(attention_mask, 0.0, torch.finfo(query.dtype).min).to(query.dtype)
        return _eager_of(module)(module, query, key, value, attention_mask, **kwargs)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def rhythm_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    dropout: float = 0.0,
    scaling: Optional[float] = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The registered attention function: the model's own attention, plus the summaries of probed layers.

    ``query`` ``[B, Hq, N, D]``, ``key``/``value`` ``[B, Hkv, S, D]``; returns
    ``([B, N, Hq, D], None)``. Outside :func:`probe` (or for a layer that is
    not probed) it is the model's attention implementation (``sdpa`` when
    none is active). For a probed layer the output comes from the stock
    kernel op with its log-sum-exp, and the layer's summaries are collected.
    """
    col = _active()
    layer = getattr(module, "layer_idx", None)
    if col is None or layer not in col.layers or col.rows is None:
        return _delegate(col.inner if col else "sdpa", module, query, key, value, attention_mask,
                         dropout=dropout, scaling=scaling, **kwargs)
    bsz, hq, n_tok, d = query.shape
    if key.shape[2] != n_tok or bsz != rows_b(col):
        raise ValueError(
            f"rhythm probe: layer {layer} got {n_tok} queries over {key.shape[2]} keys, batch {bsz}; "
            f"expected a full pass without cache over batch {rows_b(col)}"
        )
    if kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None:
        raise ValueError(f"rhythm probe: layer {layer} uses a position bias or soft-capping; expected plain softmax attention")
    sw = kwargs.get("sliding_window") or getattr(module, "sliding_window", None)
    if sw is not None and int(sw) < n_tok:
        raise ValueError(f"rhythm probe: layer {layer} has a sliding window of {sw} < {n_tok} tokens; expected full causal attention")
    groups = hq // key.shape[1]
    k = _repeat_kv(key, groups)
    v = _repeat_kv(value, groups)
    scale = float(scaling) if scaling is not None else d**-0.5
    mask = attention_mask[:, :, :, :n_tok] if attention_mask is not None else None
    if torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad):
        # A training forward: the differentiable output is the model's own
        # attention, so that autograd (and activation checkpointing, which
        # recomputes the layer outside the probe) sees exactly a plain forward;
        # the log-sum-exp costs one more kernel call, without gradients.
        t0 = time.perf_counter()
        out = _delegate(col.inner, module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)[0]
        with torch.no_grad():
            _, lse = attention_with_lse(query.detach(), k.detach(), v.detach(), mask, scale)
            res = _summarize_layer(col, query.detach(), k.detach(), lse, scale)
        _sync(query.device)
        col.seconds += time.perf_counter() - t0
        col.out.setdefault(layer, []).append(res)
        return out, None
    out, lse = attention_with_lse(query, k, v, mask, scale, dropout if module.training else 0.0)
    t0 = time.perf_counter()
    with torch.no_grad():
        res = _summarize_layer(col, query.detach(), k.detach(), lse.detach(), scale)
    _sync(query.device)
    col.seconds += time.perf_counter() - t0
    col.out.setdefault(layer, []).append(res)
    return out.transpose(1, 2).contiguous(), None


def rows_b(col: _Collector) -> int:
    assert col.rows is not None
    return int(col.rows.off.shape[0])


def register() -> str:
    """Registers the probe's attention function and mask with transformers (idempotent).

    Returns the implementation name, ``"rhythm_probe"``.
    """
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

        AttentionInterface.register(ATTN_IMPLEMENTATION, rhythm_attention)
        AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
        # For eager models: eager's float masks, so a layer recomputed by
        # activation checkpointing after the probe gets the mask it expects.
        AttentionInterface.register(_EAGER_NAME, rhythm_attention)
        AttentionMaskInterface.register(_EAGER_NAME, eager_mask)
        _registered = True
    return ATTN_IMPLEMENTATION


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside DDP / FSDP / DeepSpeed / ``torch.compile`` wrappers."""
    for _ in range(8):
        mods = getattr(model, "_modules", {})
        inner = next((mods[a] for a in ("module", "_fsdp_wrapped_module", "_orig_mod") if a in mods), None)
        if inner is None or hasattr(type(model), "get_decoder"):
            return model
        model = inner
    return model


def _num_layers(model: torch.nn.Module) -> int:
    cfg = model.config
    n = getattr(cfg, "num_hidden_layers", None)
    if n is None and hasattr(cfg, "get_text_config"):
        n = getattr(cfg.get_text_config(), "num_hidden_layers", None)
    if n is None:
        raise ValueError("model config has no num_hidden_layers")
    return int(n)


def _decoder(model: torch.nn.Module) -> torch.nn.Module:
    if hasattr(model, "get_decoder"):
        dec = model.get_decoder()
        if dec is not None:
            return dec
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    if base is None:
        raise ValueError(f"{type(model).__name__}: cannot find the decoder (expected model.model)")
    return base


def token_stats(
    model: torch.nn.Module, hidden: torch.Tensor, ids: torch.Tensor, block_rows: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy ``H[t]`` and ``log p(ids[t])`` (float64 ``[N]``) from final hidden states ``[N, hidden]``.

    Row ``t - 1`` predicts token ``t``; entry 0 of both is 0. The LM head runs
    on ``block_rows`` rows at a time (default: about 64 MiB of float32 logits)
    with a float32 softmax, so no ``N x vocab`` tensor is held.
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
    return ent, lp


# ---------------------------------------------------------------------------
# The probe pass.


@dataclass
class Probe:
    """An open probe pass (from :func:`probing`): every forward of the model inside it is probed.

    Each forward consumes the next rows; :meth:`summaries` returns one summary
    dict per row seen, in order.
    """

    model: torch.nn.Module
    collector: _Collector
    starts: Optional[torch.Tensor]
    tail: Optional[int]
    ids: list[torch.Tensor] = field(default_factory=list)
    metas: list[_Rows] = field(default_factory=list)
    rows_seen: int = 0

    @property
    def seconds(self) -> float:
        """Seconds spent on the summaries (beyond the model's own attention) so far."""
        return self.collector.seconds

    def _begin(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> None:
        bsz, n_tok = input_ids.shape
        if self.starts is not None:
            if self.rows_seen + bsz > self.starts.shape[0]:
                raise ValueError(
                    f"rhythm probe: forward over {self.rows_seen + bsz} rows; only {self.starts.shape[0]} response starts given"
                )
            st = self.starts[self.rows_seen : self.rows_seen + bsz].to(input_ids.device)
        else:
            assert self.tail is not None
            st = torch.full((bsz,), n_tok - self.tail, dtype=torch.long, device=input_ids.device)
        rows = _rows_of(attention_mask, bsz, n_tok, st, self.rows_seen)
        bad = (rows.start < rows.off + 1) | (rows.start > rows.end)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"response_start {int(st[i])} of row {self.rows_seen + i}: expected a non-empty prompt before it "
                f"(real tokens {int(rows.off[i])}..{int(rows.end[i])})"
            )
        self.collector.rows = rows
        self.metas.append(rows)
        self.ids.append(input_ids.detach())
        self.rows_seen += bsz

    def summaries(self) -> list[dict[str, Any]]:
        """One summary dict per probed row (unpadded coordinates), in row order.

        A row with an empty response gets ``None``.
        """
        c = self.collector
        missing = [l for l in c.layers if len(c.out.get(l, [])) != len(self.metas)]
        if missing:
            raise RuntimeError(
                f"rhythm probe: layers {missing} never called the attention interface "
                f"({type(self.model).__name__} may not support custom attention functions)"
            )
        res: list[dict[str, Any]] = []
        for f, rows in enumerate(self.metas):
            r0 = int(rows.start.min())
            per_layer = [c.out[l][f] for l in c.layers]
            for b in range(rows.off.shape[0]):
                off, st, en = int(rows.off[b]), int(rows.start[b]), int(rows.end[b])
                if en <= st:
                    res.append(None)  # type: ignore[arg-type]
                    continue
                a, z = st - r0, en - r0
                d: dict[str, Any] = {
                    "response_start": st - off,
                    "seq_len": en - off,
                    "window": c.window,
                    "horizon": c.horizon,
                    "proximity": c.proximity,
                    "layers": list(c.layers),
                    "span_num": np.stack([x[0][b].numpy() for x in per_layer]),
                    "waad": np.stack([x[1][b, :, a:z].numpy() for x in per_layer]),
                    "fai_sum": np.stack([x[2][b, :, a:z].numpy() for x in per_layer]),
                    "vert_sum": np.stack([x[3][b, :, a:z].numpy() for x in per_layer]),
                }
                if c.stats:
                    ent, lp = c.token[f]
                    d["entropy"] = ent[b, off:en].numpy()
                    d["logprobs"] = lp[b, off:en].numpy()
                res.append(d)
        return res


@contextlib.contextmanager
def probing(
    model: torch.nn.Module,
    *,
    response_starts: Optional[Sequence[int]] = None,
    response_tail: Optional[int] = None,
    layers: Layers = "sampled",
    window: int = 10,
    horizon: tuple[int, Optional[int]] = (10, 50),
    proximity: int = 4,
    stats: bool = False,
    lm_block: Optional[int] = None,
) -> Iterator[Probe]:
    """Probes every forward of ``model`` (or of the wrapper that holds it) inside the block.

    Each forward must be a full pass without cache over ``input_ids`` ``[B, N]``
    with an ``attention_mask`` in TRL's layout. The response of a row starts at
    padded column ``response_starts[row]`` (rows numbered across forwards) or,
    with ``response_tail=T``, at ``N - T`` (TRL's ``logits_to_keep``).
    ``stats``: also the entropies and log-probabilities of every token.
    """
    if (response_starts is None) == (response_tail is None):
        raise ValueError("probing: give exactly one of response_starts and response_tail")
    register()
    window, horizon, proximity = check_settings(window, horizon, proximity)
    inner_model = unwrap(model)
    sel = resolve_layers(layers, _num_layers(inner_model))
    prev = getattr(inner_model.config, "_attn_implementation", None)
    inner = prev if prev in ("eager", "sdpa") else "sdpa"
    col = _Collector(sel, window, horizon, proximity, stats, inner, lm_block)
    dev = next(inner_model.parameters()).device
    starts = None if response_starts is None else torch.as_tensor(list(response_starts), dtype=torch.long, device=dev)
    pr = Probe(inner_model, col, starts, response_tail)

    def pre_hook(_mod: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None or ids.dim() != 2:
            raise ValueError("rhythm probe: the model was called without input_ids [B, N]")
        if kwargs.get("past_key_values") is not None:
            raise ValueError("rhythm probe: expected a full pass without past_key_values")
        pr._begin(ids, kwargs.get("attention_mask"))

    def dec_hook(_mod: torch.nn.Module, _args: tuple, output: Any) -> None:
        if not col.stats or col.rows is None:
            return
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        ids = pr.ids[-1]
        rows = col.rows
        bsz, n_tok = ids.shape
        ent = torch.zeros(bsz, n_tok, dtype=torch.float64)
        lp = torch.zeros(bsz, n_tok, dtype=torch.float64)
        with torch.no_grad():
            for b in range(bsz):
                o, e = int(rows.off[b]), int(rows.end[b])
                if e - o >= 2:
                    eb, lb = token_stats(inner_model, hidden[b, o:e].detach(), ids[b, o:e], col.lm_block)
                    ent[b, o:e], lp[b, o:e] = eb.cpu(), lb.cpu()
        col.token.append((ent, lp))

    h1 = inner_model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    h2 = _decoder(inner_model).register_forward_hook(dec_hook)
    try:
        name = _EAGER_NAME if inner == "eager" else ATTN_IMPLEMENTATION
        with _attn_implementation(inner_model, name), _collecting(col):
            yield pr
    finally:
        h1.remove()
        h2.remove()
        col.rows = None


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


def _as_batch(input_ids: Any, attention_mask: Any) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    ids = torch.as_tensor(input_ids)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2:
        raise ValueError(f"input_ids shape {tuple(ids.shape)}: expected [N] or [B, N]")
    if ids.numel() == 0:
        raise ValueError("input_ids is empty: expected at least one token")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(f"input_ids dtype {ids.dtype}: expected integer token ids")
    mask = None
    if attention_mask is not None:
        mask = torch.as_tensor(attention_mask)
        if mask.dim() == 1:
            mask = mask[None]
        if tuple(mask.shape) != tuple(ids.shape):
            raise ValueError(f"attention_mask shape {tuple(mask.shape)}: expected input_ids' {tuple(ids.shape)}")
    return ids.long(), mask


@torch.no_grad()
def probe_batch(
    model: torch.nn.Module,
    input_ids: Any,
    response_starts: Union[int, Sequence[int]],
    attention_mask: Any = None,
    *,
    layers: Layers = "sampled",
    window: int = 10,
    horizon: tuple[int, Optional[int]] = (10, 50),
    proximity: int = 4,
    stats: bool = True,
    lm_block: Optional[int] = None,
    batch_size: Optional[int] = None,
) -> list[Optional[dict[str, Any]]]:
    """The probe over a padded batch ``[B, N]`` in TRL's layout, in ``ceil(B / batch_size)`` forwards.

    Args:
        model: a transformers causal LM (or a DDP / FSDP / DeepSpeed wrapper of one).
        input_ids: ``[B, N]`` token ids (or ``[N]``).
        response_starts: the padded column where each row's response starts
            (one int for all rows, as in TRL where it is the prompt width).
        attention_mask: ``[B, N]``, 1 on real tokens (contiguous per row);
            ``None``: no padding.
        layers, window, horizon, proximity: as in :func:`probe`.
        stats: also ``entropy``/``logprobs`` per row.
        lm_block: rows per LM-head block (default ~64 MiB of float32 logits).
        batch_size: rows per forward (default: all).

    Returns:
        One summary dict per row, each in the row's unpadded coordinates and
        equal to :func:`probe` of that row alone; ``None`` for a row with an
        empty response.
    """
    ids, mask = _as_batch(input_ids, attention_mask)
    bsz = ids.shape[0]
    if isinstance(response_starts, (int, np.integer)) and not isinstance(response_starts, bool):
        starts = [int(response_starts)] * bsz
    else:
        starts = [_int_of("response_starts", s) for s in response_starts]
    if len(starts) != bsz:
        raise ValueError(f"{len(starts)} response_starts for {bsz} rows: expected one per row")
    bad = [s for s in starts if not 1 <= s <= ids.shape[1]]
    if bad:
        raise ValueError(f"response_start {bad[0]}: expected 1 <= P <= N = {ids.shape[1]}")
    step = bsz if batch_size is None else _int_of("batch_size", batch_size)
    if step < 1:
        raise ValueError(f"batch_size {batch_size}: expected an integer >= 1")
    inner = unwrap(model)
    was_training = inner.training
    inner.eval()
    dev = next(inner.parameters()).device
    try:
        with probing(model, response_starts=starts, layers=layers, window=window, horizon=horizon,
                     proximity=proximity, stats=stats, lm_block=lm_block) as pr:
            for b0 in range(0, bsz, step):
                kw: dict[str, Any] = {"input_ids": ids[b0 : b0 + step].to(dev), "use_cache": False}
                kw["attention_mask"] = None if mask is None else mask[b0 : b0 + step].to(dev)
                _forward_light(model, kw)
        return pr.summaries()
    finally:
        inner.train(was_training)


def _forward_light(model: torch.nn.Module, kw: dict[str, Any]) -> Any:
    """``model(**kw)`` keeping only the last position's logits where the model allows it."""
    try:
        return model(**kw, logits_to_keep=1)
    except TypeError:
        return model(**kw)


def probe(
    model: torch.nn.Module,
    input_ids: Any,
    response_start: int,
    *,
    layers: Layers = "sampled",
    window: int = 10,
    horizon: tuple[int, Optional[int]] = (10, 50),
    proximity: int = 4,
    lm_block: Optional[int] = None,
    stats: bool = True,
) -> dict[str, Any]:
    """One probed forward pass over one sequence (prompt + response).

    Args:
        model: a transformers causal LM using the attention interface (Qwen3,
            Qwen2, Llama, ...), on any device, any dtype.
        input_ids: token ids ``[N]`` or ``[1, N]`` (prompt then response).
        response_start: ``P``, the first response position (``1 <= P < N``).
        layers: ``"sampled"`` (SPEC section 2), ``"all"`` or layer indices.
        window: WAAD window ``W``.
        horizon: FAI horizon ``(lo, hi)``; ``hi=None`` means to the end.
        proximity: receiver-head proximity ``p``.
        lm_block: rows per LM-head block for entropies/log-probabilities
            (default: about 64 MiB of float32 logits per block).
        stats: also compute ``entropy`` and ``logprobs``.

    Returns:
        The summary dict of the binding's contract: ``response_start``,
        ``seq_len``, ``window``, ``horizon``, ``proximity``, ``layers``,
        ``span_num`` ``[L, H]``, ``waad``/``fai_sum``/``vert_sum`` ``[L, H, n]``
        (float64 numpy), and with ``stats`` ``entropy``/``logprobs`` ``[N]``.
    """
    ids, _ = _as_batch(input_ids, None)
    if ids.shape[0] != 1:
        raise ValueError(f"input_ids shape {tuple(ids.shape)}: expected one sequence [N] or [1, N]")
    n_tok = int(ids.shape[1])
    p = _int_of("response_start", response_start)
    if not 1 <= p < n_tok:
        raise ValueError(f"response_start {p}: expected 1 <= P < N = {n_tok} (a non-empty response after a prompt)")
    out = probe_batch(model, ids, p, None, layers=layers, window=window, horizon=horizon, proximity=proximity,
                      stats=stats, lm_block=lm_block)
    assert out[0] is not None
    return out[0]


def __getattr__(name: str) -> Any:
    # The RL helpers moved to rhythm.credit; rhythm.torch still exports them.
    if name.startswith("__"):
        raise AttributeError(name)
    from . import credit

    if name in credit.__all__ or name in ("_MASK64", "STRATEGIES"):
        return getattr(credit, name)
    raise AttributeError(f"module 'rhythm.torch' has no attribute {name!r}")
