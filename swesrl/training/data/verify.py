"""`swesrl data verify`: does an expert trajectory's action sequence really solve its task?

(`replay_states` replays the same actions step by step for `swesrl data build --with-state`: the
workspace diff before each step, the state the execution reward restores.)

Each trajectory is turned into the agent's own message format, replayed in a fresh sandbox by the
agent loop with the `replay:` model (the expert's replies, in order), and the resulting patch is
graded with the harness (`grade_patch`: FAIL_TO_PASS and PASS_TO_PASS tests). Trajectories that
reproduce a resolving patch are written to the filtered file, in this project's trajectory format
with `info.resolved = true`, so `swesrl data build --only-resolved` can train on exactly them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from swesrl.agent.loop import run_agent
from swesrl.agent.models import get_model
from swesrl.core.actions import FormatError, parse_action
from swesrl.core.trajectories import Dropped, Trajectory, iter_trajectories
from swesrl.envs import env_for_instance
from swesrl.envs.tools import execute_action
from swesrl.harness import grade_patch
from swesrl.training.data.steps import agent_messages
from swesrl.utils import OnProgress, parallel_map

log = logging.getLogger(__name__)


def to_agent_trajectory(traj: Trajectory, config: Any, instance: dict | None = None) -> dict:
    """A normalised trajectory in this project's format (`{instance_id, messages, info}`), e.g. for `replay:`."""
    return {
        "instance_id": traj["instance_id"],
        "messages": agent_messages(traj, config, instance),
        "info": {**traj["info"], "source": traj["source"], "source_format": traj["source_format"]},
    }


def verify_one(traj: Trajectory, instance: dict, config: Any, mirror: str | Path | None) -> dict:
    """Replay one trajectory in a sandbox and grade the patch; returns a result row."""

    row: dict[str, Any] = {"instance_id": traj["instance_id"], "source": traj["source"], "resolved": False}
    recorded = to_agent_trajectory(traj, config, instance)
    with tempfile.TemporaryDirectory(prefix="swesrl-verify-") as tmp:
        replay_file = Path(tmp) / "expert.json"
        replay_file.write_text(json.dumps(recorded), encoding="utf-8")
        model = get_model(f"replay:{replay_file}")
        with env_for_instance(instance, config.sandbox, mirror) as env:
            replayed = run_agent(instance, model, env, config)
    info = replayed["info"]
    row["exit_status"] = info.get("exit_status")
    row["n_steps"] = info.get("n_steps")
    patch = info.get("submission") or ""
    row["patch_lines"] = patch.count("\n")
    if info.get("exit_status") == "error":
        row["error"] = info.get("exception", "")
    if not patch.strip():
        row["error"] = row.get("error") or "empty patch"
        return row | {"trajectory": replayed}
    report = grade_patch(instance, patch, config.sandbox, mirror)
    row["resolved"] = bool(report.get("resolved"))
    row["report"] = {k: report[k] for k in ("resolved", "status") if k in report}
    replayed["info"]["resolved"] = row["resolved"]
    return row | {"trajectory": replayed}


def replay_states(traj: Trajectory, instance: dict, config: Any, mirror: str | Path | None) -> dict:
    """Replay the expert's actions in one fresh sandbox, as the agent loop runs them (the same tools
    and `command_timeout`); return `{"patches": [workspace diff against base_commit before step k,
    one per step], "final_patch": the diff at the end (what `submit` submits), "matches": whether it
    equals the trajectory's recorded submission (None when none was recorded)}`.

    Steps without a usable call change nothing; the replay stops at the first `submit`."""
    patches: list[str] = []
    patch = ""
    with env_for_instance(instance, config.sandbox, mirror) as env:
        for step in traj["steps"]:
            patches.append(patch)
            if step.action is None:
                continue
            try:
                _, action = parse_action(step.action)
            except FormatError:
                continue
            if action.name == "submit":
                break
            execute_action(env, action, timeout=config.command_timeout)
            if not (action.name == "str_replace_editor" and action.params.get("command") == "view"):
                patch = env.diff()
    patches += [patch] * (len(traj["steps"]) - len(patches))
    recorded = (traj.get("info") or {}).get("submission")
    matches = (
        None if not isinstance(recorded, str) or not recorded.strip() else recorded.strip() == patch.strip()
    )
    return {"patches": patches, "final_patch": patch, "matches": matches}


def _safe_verify(traj: Trajectory, instance: dict, config: Any, mirror: str | Path | None) -> dict:
    try:
        return verify_one(traj, instance, config, mirror)
    except Exception as e:  # one broken sandbox must not stop the run
        log.warning("verify %s failed: %s", traj["instance_id"], e)
        return {
            "instance_id": traj["instance_id"],
            "source": traj["source"],
            "resolved": False,
            "error": f"{type(e).__name__}: {e}",
        }


def verify_trajectories(
    paths: list[str | Path],
    instances: dict[str, dict],
    out_file: str | Path,
    config: Any,
    mirror: str | Path | None = None,
    on_progress: OnProgress | None = None,
    workers: int = 1,
) -> dict:
    """Verify every trajectory (`workers` sandboxes at a time, `utils.parallel_map`); write the
    resolving ones to `out_file` (JSONL, input order, each as soon as those before it are done);
    return the summary. `on_progress("verifying", done, total, "<n> resolved")` after each."""
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    dropped: list[dict] = []
    todo: list[tuple[int, Trajectory, dict]] = []
    for item in iter_trajectories(paths):
        if isinstance(item, Dropped):
            dropped.append(vars(item))
            continue
        inst = instances.get(item["instance_id"])
        if inst is None:
            why = f"{item['instance_id']} not in --instances"
            dropped.append(vars(Dropped(item["source"], "no_instance", why)))
            continue
        todo.append((len(todo), item, inst))
    finished: dict[int, dict] = {}
    resolved = [0]
    with open(out, "w", encoding="utf-8") as f:
        rows = parallel_map(
            lambda t: _safe_verify(t[1], t[2], config, mirror),
            todo,
            workers,
            label="verifying",
            on_progress=on_progress,
            status=lambda: f"{resolved[0]} resolved",
        )
        with contextlib.closing(rows):
            for (i, _, _), row, exc in rows:
                if exc is not None:  # _safe_verify turns errors into rows: this is Ctrl-C or worse
                    raise exc
                resolved[0] += bool(row["resolved"])
                finished[i] = row
                while len(results) in finished:  # input order
                    row = finished.pop(len(results))
                    traj = row.pop("trajectory", None)
                    if row["resolved"] and traj is not None:
                        f.write(json.dumps(traj, ensure_ascii=False) + "\n")
                        f.flush()
                    results.append(row)
    n_ok = sum(r["resolved"] for r in results)
    return {
        "verified": len(results),
        "resolved": n_ok,
        "unresolved": len(results) - n_ok,
        "results": results,
        "dropped": dropped,
        "out": str(out),
    }
