"""`accelerate launch --num_processes 2` (CPU, gloo): the same per-token gamma as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from countdown_trl import load_model
from rhythm.trl import RhythmConfig, mix_seed, rhythm_gammas

HERE = Path(__file__).resolve().parent


def _binding_ready() -> bool:
    try:
        import rhythm
    except ImportError:
        return False
    return hasattr(rhythm, "gamma")


def _pad_right(ts: list[torch.Tensor], width: int) -> torch.Tensor:
    return torch.stack([torch.nn.functional.pad(t, (0, width - t.shape[-1])) for t in ts])


@pytest.mark.parametrize("strategy", ["coupled", "random"])
def test_two_processes_match_one(tmp_path, strategy):
    if not _binding_ready():
        pytest.skip("the Rust binding (rhythm.gamma) is not installed")
    accel = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accel),
        "launch",
        "--multi_gpu",  # torchrun; the trainer's use_cpu=True makes it MULTI_CPU over gloo
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(29500 + os.getpid() % 1000),
        str(HERE / "accel_gamma.py"),
        str(tmp_path),
        strategy,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]
    assert [x["process_index"] for x in recs] == [0, 1] and recs[0]["num_processes"] == 2
    assert recs[0]["backend"] == "gloo" and recs[0]["distributed_type"].endswith("MULTI_CPU")
    # The same rollouts in one process: all rows, global order, one gamma call.
    pw = max(x["prompt_ids"].shape[1] for x in recs)
    cw = max(x["completion_ids"].shape[1] for x in recs)

    def left(key):  # prompts are left-padded
        return torch.cat([torch.nn.functional.pad(x[key], (pw - x[key].shape[1], 0)) for x in recs])

    def right(key):
        return torch.cat([_pad_right(list(x[key]), cw) for x in recs])

    b = sum(x["completion_ids"].shape[0] for x in recs)
    seeds = [mix_seed(mix_seed(0 ^ 0x5EED, 0), i) for i in range(b)]
    assert seeds == recs[0]["seeds"] + recs[1]["seeds"]
    one = rhythm_gammas(
        load_model(),
        left("prompt_ids"),
        left("prompt_mask"),
        right("completion_ids"),
        right("completion_mask"),
        RhythmConfig(strategy=strategy, horizon=(2, 12)),
        seeds=seeds,
    )
    two = right("gamma")
    mask = right("completion_mask").bool()
    assert mask.sum() > 0
    assert torch.equal(one[mask], two[mask])
    assert (two[mask] > 1).any()
