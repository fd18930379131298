"""SRL on several CPU processes, for tests/training/test_srl_multiprocess.py (run it under torchrun).

    ACCELERATE_USE_CPU=true torchrun --standalone --nproc_per_node 2 \
        tests/training/srl_multiprocess_run.py --config srl_tiny.yaml -c model.path=... -c data.path=...

The real SRL trainer, data, generation and gloo collectives; only the reward is a test reward that
makes the filter's outcome known: every group generated on rank 1 scores a constant (all-equal
rewards, filtered), while on rank 0 each completion scores a hash of its text (distinct rewards,
kept). Rank 1 can only train on groups with signal if kept groups move to it from rank 0.
Each rank writes OUT/rank<R>.json: per step, the batch it trained on and its loss.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
from pathlib import Path

import torch

import swesrl.training.srl as srl

RANK = int(os.environ.get("RANK", "0"))
RECORDS: list[dict] = []


def rank_reward(completions, **kwargs):
    if RANK == 1:
        return [0.0] * len(completions)
    return [int(hashlib.md5(json.dumps(c).encode()).hexdigest()[:8], 16) / 2**32 for c in completions]


def make_recording_trainer_class():
    base = _make_trainer_class()

    class RecordingSRLTrainer(base):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            if self.model.training:
                adv = out["advantages"].view(-1, self.num_generations)  # (groups, G): groups stay contiguous
                RECORDS.append(
                    {
                        "rows": int(out["completion_ids"].shape[0]),
                        "groups_with_signal": int((adv.abs().sum(1) > 0).sum()),
                        "num_items_in_batch": int(out["num_items_in_batch"]),
                    }
                )
            return out

        def training_step(self, *args, **kwargs):
            loss = super().training_step(*args, **kwargs)
            RECORDS.append({"loss": float(loss)})
            return loss

    return RecordingSRLTrainer


_make_trainer_class = srl.make_trainer_class


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="srl_tiny.yaml")
    parser.add_argument("-c", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(1)
    srl.make_reward_func = lambda cfg: rank_reward
    srl.make_trainer_class = make_recording_trainer_class
    cfg = srl.load_srl_config(args.config, args.overrides)
    summary = srl.train_srl(cfg)
    losses = [r["loss"] for r in RECORDS if "loss" in r]
    result = {
        "rank": RANK,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "global_step": summary["global_step"],
        "main_process": summary["main_process"],
        "batches": [r for r in RECORDS if "rows" in r],
        "losses": losses,
        "losses_finite": all(math.isfinite(x) for x in losses),
    }
    (Path(cfg.output.dir) / f"rank{RANK}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
