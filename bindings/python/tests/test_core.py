"""The rhythm binding on small hand-checked cases and on hostile input.

Every expected number below is worked out by hand in the comments, from
SPEC's definitions; none is read back from the code under test.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rhythm
from rhythm import Params, Strategy

# ----------------------------------------------------------------- the case
#
# N = 6 tokens, response from P = 2 (n = 4), one layer with two heads, each
# row a one-hot (the column it attends to):
#
#   row:            0  1  2  3  4  5
#   head 0 (local): 0  1  2  1  4  2   distances in R: 0 2 0 3 -> span 5/4
#   head 1 (global):0  0  2  2  2  2   distances in R: 0 1 2 3 -> span 6/4
#
# head_ratio 0.3 of M = 2 heads selects ceil(0.6) = 1 head per group:
# local = [(0, 0)], global = [(0, 1)].
# WAAD (W = 10) = head 0's distances = [0, 2, 0, 3];
# Delta = [2, 2, 3, 0].
# FAI with horizon (1, end): s = 2 is attended by rows 3, 4, 5 of head 1 ->
# 3/3 = 1; s = 3, 4: 0; s = 5: T(s) empty -> 0. FAI = [1, 0, 0, 0].
# q = 0.5 selects ceil(2) = 2 of 4 tokens, ties toward the smaller offset:
# preplan = TopQ(Delta) = offsets {2, 0} -> positions [2, 4];
# anchors = TopQ(FAI) = offsets {0, 1} -> positions [2, 3].
# tau_waad = median(WAAD) = (0 + 2) / 2 = 1; tau_delta = median(Delta) = 2.
HEAD_COLS = [[0, 1, 2, 1, 4, 2], [0, 0, 2, 2, 2, 2]]
P, N = 2, 6


def one_hot_maps(cols=HEAD_COLS, n=N, dtype=np.float32) -> np.ndarray:
    m = np.zeros((len(cols), n, n), dtype=dtype)
    for h, c in enumerate(cols):
        m[h, np.arange(n), c] = 1
    return m


def params(**kw) -> Params:
    return Params.analysis(q=0.5, **kw)


def test_hand_checked_rhythm():
    r = rhythm.rhythm_from_maps({0: one_hot_maps()}, response_start=P, params=params())
    assert (r.response_start, r.n) == (2, 4)
    assert r.positions.tolist() == [2, 3, 4, 5]
    assert r.spans == [(0, 0, 1.25), (0, 1, 1.5)]
    assert r.local_heads == [(0, 0)] and r.global_heads == [(0, 1)]
    assert r.groups == {"local": [(0, 0)], "global": [(0, 1)]}
    assert r.waad.tolist() == [0, 2, 0, 3]
    assert r.delta.tolist() == [2, 2, 3, 0]
    assert r.fai.tolist() == [1, 0, 0, 0]
    assert r.preplan.tolist() == [2, 4]
    assert r.anchors.tolist() == [2, 3]
    assert (r.tau_waad, r.tau_delta) == (1.0, 2.0)
    # The anchor at offset 1 has WAAD 2 > tau_waad 1: not dominated.
    assert r.dominated.tolist() == [] and r.intro.tolist() == []
    # Proximity 4 leaves no vertical scores (t >= s + 4 has no t <= 5 for
    # s >= 2): both kurtoses are -inf and the tie goes to (0, 0), whose FAI is
    # row 5's attention on s = 2 over |T(2)| = 3 rows.
    assert r.kurtosis == [(0, 0, -math.inf), (0, 1, -math.inf)]
    assert r.receivers == [(0, 0)]
    assert r.receiver_fai == pytest.approx([1 / 3, 0, 0, 0], abs=1e-15)
    assert r.params == params()
    assert r.waad.dtype == np.float64 and r.preplan.dtype == np.int64


def test_hand_checked_gamma_for_every_strategy():
    # tau_waad 2.5 makes the anchor at offset 1 (WAAD 2 <= 2.5) dominated:
    # its neighbourhood {0} has Delta 2 >= tau_delta 2, so D = {1}, I = {0}.
    p = params(tau_waad=2.5)
    r = rhythm.rhythm_from_maps({0: one_hot_maps()}, P, p)
    assert r.dominated.tolist() == [3] and r.intro.tolist() == [2]
    want = {
        # a = gamma_amp - 1 = 0.5, alpha = 0.5
        "none": [1, 1, 1, 1],
        "local": [1.5, 1, 1.5, 1],  # preplan offsets {0, 2}
        "global": [1.5, 1.5, 1, 1],  # anchors {0, 1}
        # anchor 0 outside D (+a) and intro (+alpha a); 1 in D (+(1-alpha) a)
        "coupled": [1.75, 1.25, 1, 1],
        # Bottom ablations range over the positions whose score is defined
        # (SPEC section 8): Delta on offsets 0..2 (the last has none), FAI on
        # offsets 0..2 (T(5) is empty at horizon 1:end); ceil(0.5 * 3) = 2.
        "local-bottom": [1.5, 1.5, 1, 1],  # BottomQ(Delta[0..3]) = {0, 1}
        "global-bottom": [1, 1.5, 1.5, 1],  # BottomQ(FAI[0..3]) = {1, 2}
        # bottom anchors {1, 2}: 1 dominated via intro 0; 2 via intro 1 (Delta
        # ties in {0, 1} go to the larger u). t0: intro 1.25; t1: D + intro
        # 1.25 + 0.25; t2: D 1.25.
        "coupled-bottom": [1.25, 1.5, 1.25, 1],
    }
    for name, g in want.items():
        assert rhythm.gamma(name, rhythm=r).tolist() == g, name
        assert r.gamma(Strategy.parse(name)).tolist() == g, name
    # random: ceil(0.5 * 4) = 2 boosted, seeded, the same with or without rhythm.
    g = rhythm.gamma("random", 4, params=p)
    assert sorted(g.tolist()) == [1, 1, 1.5, 1.5]
    assert rhythm.gamma(Strategy.RANDOM, rhythm=r).tolist() == g.tolist()
    # entropy: TopQ(H) of [0.1, 0.9, 0.5, 0.7] = offsets {1, 3}.
    h = np.array([0.1, 0.9, 0.5, 0.7])
    assert rhythm.gamma("entropy", 4, entropy=h).tolist() == [1, 1.5, 1, 1.5]
    assert r.gamma("entropy", entropy=h).tolist() == [1, 1.5, 1, 1.5]
    # gamma_amp 3 doubles the boost: coupled t0 = 1 + 2 + 0.5 * 2.
    assert r.gamma("coupled", params=p.replace(gamma_amp=3.0)).tolist() == [4, 2, 1, 1]


def test_summaries_by_hand_and_round_trip():
    s = rhythm.summarize_maps({0: one_hot_maps()}, response_start=P, params=params())
    assert (s["response_start"], s["seq_len"], s["window"], s["horizon"], s["proximity"]) == (
        2,
        6,
        10,
        (1, None),
        4,
    )
    assert s["layers"] == [0]
    assert s["span_num"].tolist() == [[5, 6]]
    assert s["waad"].tolist() == [[[0, 2, 0, 3], [0, 1, 2, 3]]]
    # FAI sums: head 0's column 2 gets row 5 only; head 1's gets rows 3, 4, 5.
    assert s["fai_sum"].tolist() == [[[1, 0, 0, 0], [3, 0, 0, 0]]]
    assert s["vert_sum"].tolist() == [[[0] * 4, [0] * 4]]
    a = rhythm.rhythm_from_maps({0: one_hot_maps()}, P, params())
    b = rhythm.rhythm_from_summaries(s)  # params from the summary + RL's q 0.4
    assert b.params.horizon == (1, None) and b.params.q == 0.4
    b = rhythm.rhythm_from_summaries(s, params())
    assert a.to_dict() == b.to_dict()
    # float32 arrays and plain lists are read as float64.
    s32 = dict(s, waad=s["waad"].astype(np.float32), fai_sum=s["fai_sum"].tolist())
    assert rhythm.rhythm_from_summaries(s32, params()).to_dict() == a.to_dict()


def test_maps_dtypes_keys_and_groups():
    m = one_hot_maps()
    base = rhythm.rhythm_from_maps({0: m}, P, params()).to_dict()
    for arr in (m.astype(np.float64), m.astype(np.float16), np.asfortranarray(m)):
        assert rhythm.rhythm_from_maps({0: arr}, P, params()).to_dict() == base
    # safetensors-style keys; other tensors (logits) are skipped as by the CLI.
    d = {"attn.0": m, "logits": np.zeros((N, 5), np.float32)}
    assert rhythm.rhythm_from_maps(d, P, params()).to_dict() == base
    # Fixed groups: swapping them swaps the roles.
    r = rhythm.rhythm_from_maps({0: m}, P, params(), groups={"local": [(0, 1)], "global": [(0, 0)]})
    assert r.local_heads == [(0, 1)] and r.waad.tolist() == [0, 1, 2, 3]
    again = rhythm.rhythm_from_maps({0: m}, P, params(), groups=r)
    assert again.to_dict() == r.to_dict()
    # Two layers: heads are ordered by (layer, head).
    r2 = rhythm.rhythm_from_maps({3: m, 1: m[::-1].copy()}, P, params())
    assert [(l, h) for l, h, _ in r2.spans] == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert r2.to_dict(gamma=[1.0] * 4)["gamma"] == [1.0] * 4


def test_params_presets_and_fields():
    rl = Params.rl()
    assert rl == Params()
    assert rl.to_dict() == {
        "window": 10,
        "horizon": (10, 50),
        "q": 0.4,
        "head_ratio": 0.3,
        "receiver_ratio": 0.1,
        "proximity": 4,
        "k": 3,
        "gamma_amp": 1.5,
        "alpha": 0.5,
        "tau_waad": None,
        "tau_delta": None,
        "seed": 0,
    }
    a = Params.analysis()
    assert a.horizon == (1, None) and a.replace(horizon=(10, 50)) == rl
    p = Params(**dict(rl.to_dict(), seed=2**64 - 1, tau_delta=0.25))
    assert p.seed == 2**64 - 1 and p.tau_delta == 0.25 and p != rl
    assert Params(**p.to_dict()) == p
    assert "horizon=(1, None)" in repr(a)
    assert rhythm.STRATEGIES == tuple(str(s) for s in Strategy.all())
    assert len(Strategy.all()) == 9
    assert Strategy.ENTROPY.needs_entropy and not Strategy.RANDOM.needs_attention
    assert Strategy.COUPLED_BOTTOM.needs_attention
    assert len({Strategy.LOCAL, Strategy.parse("local")}) == 1
    # Both pickle (for multiprocess trainers) and copy.
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(p)) == p and copy.deepcopy(a) == a
    assert pickle.loads(pickle.dumps(Strategy.LOCAL_BOTTOM)) == Strategy.LOCAL_BOTTOM


def test_sample_layers_by_hand():
    # L = 36: lo = 12, hi = 24, lo + round_half_up(i * 12 / 4) = 12, 15, 18, 21, 24.
    assert rhythm.sample_layers(36) == [12, 15, 18, 21, 24]
    # L = 28: lo = 9, hi = 18; i * 9 / 4 = 0, 2.25, 4.5, 6.75, 9 -> 0, 2, 5, 7, 9.
    assert rhythm.sample_layers(28) == [9, 11, 14, 16, 18]
    # L = 3: lo = 1, hi = 2: 1, 1, 2, 2, 2 -> de-duplicated [1, 2].
    assert rhythm.sample_layers(3) == [1, 2]
    raises("num_layers = -1, expected a non-negative integer", rhythm.sample_layers, -1)


def test_advantages():
    # r = [1, 0, 0, 1]: mean 0.5, population std 0.5 -> +-0.5 / 0.500001.
    e = 0.5 / 0.500001
    assert rhythm.group_advantages([1, 0, 0, 1]).tolist() == pytest.approx([e, -e, -e, e], rel=1e-15)
    assert rhythm.group_advantages(np.array([0.3, 0.3])).tolist() == [0, 0]
    assert rhythm.group_advantages([]).tolist() == []
    assert rhythm.shaped_advantages(2.0, [1, 1.5]).tolist() == [2, 3]
    assert rhythm.shaped_advantages(-2.0, np.array([1, 1.5])).tolist() == [-2, -2]


def test_token_entropy_by_hand():
    # Row 0 uniform over 4 -> H[1] = ln 4; row 1 has p = (1/4, 3/4) ->
    # H[2] = -(1/4 ln 1/4 + 3/4 ln 3/4); the last row's logits are unused; H[0] = 0.
    logits = np.array([[0, 0, 0, 0], [0, np.log(3), -np.inf, -np.inf], [5, 0, 0, 0]])
    logits[1, 2:] = -1e30  # a finite stand-in for -inf (the CLI rejects infinities)
    h = rhythm.token_entropy(logits)
    assert h[0] == 0 and h.shape == (3,)
    assert h[1] == pytest.approx(math.log(4), abs=1e-12)
    assert h[2] == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-7)
    raises("logits hold a NaN or infinity", rhythm.token_entropy, np.array([[0, np.inf]]))
    raises("logits has shape [3], expected [N, vocab]", rhythm.token_entropy, np.zeros(3))
    raises("logits has shape [2, 0], expected [N, vocab]", rhythm.token_entropy, np.zeros((2, 0)))


# ----------------------------------------------------------------- hostile input


def raises(match: str, f, *a, **kw) -> str:
    with pytest.raises(ValueError) as e:
        f(*a, **kw)
    msg = str(e.value)
    assert match in msg, msg
    assert "\n" not in msg
    return msg


def test_bad_maps_raise_the_core_messages():
    m = one_hot_maps()
    nan = m.copy()
    nan[1, 3, 1] = np.nan
    raises(
        "attention map layer 0 head 1 row 3: column 1 is NaN, expected a finite number",
        rhythm.rhythm_from_maps,
        {0: nan},
        P,
    )
    causal = m.copy()
    causal[0, 2, 5] = 0.5
    raises(
        "attention map layer 0 head 0 row 2: column 5 is 0.5 but a causal map is 0 above the diagonal",
        rhythm.rhythm_from_maps,
        {0: causal},
        P,
    )
    heavy = m.copy()
    heavy[0, 2, 0] = 0.5
    raises("attention map layer 0 head 0 row 2: sums to 1.500000, expected 1", rhythm.summarize_maps, {0: heavy}, P)
    neg = m.copy()
    neg[0, 4, 0] = -0.25
    raises("row 4: column 0 is -0.25, expected >= 0", rhythm.rhythm_from_maps, {0: neg}, P)
    raises(
        "maps[0] has shape [2, 6, 5], expected [heads, N, N]",
        rhythm.rhythm_from_maps,
        {0: m[:, :, :5]},
        P,
    )
    raises("maps[0] has shape [6, 6]", rhythm.rhythm_from_maps, {0: m[0]}, P)
    raises("maps[2] has dtype int64, expected float32, float64 or float16", rhythm.rhythm_from_maps, {2: m.astype(np.int64)}, P)
    raises("maps[1] covers N = 5 tokens but maps[0] covers 6", rhythm.rhythm_from_maps, {0: m, 1: one_hot_maps([[0, 1, 2, 3, 4]], 5)}, P)
    raises("no attention maps found", rhythm.rhythm_from_maps, {}, P)
    raises("no attention maps found", rhythm.rhythm_from_maps, {"logits": m}, P)
    raises("expected a dict", rhythm.rhythm_from_maps, [m], P)
    raises("maps key 'attn.x'", rhythm.rhythm_from_maps, {"attn.x": m}, P)
    raises("maps key = -1, expected a non-negative integer", rhythm.rhythm_from_maps, {-1: m}, P)
    raises("maps[0] has shape [], expected [heads, N, N]", rhythm.rhythm_from_maps, {0: "abc"}, P)

    class Unconvertible:  # like a bfloat16 torch tensor, which numpy cannot read
        def __array__(self, *a, **kw):
            raise TypeError("Got unsupported ScalarType BFloat16")

    raises("maps[0]: not an array (TypeError: Got unsupported ScalarType BFloat16); expected a float32", rhythm.rhythm_from_maps, {0: Unconvertible()}, P)
    raises("heads but maps[0] has 2", rhythm.summarize_maps, {0: m, 1: m[:1]}, P)


def test_empty_response_and_bad_numbers():
    m = {0: one_hot_maps()}
    msg = "response start 6 leaves no response in a sequence of 6 tokens (expected 0 <= response_start < 6)"
    raises(msg, rhythm.rhythm_from_maps, m, 6)
    raises(msg, rhythm.summarize_maps, m, 6)
    raises("response_start = -1, expected a non-negative integer", rhythm.rhythm_from_maps, m, -1)
    raises("response_start = 2.0, expected a non-negative integer", rhythm.rhythm_from_maps, m, 2.0)
    raises("q = 0, expected a number in (0, 1]", Params, q=0)
    raises("alpha = 1.5, expected a number in [0, 1]", Params, alpha=1.5)
    raises("window = 0, expected at least 1", Params, window=0)
    raises("horizon = (5, 2), expected lo <= hi", Params, horizon=(5, 2))
    raises("horizon = 7, expected a pair", Params, horizon=7)
    raises("gamma_amp = inf, expected a finite number", Params, gamma_amp=math.inf)
    raises("q = 'a', expected a number", Params, q="a")
    with pytest.raises(TypeError, match="unexpected keyword argument 'windw'"):
        Params(windw=3)
    raises("params = 3, expected a rhythm.Params", rhythm.rhythm_from_maps, m, P, 3)
    # A dict of fields works as params; a bad one raises.
    assert rhythm.rhythm_from_maps(m, P, {"q": 0.5, "horizon": (1, None)}).preplan.tolist() == [2, 4]
    raises("q = 2, expected a number in (0, 1]", rhythm.rhythm_from_maps, m, P, {"q": 2})


def test_bad_strategy_gamma_and_groups():
    r = rhythm.rhythm_from_maps({0: one_hot_maps()}, P, params())
    names = "none, local, global, coupled, random, entropy, local-bottom, global-bottom, coupled-bottom"
    raises(f"unknown strategy 'best', expected one of {names}", rhythm.gamma, "best", rhythm=r)
    raises("unknown strategy 'Local'", Strategy.parse, "Local")
    raises("strategy = 3, expected a rhythm.Strategy", rhythm.gamma, 3, 4)
    raises("strategy 'coupled' needs attention summaries", rhythm.gamma, "coupled", 4)
    raises("strategy 'entropy' needs per-token entropy", rhythm.gamma, "entropy", 4)
    raises("entropy has 6 values, expected 4 (one per response token)", r.gamma, "entropy", entropy=np.ones(6))
    raises("entropy[1] is NaN, expected a finite number", rhythm.gamma, "entropy", 4, entropy=[0, np.nan, 0, 0])
    raises("entropy has shape [2, 2], expected a 1-D array", rhythm.gamma, "entropy", 4, entropy=np.ones((2, 2)))
    raises("rhythm covers 4 response tokens, expected 5", rhythm.gamma, "local", 5, rhythm=r)
    raises("gamma needs n", rhythm.gamma, "none")
    raises("rhythm = {}, expected a rhythm.Rhythm", rhythm.gamma, "local", rhythm={})
    raises("n = -2, expected a non-negative integer", rhythm.gamma, "none", -2)
    with pytest.raises(MemoryError, match="cannot be allocated"):
        rhythm.gamma("none", 2**62)
    raises(
        "head group names layer 0 head 7, which is not among the candidate heads",
        rhythm.rhythm_from_maps,
        {0: one_hot_maps()},
        P,
        groups={"local": [(0, 7)], "global": [(0, 0)]},
    )
    raises("head groups must not be empty", rhythm.rhythm_from_maps, {0: one_hot_maps()}, P, groups={"local": [], "global": [(0, 0)]})
    raises("groups['local'][0] = 5, expected a (layer, head) pair", rhythm.rhythm_from_maps, {0: one_hot_maps()}, P, groups={"local": [5], "global": []})
    raises("groups = 1, expected a Rhythm or a dict", rhythm.rhythm_from_maps, {0: one_hot_maps()}, P, groups=1)
    raises("rewards[1] is inf, expected a finite number", rhythm.group_advantages, [0, np.inf])
    raises("advantage = NaN, expected a finite number", rhythm.shaped_advantages, math.nan, [1.0])


def test_bad_summaries():
    good = rhythm.summarize_maps({0: one_hot_maps()}, P, params())
    raises("summary has no 'waad'", rhythm.rhythm_from_summaries, {k: v for k, v in good.items() if k != "waad"})
    raises("summary 'fai_sum' has shape [1, 2, 3], expected [1, 2, 4]", rhythm.rhythm_from_summaries, dict(good, fai_sum=good["fai_sum"][:, :, :3]))
    raises("summary 'span_num' has shape [2], expected [1, heads]", rhythm.rhythm_from_summaries, dict(good, span_num=good["span_num"][0]))
    bad = good["vert_sum"].copy()
    bad[0, 1, 2] = np.inf
    raises("summary of layer 0 head 1: vert_sum[2] is inf, expected a finite number", rhythm.rhythm_from_summaries, dict(good, vert_sum=bad))
    raises("response start 6 leaves no response", rhythm.rhythm_from_summaries, dict(good, response_start=6))
    raises("summary was computed with window 10 but params has window 5", rhythm.rhythm_from_summaries, good, params(window=5))
    raises("summary was computed with horizon (1, None) but params has horizon (10, 50)", rhythm.rhythm_from_summaries, good, Params.rl())
    raises("summary 'layers'[0] = 'a', expected a non-negative integer", rhythm.rhythm_from_summaries, dict(good, layers=["a"]))
    raises("layer 0 head 0 is given twice", rhythm.rhythm_from_summaries, dict(good, layers=[0, 0], span_num=np.ones((2, 2)), waad=np.zeros((2, 2, 4)), fai_sum=np.zeros((2, 2, 4)), vert_sum=np.zeros((2, 2, 4))))
    raises("summary = 3, expected a dict", rhythm.rhythm_from_summaries, 3)
    raises("waad: cannot read as a float64 array", rhythm.rhythm_from_summaries, dict(good, waad="x"))


# ----------------------------------------------------------------- docs/python.md

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "python.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_doc_example_runs_as_written(i):
    pytest.importorskip("safetensors")
    r = subprocess.run([sys.executable, "-c", BLOCKS[i]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    if i == 0:
        # The output shown under the first example is what it prints.
        shown = re.search(r"prints\n\n```text\n(.*?)```", DOC, flags=re.S).group(1)
        assert r.stdout == shown
