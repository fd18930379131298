"""Export SRL data for verl (the engine the paper trained on): parquet rows plus a reward module.

Each `srl.jsonl` row becomes one verl row:
`{data_source, prompt: [messages], ability, reward_model: {style: "rule", ground_truth: expert_action},
extra_info: {split, index, instance_id, step, n_steps}}`, and `DIR/srl_reward.py` defines
`compute_score(data_source, solution_str, ground_truth, extra_info=None)`, which scores exactly
like `srl_reward`. Point verl at them with
`data.train_files=DIR/train.parquet custom_reward_function.path=DIR/srl_reward.py
custom_reward_function.name=compute_score`.
"""

from __future__ import annotations

import random
from pathlib import Path

from swesrl.training.srl import load_srl_dataset

DATA_SOURCE = "swesrl/srl"

REWARD_MODULE = '''"""verl reward for SRL data exported by `swesrl export verl` (needs `pip install swe-srl`)."""

from swesrl.training.rewards import srl_reward

COMPARE = {compare!r}
REQUIRE_THINK = {require_think!r}


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    return srl_reward([solution_str], [ground_truth], compare=COMPARE, require_think=REQUIRE_THINK)[0]
'''


def to_verl_rows(dataset, split: str) -> list[dict]:
    return [
        {
            "data_source": DATA_SOURCE,
            "prompt": row["prompt"],
            "ability": "swe",
            "reward_model": {"style": "rule", "ground_truth": row["expert_action"]},
            "extra_info": {
                "split": split,
                "index": i,
                "instance_id": row["instance_id"],
                "step": row["step"],
            },
        }
        for i, row in enumerate(dataset)
    ]


def export_verl(
    data: str | Path,
    out_dir: str | Path,
    val_fraction: float = 0.0,
    seed: int = 0,
    compare: str = "text",
    require_think: bool = True,
) -> dict:
    """Write train.parquet (and test.parquet if val_fraction > 0) and srl_reward.py; return the counts."""
    from datasets import Dataset

    dataset = load_srl_dataset(data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    idx = list(range(len(dataset)))
    random.Random(seed).shuffle(idx)
    n_val = int(len(idx) * val_fraction)
    splits = {"train": sorted(idx[n_val:]), "test": sorted(idx[:n_val])}
    counts = {}
    for split, rows in splits.items():
        if not rows:
            continue
        Dataset.from_list(to_verl_rows(dataset.select(rows), split)).to_parquet(str(out / f"{split}.parquet"))
        counts[split] = len(rows)
    (out / "srl_reward.py").write_text(
        REWARD_MODULE.format(compare=compare, require_think=require_think), encoding="utf-8"
    )
    return {"out": str(out), **counts}
