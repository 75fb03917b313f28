"""The binding and the `rhythm score` CLI agree exactly on the same maps.

Random causal maps (several seeds, layers and heads, float32 and float16) are
written with safetensors; for every strategy and a few parameter sets, the
CLI's JSON and the Python call must give identical head groups, metrics,
selections and gamma (bit for bit: both read the same f32 values and run the
same Rust code path). Needs the release CLI: `cargo build --release -p
rhythm-cli`, or RHYTHM_BIN=/path/to/rhythm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import rhythm

safetensors_numpy = pytest.importorskip("safetensors.numpy")

ROOT = Path(__file__).resolve().parents[3]


def cli() -> str | None:
    env = os.environ.get("RHYTHM_BIN")
    if env:
        return env if Path(env).is_file() else None
    for p in (ROOT / "target" / "release" / "rhythm", ROOT / "target" / "debug" / "rhythm"):
        if p.is_file():
            return str(p)
    return shutil.which("rhythm")


BIN = cli()
pytestmark = pytest.mark.skipif(
    BIN is None, reason="no rhythm CLI: cargo build --release -p rhythm-cli (or set RHYTHM_BIN)"
)


def random_maps(rng: np.random.Generator, layers: int, heads: int, n: int) -> dict[int, np.ndarray]:
    """Causal softmax maps whose heads prefer different distances, so spans,
    WAAD and FAI vary (a random head per layer also gets a sink on token 0)."""
    t = np.arange(n)
    dist = (t[:, None] - t[None, :]).astype(np.float64)
    out = {}
    for layer in rng.choice(16, size=layers, replace=False):
        m = np.empty((heads, n, n), np.float64)
        for h in range(heads):
            scale = rng.uniform(0.05, 2.0)
            logits = rng.normal(0, 1.5, (n, n)) - scale * np.minimum(dist, 30)
            if rng.random() < 0.3:
                logits[:, 0] += 4
            logits[dist < 0] = -np.inf
            e = np.exp(logits - logits.max(1, keepdims=True))
            m[h] = e / e.sum(1, keepdims=True)
        out[int(layer)] = m.astype(np.float32)
    return out


def write(path: Path, maps: dict[int, np.ndarray], p: int, side: dict[str, np.ndarray], dtype) -> dict[int, np.ndarray]:
    tensors = {f"attn.{l}": m.astype(dtype) for l, m in maps.items()}
    tensors.update({k: v.astype(np.float32) for k, v in side.items()})
    safetensors_numpy.save_file(tensors, str(path), metadata={"response_start": str(p)})
    # What the Python side gets: exactly the arrays in the file.
    return {l: tensors[f"attn.{l}"] for l in maps}


# (CLI flags, the same parameters for Python)
PARAM_SETS = [
    ([], rhythm.Params.rl()),
    (
        ["--horizon", "1:end", "--q", "0.3", "--window", "5", "--k", "2", "--head-ratio", "0.5",
         "--gamma-amp", "2.0", "--alpha", "0.25", "--seed", "11"],
        rhythm.Params(horizon=(1, None), q=0.3, window=5, k=2, head_ratio=0.5, gamma_amp=2.0, alpha=0.25, seed=11),
    ),
    (
        ["--tau-waad", "1.5", "--tau-delta", "0.05", "--horizon", "2:7"],
        rhythm.Params(tau_waad=1.5, tau_delta=0.05, horizon=(2, 7)),
    ),
]

CASES = [
    # seed, layers, heads, N, P, dtype
    (0, 3, 4, 48, 12, np.float32),
    (1, 2, 6, 64, 5, np.float32),
    (2, 4, 2, 33, 20, np.float16),
    (3, 1, 3, 20, 0, np.float32),
    (4, 3, 5, 80, 40, np.float32),
]


def run_cli(path: Path, strategy: str, flags: list[str]) -> dict:
    out = subprocess.run(
        [BIN, "score", str(path), "--json", "--strategy", strategy, *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}" for c in CASES])
def test_binding_equals_cli(case, tmp_path):
    seed, layers, heads, n, p, dtype = case
    rng = np.random.default_rng(seed)
    maps = random_maps(rng, layers, heads, n)
    path = tmp_path / "maps.safetensors"
    if seed % 2:
        # Logits in the file: the CLI takes H[t] from the logits at t - 1.
        logits = rng.normal(0, 2, (n, 37)).astype(np.float32)
        file_maps = write(path, maps, p, {"logits": logits}, dtype)
        entropy = rhythm.token_entropy(logits)
    else:
        entropy = rng.uniform(0, 3, n).astype(np.float32)
        file_maps = write(path, maps, p, {"entropy": entropy}, dtype)
    checked = 0
    for flags, params in PARAM_SETS:
        r = rhythm.rhythm_from_maps(file_maps, p, params)
        via_summary = rhythm.rhythm_from_summaries(rhythm.summarize_maps(file_maps, p, params), params)
        assert via_summary.to_dict() == r.to_dict()
        for strategy in rhythm.STRATEGIES:
            want = run_cli(path, strategy, flags)
            g = rhythm.gamma(strategy, rhythm=r, entropy=entropy[p:].astype(np.float64), params=params)
            got = json.loads(json.dumps(r.to_dict(gamma=g)))  # tuples -> lists, as in the CLI's JSON
            assert got.keys() == want.keys()
            for key in want:
                assert got[key] == want[key], (strategy, flags, key)
            checked += 1
        # The selections are real: something is boosted and the sets differ.
        assert len(r.preplan) > 0 and len(r.anchors) > 0
    assert checked == len(PARAM_SETS) * 9


def test_cli_and_binding_fail_with_the_same_message(tmp_path):
    rng = np.random.default_rng(9)
    maps = random_maps(rng, 2, 2, 16)
    (l0, m0), (l1, m1) = sorted(maps.items())
    m1[1, 7, 3] = np.nan
    m0[0, 5, 9] = 0.25  # the CLI validates layer by layer, so layer l0 fails first
    path = tmp_path / "bad.safetensors"
    file_maps = write(path, maps, 4, {}, np.float32)
    out = subprocess.run([BIN, "score", str(path), "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    with pytest.raises(ValueError) as e:
        rhythm.rhythm_from_maps(file_maps, 4)
    msg = str(e.value)
    assert msg.startswith(f"attention map layer {l0} head 0 row 5: column 9 is 0.25"), msg
    # The CLI prefixes the file name: "error: FILE: <the same message>".
    assert out.stderr.strip() == f"error: {path}: {msg}"
    # Unknown strategy, bad q (checked before the file is read): the core's
    # messages, word for word.
    for flags, call in [
        (["--strategy", "best"], lambda: rhythm.gamma("best", 3)),
        (["--q", "1.5"], lambda: rhythm.Params(q=1.5)),
    ]:
        out = subprocess.run([BIN, "score", str(path), *flags], capture_output=True, text=True, timeout=60)
        with pytest.raises(ValueError) as e:
            call()
        # (a flag of the wrong form is refused by the flag parser, which names
        # the flag before the core's message)
        assert out.returncode != 0 and out.stderr.startswith("error: "), out.stderr
        assert out.stderr.strip().endswith(f"{e.value}"), out.stderr
