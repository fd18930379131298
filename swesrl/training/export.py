"""Export SRL data for verl (the engine the paper trained on): parquet rows plus a reward module.

Each `srl.jsonl` row becomes one verl row:
`{data_source, prompt: [messages], ability, reward_model: {style: "rule", ground_truth: expert_action},
extra_info: {split, index, instance_id, step, n_steps}}`, and `DIR/srl_reward.py` defines
`compute_score(data_source, solution_str, ground_truth, extra_info=None)`, which scores exactly
like `srl_reward`. Point verl at them with
`data.train_files=DIR/train.parquet custom_reward_function.path=DIR/srl_reward.py
custom_reward_function.name=compute_score`.

With `compare="execution"` or `"mixed"` (data built with `swesrl data build --with-state`), each
row's `extra_info` also holds its `state` and the module scores by effects
(`training/exec_reward.py`): it keeps a pool of warm sandboxes per verl reward worker process, on
the machine that runs it (bubblewrap, the instances file and the repositories must be there; the
paths are written into the module as given). verl's default reward manager calls `compute_score`
one completion at a time, so completions run one after another there (the effect cache still
applies); its `batch` reward manager passes lists, which run in parallel over the pool.
"""

from __future__ import annotations

import random
from pathlib import Path

from swesrl.training.exec_reward import ExecutionConfig
from swesrl.training.srl import load_srl_dataset
from swesrl.utils import UserError

DATA_SOURCE = "swesrl/srl"

REWARD_MODULE = '''"""verl reward for SRL data exported by `swesrl export verl` (needs `pip install swe-srl`)."""

from swesrl.training.rewards import srl_reward

COMPARE = {compare!r}
REQUIRE_THINK = {require_think!r}


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    return srl_reward([solution_str], [ground_truth], compare=COMPARE, require_think=REQUIRE_THINK)[0]
'''

EXEC_REWARD_MODULE = '''"""verl reward for SRL data exported by `swesrl export verl --compare {compare}` (needs
`pip install swe-srl`, bubblewrap or docker, and the instances and repositories named below)."""

from swesrl.training.exec_reward import ExecutionConfig, ExecutionScorer, StepState, execution_reward

COMPARE = {compare!r}
REQUIRE_THINK = {require_think!r}
TEXT_WEIGHT = {text_weight!r}
EXECUTION = {execution!r}
_SCORER = None


def _scorer():
    global _SCORER
    if _SCORER is None:
        _SCORER = ExecutionScorer(ExecutionConfig.model_validate(EXECUTION), states={{}})
    return _SCORER


def _state(extra_info):
    st = (extra_info or {{}}).get("state")
    if not st:
        return None
    return StepState(extra_info["instance_id"], st.get("patch") or "", st.get("final_patch") or "")


def compute_score(data_source=None, solution_str=None, ground_truth=None, extra_info=None, **batch):
    """One score, or a list of scores when verl's batch reward manager passes lists."""
    if "solution_strs" in batch:
        solutions, truths, infos = batch["solution_strs"], batch["ground_truths"], batch["extra_infos"]
    else:
        solutions, truths, infos = [solution_str], [ground_truth], [extra_info]
    scorer = _scorer()
    states = [_state(i) for i in infos]
    scores = execution_reward(
        solutions, list(truths), scorer, mode=COMPARE, text_weight=TEXT_WEIGHT,
        require_think=REQUIRE_THINK, states=states,
    )
    return scores if "solution_strs" in batch else scores[0]
'''


def to_verl_rows(dataset, split: str, states: list[dict | None] | None = None) -> list[dict]:
    rows = []
    for i, row in enumerate(dataset):
        extra = {"split": split, "index": i, "instance_id": row["instance_id"], "step": row["step"]}
        if states is not None:
            st = states[i] or {}
            extra["state"] = (
                {"patch": st.get("patch", ""), "final_patch": st.get("final_patch", "")} if st else None
            )
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": row["prompt"],
                "ability": "swe",
                "reward_model": {"style": "rule", "ground_truth": row["expert_action"]},
                "extra_info": extra,
            }
        )
    return rows


def export_verl(
    data: str | Path,
    out_dir: str | Path,
    val_fraction: float = 0.0,
    seed: int = 0,
    compare: str = "text",
    require_think: bool = True,
    execution: dict | None = None,
    text_weight: float = 0.5,
) -> dict:
    """Write train.parquet (and test.parquet if val_fraction > 0) and srl_reward.py; return the counts.

    `execution` (compare `execution` / `mixed`): `ExecutionConfig` fields for the reward module
    (at least `instances`); the rows' states travel in `extra_info.state`."""
    from datasets import Dataset

    dataset = load_srl_dataset(data)
    states = None
    if compare in ("execution", "mixed"):
        cfg = ExecutionConfig.model_validate(execution or {})
        if not cfg.instances:
            raise UserError(f"--compare {compare} needs the instances file (--instances)")
        states = list(dataset["state"]) if "state" in dataset.column_names else []
        if not any(states):
            raise UserError(
                f"{data}: no row carries a `state`: build it with `swesrl data build --with-state`"
            )
        execution = cfg.model_dump(exclude_defaults=True) | {"instances": str(Path(cfg.instances).resolve())}
        if cfg.mirror:
            execution["mirror"] = str(Path(cfg.mirror).resolve())
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
        picked = [states[i] for i in rows] if states is not None else None
        Dataset.from_list(to_verl_rows(dataset.select(rows), split, picked)).to_parquet(
            str(out / f"{split}.parquet")
        )
        counts[split] = len(rows)
    if states is None:
        module = REWARD_MODULE.format(compare=compare, require_think=require_think)
    else:
        module = EXEC_REWARD_MODULE.format(
            compare=compare, require_think=require_think, text_weight=text_weight, execution=execution
        )
    (out / "srl_reward.py").write_text(module, encoding="utf-8")
    return {"out": str(out), **counts}
