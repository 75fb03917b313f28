"""One RhythmGRPOTrainer step under `accelerate launch`; each process saves its rollouts and gamma.

    accelerate launch --multi_gpu --num_processes 2 tests/accel_gamma.py OUT_DIR STRATEGY

(On a machine without GPUs: ``--multi_gpu`` makes accelerate start the
processes with torchrun; ``use_cpu=True`` in the trainer's arguments then
gives a MULTI_CPU state with the gloo backend. ``--cpu`` would start one.)

Writes OUT_DIR/rank{r}.pt: this process's prompt/completion ids and masks,
the gamma it applied, the shaped advantages and the row seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from countdown_trl import countdown_reward, dataset, grpo_args, load_model, tokenizer  # noqa: E402
from rhythm.credit import row_seed  # noqa: E402
from rhythm.trl import RhythmConfig, RhythmGRPOTrainer  # noqa: E402


class Recording(RhythmGRPOTrainer):
    """Saves the first batch this process shapes (before the update), rows in global order."""

    out_dir: Path
    saved = False

    def _rhythm_set(self, batch, gam, seconds):
        plain_adv = batch["advantages"].clone()
        super()._rhythm_set(batch, gam, seconds)
        if self.saved:
            return
        self.saved = True
        bsz = gam.shape[0]
        rows = batch["rhythm_row"].cpu() if "rhythm_row" in batch else self.accelerator.process_index * bsz + torch.arange(bsz)
        order = torch.argsort(rows)
        rec = {k: batch[k].cpu()[order] for k in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")}
        rec.update(
            rows=rows[order],
            gamma=gam.cpu()[order],
            advantages=batch["advantages"].cpu()[order],
            plain_advantages=plain_adv.cpu()[order],
            seeds=[row_seed(self.rhythm.seed, 0, int(r)) for r in rows[order]],
            process_index=self.accelerator.process_index,
            num_processes=self.accelerator.num_processes,
            distributed_type=str(self.accelerator.state.distributed_type),
            backend=str(torch.distributed.get_backend()) if torch.distributed.is_initialized() else None,
        )
        path = self.out_dir / f"rank{self.accelerator.process_index}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(rec, tmp)
        tmp.replace(path)


def main() -> None:
    out_dir, strategy = Path(sys.argv[1]), sys.argv[2]
    out_dir.mkdir(parents=True, exist_ok=True)
    tr = Recording(
        model=load_model(),
        reward_funcs=countdown_reward,
        args=grpo_args(out_dir / "trainer", max_steps=1, max_completion_length=40),
        train_dataset=dataset(),
        processing_class=tokenizer(),
        rhythm=RhythmConfig(strategy=strategy, horizon=(2, 12)),
    )
    tr.out_dir = out_dir
    tr.train()


if __name__ == "__main__":
    main()
