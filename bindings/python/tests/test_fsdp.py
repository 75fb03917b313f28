"""FSDP2 over 2 CPU processes (gloo): the probe runs through the sharded model and gives one process's gamma."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from countdown_trl import load_model
from fsdp_gamma import rollout_batch
from rhythm.credit import RhythmConfig, rhythm_gammas, row_seed

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("strategy", ["coupled"])
def test_fsdp_two_processes_match_one(tmp_path, strategy):
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(29600 + os.getpid() % 1000),
           str(HERE / "fsdp_gamma.py"), str(tmp_path), strategy]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]
    # Each process holds about half of the weights: the model really is sharded.
    assert all(x["world"] == 2 and x["local_params"] < 0.6 * x["total_params"] for x in recs)
    one = rhythm_gammas(load_model(), *rollout_batch(), RhythmConfig(strategy, horizon=(2, 12), layers="all"),
                        seeds=[row_seed(0, 0, i) for i in range(4)])
    assert (one > 1).any()
    for x in recs:
        assert torch.equal(x["gamma"], one)
