"""RLVR on several CPU processes, for tests/training/test_rlvr.py (run it under accelerate launch / torchrun).

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 \
        tests/training/rlvr_multiprocess_run.py rlvr_tiny.yaml model.path=... data.instances=...

The real RLVR trainer, episodes, sandboxes and gloo collectives; each rank writes OUT/rank<R>.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from swesrl.training.rlvr import load_rlvr_config, train_rlvr


def main() -> None:
    torch.set_num_threads(1)
    cfg = load_rlvr_config(sys.argv[1], sys.argv[2:])
    summary = train_rlvr(cfg)
    rank = int(os.environ.get("RANK", "0"))
    result = {
        "rank": rank,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "global_step": summary["global_step"],
        "main_process": summary["main_process"],
    }
    (Path(cfg.output.dir) / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
