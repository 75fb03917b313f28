"""The streamed torch probe against full eager maps, rhythm-model's maps, and plain logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from helpers import MODELS, cli_maps, countdown_ids, reference_summary, rhythm_cli
from rhythm.torch import ATTN_IMPLEMENTATION, probe, probe_batch, register, resolve_layers, sampled_layers

KEYS = ("span_num", "waad", "fai_sum", "vert_sum")


def load(name: str, dtype=torch.float32, attn: str = "eager"):
    return AutoModelForCausalLM.from_pretrained(MODELS[name], dtype=dtype, attn_implementation=attn).eval()


def sequence(name: str, model) -> tuple[list[int], int]:
    if name == "countdown-tiny":
        return countdown_ids()
    g = torch.Generator().manual_seed(7)
    return torch.randint(1, model.config.vocab_size, (41,), generator=g).tolist(), 13


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference over the largest magnitude of the reference."""
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(1e-30, np.abs(b).max()))


def eager_stats(logits: torch.Tensor, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    lp = torch.log_softmax(logits.double(), -1)
    ent = np.zeros(len(ids))
    ent[1:] = (-(lp.exp() * lp).sum(-1))[:-1].numpy()
    tok = np.zeros(len(ids))
    tok[1:] = lp[:-1].gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()
    return ent, tok


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("horizon", [(3, 9), (1, None)])
def test_summaries_match_eager_maps(name, horizon):
    model = load(name)
    ids, p = sequence(name, model)
    with torch.no_grad():
        ref = model(torch.tensor([ids]), output_attentions=True)
    # Blocks of 5 rows straddle the prompt/response boundary; LM-head blocks of 7 rows.
    s = probe(model, ids, p, layers="all", window=6, horizon=horizon, proximity=4, lm_block=7)
    assert s["layers"] == list(range(model.config.num_hidden_layers))
    assert (s["response_start"], s["seq_len"], s["horizon"]) == (p, len(ids), horizon)
    heads, n = model.config.num_attention_heads, len(ids) - p
    assert s["waad"].shape == (len(s["layers"]), heads, n) and s["span_num"].shape == (len(s["layers"]), heads)
    for i, layer in enumerate(s["layers"]):
        r = reference_summary(ref.attentions[layer][0].numpy(), p, 6, horizon, 4)
        for k in KEYS:
            assert s[k].dtype == np.float64
            assert rel_err(s[k][i], r[k]) <= 1e-5, (name, layer, k)
    ent, tok = eager_stats(ref.logits[0], ids)
    assert np.abs(s["entropy"] - ent).max() <= 1e-4 and s["entropy"][0] == 0.0
    assert np.abs(s["logprobs"] - tok).max() <= 1e-4 and s["logprobs"][0] == 0.0
    # The model is back on its own attention after the probe.
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("name", list(MODELS))
def test_summaries_match_rhythm_model(name, tmp_path):
    """rhythm-model's captured maps (the Rust CLI), summarised per SPEC, against the torch probe."""
    bin_ = rhythm_cli()
    if bin_ is None:
        pytest.skip("no rhythm CLI (build it: cargo build --release -p rhythm-cli, or set RHYTHM_BIN)")
    model = load(name)
    ids, p = sequence(name, model)
    maps = cli_maps(bin_, MODELS[name], ids, p, tmp_path / "maps.safetensors")
    s = probe(model, ids, p, layers="all")
    for i, layer in enumerate(s["layers"]):
        r = reference_summary(maps[f"attn.{layer}"], p, 10, (10, 50), 4)
        for k in KEYS:
            assert rel_err(s[k][i], r[k]) <= 1e-5, (name, layer, k, rel_err(s[k][i], r[k]))
    # The Rust logits give the same entropies and log-probabilities.
    ent, tok = eager_stats(torch.from_numpy(maps["logits"]), ids)
    assert np.abs(s["entropy"] - ent).max() <= 1e-4
    assert np.abs(s["logprobs"] - tok).max() <= 1e-4
    try:
        from rhythm import summarize_maps  # PY-core's binding
    except ImportError:
        return
    ref = summarize_maps(maps, response_start=p)
    for k in KEYS:
        assert rel_err(s[k], np.asarray(ref[k])) <= 1e-5, k


@pytest.mark.parametrize("name", list(MODELS))
def test_attention_function_is_the_models_own(name):
    """Outside a probe "rhythm_probe" is sdpa itself; inside, probed layers use the same kernel."""
    model = load(name, attn="sdpa")
    ids, p = sequence(name, model)
    x = torch.tensor([ids])
    with torch.no_grad():
        plain = model(x).logits
        model.set_attn_implementation(register())
        assert model.config._attn_implementation == ATTN_IMPLEMENTATION
        ours = model(x).logits
        model.set_attn_implementation("sdpa")
    assert torch.equal(ours, plain)
    # The probe's entropies and log-probabilities are the plain forward's (all layers probed).
    s = probe(model, ids, p, layers="all")
    ent, tok = eager_stats(plain[0], ids)
    assert np.abs(s["logprobs"] - tok).max() <= 1e-5 and np.abs(s["entropy"] - ent).max() <= 1e-5


def trl_batch(vocab: int, prompts=(5, 9, 3), completions=(12, 4, 9), seed=1):
    """Rows in TRL's layout: left-padded prompts | right-padded completions."""
    g = torch.Generator().manual_seed(seed)
    pw, cw = max(prompts), max(completions)
    ids = torch.zeros(len(prompts), pw + cw, dtype=torch.long)
    mask = torch.zeros_like(ids)
    rows = []
    for i, (a, b) in enumerate(zip(prompts, completions)):
        seq = torch.randint(1, vocab, (a + b,), generator=g)
        ids[i, pw - a : pw + b] = seq
        mask[i, pw - a : pw + b] = 1
        rows.append((seq.tolist(), a))
    return ids, mask, pw, rows


@pytest.mark.parametrize("name", ["tiny-qwen3", "tiny-llama", "countdown-tiny"])
def test_padded_batch_equals_one_row_each(name):
    """probe_batch over TRL's layout (and in forwards of 2 rows) equals probe of each row alone."""
    model = load(name, attn="sdpa")
    ids, mask, pw, rows = trl_batch(model.config.vocab_size)
    for bs in (None, 2):
        out = probe_batch(model, ids, pw, mask, layers="all", horizon=(2, 6), batch_size=bs)
        assert len(out) == len(rows)
        for (seq, p), s in zip(rows, out):
            one = probe(model, seq, p, layers="all", horizon=(2, 6))
            assert (s["response_start"], s["seq_len"]) == (p, len(seq))
            for k in KEYS + ("entropy", "logprobs"):
                assert s[k].shape == one[k].shape, k
                assert rel_err(s[k], one[k]) <= 1e-5, (name, bs, k, rel_err(s[k], one[k]))
    # Outside the probe "rhythm_probe" is sdpa on padded batches and with the KV cache.
    with torch.no_grad():
        plain = model(ids, attention_mask=mask).logits
        gen = model.generate(ids[:1, pw - 5 :], max_new_tokens=6, do_sample=False)
        model.set_attn_implementation(register())
        ours = model(ids, attention_mask=mask).logits
        o_gen = model.generate(ids[:1, pw - 5 :], max_new_tokens=6, do_sample=False)
    assert torch.equal(ours, plain) and torch.equal(o_gen, gen)


def test_batch_errors():
    model = load("tiny-qwen3")
    ids, mask, pw, _ = trl_batch(96)
    holes = mask.clone()
    holes[0, pw + 2] = 0
    with pytest.raises(ValueError, match="row 0: real tokens are not contiguous"):
        probe_batch(model, ids, pw, holes)
    with pytest.raises(ValueError, match="2 response_starts for 3 rows"):
        probe_batch(model, ids, [pw, pw], mask)
    with pytest.raises(ValueError, match="attention_mask shape"):
        probe_batch(model, ids, pw, mask[:, 1:])
    with pytest.raises(ValueError, match="batch_size 0"):
        probe_batch(model, ids, pw, mask, batch_size=0)
    with pytest.raises(ValueError, match="input_ids dtype"):
        probe_batch(model, ids.float(), pw, mask)
    empty = mask.clone()
    empty[1, pw:] = 0  # a row whose response is empty
    assert probe_batch(model, ids, pw, empty)[1] is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_summaries_close_to_f64_maps(dtype):
    """bf16/f16 model: float64 summaries near the float64 maps of the f32 model; output is sdpa's."""
    f32 = load("countdown-tiny")
    low = load("countdown-tiny", dtype=dtype, attn="sdpa")
    ids, p = countdown_ids()
    with torch.no_grad():
        ref = f32(torch.tensor([ids]), output_attentions=True)
    b = probe(low, ids, p, layers="all")
    assert b["waad"].dtype == np.float64
    worst = {}
    for i, layer in enumerate(b["layers"]):
        r = reference_summary(ref.attentions[layer][0].numpy(), p, 10, (10, 50), 4)
        for k in KEYS:
            worst[k] = max(worst.get(k, 0.0), rel_err(b[k][i], r[k]))
    print(f"{dtype}: worst relative error against float64 maps", {k: f"{v:.2e}" for k, v in worst.items()})
    assert all(v < 0.05 for v in worst.values()), worst
    x = torch.tensor([ids])
    with torch.no_grad():
        plain = low(x).logits
        low.set_attn_implementation(register())
        ours = low(x).logits
    assert torch.equal(ours, plain)


def test_layer_selection_and_errors():
    assert sampled_layers(36) == [12, 15, 18, 21, 24]
    assert sampled_layers(4) == [1, 2]
    assert sampled_layers(28) == [9, 11, 14, 16, 18]  # 9 + round_half_up(0, 2.25, 4.5, 6.75, 9)
    assert resolve_layers("all", 3) == [0, 1, 2]
    assert resolve_layers([2, 0, 2], 3) == [0, 2]
    with pytest.raises(ValueError, match="layers \\[5\\]"):
        resolve_layers([5], 3)
    with pytest.raises(ValueError, match="'some'"):
        resolve_layers("some", 3)
    model = load("tiny-qwen3")
    s = probe(model, list(range(1, 20)), 5)
    assert s["layers"] == sampled_layers(3) == [1, 2]
    with pytest.raises(ValueError, match="response_start 20"):
        probe(model, list(range(1, 20)), 20)
    with pytest.raises(ValueError, match="response_start 0"):
        probe(model, list(range(1, 20)), 0)
    with pytest.raises(ValueError, match="horizon"):
        probe(model, list(range(1, 20)), 5, horizon=(9, 3))
    with pytest.raises(ValueError, match="input_ids shape"):
        probe(model, torch.ones(2, 5, dtype=torch.long), 2)


@pytest.mark.parametrize("name", list(MODELS))
def test_rhythm_matches_cli_stream_json(name):
    """`rhythm probe --stream --json` against the binding's rhythm of the torch summaries."""
    import json
    import subprocess

    rhythm = pytest.importorskip("rhythm")
    bin_ = rhythm_cli()
    if bin_ is None or not hasattr(rhythm, "rhythm_from_summaries"):
        pytest.skip("needs the rhythm CLI and the Rust binding")
    model = load(name)
    ids, p = sequence(name, model)
    horizon = (2, 12)
    cli = json.loads(
        subprocess.run(
            [bin_, "probe", "--model", str(MODELS[name]), "--ids", ",".join(map(str, ids)), "--response-start",
             str(p), "--layers", "all", "--stream", "--json", "--horizon", "2:12", "--strategy", "coupled"],
            check=True, capture_output=True, text=True, timeout=120,
        ).stdout
    )
    s = probe(model, ids, p, layers="all", horizon=horizon)
    params = rhythm.Params(horizon=horizon)
    r = rhythm.rhythm_from_summaries(s, params=params)
    ours = r.to_dict(gamma=r.gamma("coupled"))
    for k in ("waad", "fai", "delta"):
        assert rel_err(np.array(ours[k]), np.array(cli[k], dtype=float)) <= 1e-5, k
    for k in ("positions", "preplan", "anchors", "dominated", "intro", "gamma"):
        assert list(map(float, ours[k])) == list(map(float, cli[k])), k
    for k in ("local", "global"):
        assert [list(x) for x in ours["heads"][k]] == cli["heads"][k], k


def test_sampled_layers_match_the_binding():
    rhythm = pytest.importorskip("rhythm")
    if not hasattr(rhythm, "sample_layers"):
        pytest.skip("the Rust binding is not installed")
    for n in range(1, 100):
        assert sampled_layers(n) == list(rhythm.sample_layers(n)), n
