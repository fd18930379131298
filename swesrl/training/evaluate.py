"""How good a policy is on held-out tasks, two ways: resolve rate (the agent loop in sandboxes, patches
graded by the harness) and step similarity (the mean `srl_reward` of the policy's greedy action against
the expert's on held-out step instances), each for all tasks and per held-out group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from swesrl.agent.batch import run_batch
from swesrl.agent.loop import AgentConfig
from swesrl.agent.models import HFModel
from swesrl.harness import evaluate
from swesrl.tasks.splits import GROUPS, group_of
from swesrl.training.rewards import FORMAT_FAILURE, srl_reward
from swesrl.utils import OnProgress, atomic_write_text


def ratio(a: float, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def greedy_actions(
    model: HFModel, rows: list[dict], sampling: dict, label: str = "", on_progress: OnProgress | None = None
) -> list[str]:
    """The model's reply to each step instance's prompt, in batches of 8."""
    report = on_progress or (lambda *a: None)
    completions: list[str] = []
    for i in range(0, len(rows), 8):
        chunk = rows[i : i + 8]
        completions += [o[0] for o in model.generate_batch([r["prompt"] for r in chunk], 1, **dict(sampling))]
        report(label, len(completions), len(rows), "")
    return completions


def evaluate_policy(
    name: str,
    model_dir: Path,
    tasks: list[dict],
    step_rows: list[dict],
    config: AgentConfig,
    folder: Path,
    mirror: Path,
    workers: int = 1,
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    """Resolve rate and step similarity of the model in `model_dir` on `tasks` (and their rows of
    `step_rows`); writes the agent runs, the harness reports and `steps.jsonl` under `folder`."""
    model = HFModel(
        str(model_dir), device="cpu", max_new_tokens=int(config.sampling.get("max_new_tokens", 128))
    )
    run_batch(
        tasks,
        model,
        config,
        folder / "runs",
        workers=workers,
        mirror=mirror,
        label=f"agent ({name})",
        on_progress=on_progress,
    )
    preds = [json.loads(line) for line in (folder / "runs" / "preds.jsonl").read_text().splitlines() if line]
    evaluate(
        tasks,
        preds,
        folder,
        "harness",
        backend="local",
        workers=workers,
        timeout=120,
        mirror=mirror,
        on_progress=on_progress,
    )
    resolved = {}
    for inst in tasks:
        rep = json.loads((folder / "harness" / inst["instance_id"] / "report.json").read_text())
        resolved[inst["instance_id"]] = bool(rep[inst["instance_id"]]["resolved"])
    ids = {i["instance_id"] for i in tasks}
    rows = [r for r in step_rows if r["instance_id"] in ids]
    completions = greedy_actions(model, rows, config.sampling, f"step similarity ({name})", on_progress)
    rewards = srl_reward(completions, [r["expert_action"] for r in rows])
    atomic_write_text(
        folder / "steps.jsonl",
        "".join(
            json.dumps({"instance_id": r["instance_id"], "step": r["step"], "completion": c, "reward": w})
            + "\n"
            for r, c, w in zip(rows, completions, rewards, strict=True)
        ),
    )
    by_id = {i["instance_id"]: i for i in tasks}
    metrics: dict[str, Any] = {"model": str(model_dir)}
    for g in ("all", *GROUPS):
        gids = [i for i in by_id if g == "all" or group_of(by_id[i]) == g]
        rw = [w for r, w in zip(rows, rewards, strict=True) if r["instance_id"] in gids]
        metrics[g] = {
            "tasks": len(gids),
            "resolved": sum(resolved[i] for i in gids),
            "resolve_rate": ratio(sum(resolved[i] for i in gids), len(gids)),
            "step_instances": len(rw),
            "step_similarity": ratio(sum(rw), len(rw)),
            "exact_actions": ratio(sum(w == 1.0 for w in rw), len(rw)),
            "format_failures": ratio(sum(w == FORMAT_FAILURE for w in rw), len(rw)),
        }
    by_step: dict[int, list[float]] = {}
    for r, w in zip(rows, rewards, strict=True):
        by_step.setdefault(r["step"], []).append(w)
    metrics["step_similarity_by_step"] = {str(k): ratio(sum(v), len(v)) for k, v in sorted(by_step.items())}
    metrics["resolved_ids"] = sorted(i for i, ok in resolved.items() if ok)
    return metrics
