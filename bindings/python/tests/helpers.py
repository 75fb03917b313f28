"""Shared helpers of the PY-torch tests: paths, the CLI, a numpy reference summary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "fixtures" / "models"
COUNTDOWN = ROOT / "models" / "countdown-tiny"
MODELS = {
    "tiny-qwen3": FIXTURES / "tiny-qwen3",
    "tiny-qwen2": FIXTURES / "tiny-qwen2",
    "tiny-llama": FIXTURES / "tiny-llama",
    "countdown-tiny": COUNTDOWN,
}


def rhythm_cli() -> Optional[str]:
    """The release `rhythm` binary: $RHYTHM_BIN, this checkout's target, or PATH."""
    env = os.environ.get("RHYTHM_BIN")
    if env and Path(env).is_file():
        return env
    for p in (ROOT / "target" / "release" / "rhythm", ROOT / "target" / "debug" / "rhythm"):
        if p.is_file():
            return str(p)
    return shutil.which("rhythm")


def cli_maps(bin_: str, model_dir: Path, ids: list[int], p: int, out: Path) -> dict:
    """Runs `rhythm probe --layers all --out` and returns its tensors (numpy)."""
    from safetensors.numpy import load_file

    subprocess.run(
        [
            bin_,
            "probe",
            "--model",
            str(model_dir),
            "--ids",
            ",".join(map(str, ids)),
            "--response-start",
            str(p),
            "--layers",
            "all",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return load_file(str(out))


def reference_summary(
    attn: np.ndarray, p: int, window: int, horizon: tuple[int, Optional[int]], proximity: int
) -> dict:
    """The per-head sums of one layer's full maps ``[H, N, N]``, straight from SPEC."""
    a = attn.astype(np.float64)
    heads, n_tok, _ = a.shape
    t = np.arange(n_tok)[:, None]
    s = np.arange(n_tok)[None, :]
    d = t - s
    causal = d >= 0
    resp_rows = (t >= p) & causal
    dist = np.where(causal, d, 0)
    span = (a * np.where(resp_rows, dist, 0)).sum((1, 2))
    waad = (a * np.minimum(dist, window))[:, p:, :].sum(-1)
    lo, hi = horizon
    band = resp_rows & (d >= lo) & (s >= p)
    if hi is not None:
        band &= d <= hi
    fai = (a * band).sum(1)[:, p:]
    vert = (a * (resp_rows & (d >= proximity) & (s >= p))).sum(1)[:, p:]
    return {"span_num": span, "waad": waad, "fai_sum": fai, "vert_sum": vert}


def countdown_ids() -> tuple[list[int], int]:
    """A real countdown-tiny sequence (the README's right sample) and its P."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(COUNTDOWN / "tokenizer.json"))
    prompt = "nums: 89 22 78 target: 33\n"
    response = "<think>\n89-78=11 11*22=222 no\n89-78=11 11+22=33\n</think>\n<answer>89-78+22</answer>"
    p_ids = tok.encode(prompt).ids
    r_ids = tok.encode(response).ids
    return p_ids + r_ids, len(p_ids)
