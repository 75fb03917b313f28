"""Per-token gamma through an FSDP-sharded model (accelerate's FSDP plugin, CPU, gloo).

    torchrun --nproc_per_node 2 tests/fsdp_gamma.py OUT_DIR STRATEGY

Every process shards countdown-tiny with FSDP2 (``fully_shard`` on each
decoder layer and the root over a gloo CPU mesh, as accelerate's FSDP2 plugin
does; accelerate itself turns FSDP off when ``cpu=True``), so no process
holds a whole weight, then probes the same fixed rollout batch (``rollout_batch``)
through the *wrapped* model with ``rhythm_gammas`` and saves its gamma to
OUT_DIR/rank{r}.pt, with the number of parameters it holds locally.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from countdown_trl import load_model  # noqa: E402
from rhythm.credit import RhythmConfig, rhythm_gammas, row_seed  # noqa: E402


def rollout_batch():
    """A fixed batch in TRL's layout: 4 rows, left-padded prompts, right-padded completions."""
    g = torch.Generator().manual_seed(5)
    pl, cl = [6, 9, 4, 9], [30, 12, 25, 1]
    pw, cw = max(pl), max(cl)
    pid = torch.zeros(4, pw, dtype=torch.long)
    pm = torch.zeros_like(pid)
    cid = torch.zeros(4, cw, dtype=torch.long)
    cm = torch.zeros_like(cid)
    for i, (a, b) in enumerate(zip(pl, cl)):
        pid[i, pw - a:] = torch.randint(1, 60, (a,), generator=g)
        pm[i, pw - a:] = 1
        cid[i, :b] = torch.randint(1, 60, (b,), generator=g)
        cm[i, :b] = 1
    return pid, pm, cid, cm


def main() -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    out_dir, strategy = Path(sys.argv[1]), sys.argv[2]
    out_dir.mkdir(parents=True, exist_ok=True)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = load_model()
    total = sum(p.numel() for p in model.parameters())
    mesh = torch.distributed.device_mesh.init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model.model.layers:  # what accelerate's FSDP2 plugin does with transformer_based_wrap
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    cfg = RhythmConfig(strategy, horizon=(2, 12), layers="all")
    seeds = [row_seed(0, 0, i) for i in range(4)]
    gam = rhythm_gammas(model, *rollout_batch(), cfg, seeds=seeds)
    local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
    rec = {"gamma": gam, "local_params": local, "total_params": total, "world": dist.get_world_size()}
    path = out_dir / f"rank{rank}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(rec, tmp)
    tmp.replace(path)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
