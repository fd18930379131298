"""Batch runs: one sandbox and one episode per instance, in a thread pool, resumable.

Output: `OUT/<instance_id>/traj.json` (saved after every step) and `OUT/preds.jsonl` in SWE-bench's
predictions format (`instance_id, model_name_or_path, model_patch`), rewritten atomically after each
instance. An instance whose trajectory has an exit status other than `error` is finished and skipped.

The trajectories are the record; `preds.jsonl` is derived from them. A run killed after saving a
trajectory but before rewriting `preds.jsonl` loses no prediction: every run starts by rebuilding
`preds.jsonl` from the ended trajectories on disk (rows of the old file that no trajectory covers
are kept; lines that do not parse are dropped with a warning).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swesrl.agent.loop import AgentConfig, run_agent
from swesrl.core.instances import default_mirror
from swesrl.envs import env_for_instance
from swesrl.utils import OnProgress, atomic_write_json, atomic_write_text, parallel_map

log = logging.getLogger(__name__)


def traj_path(out: Path, instance_id: str) -> Path:
    return Path(out) / instance_id / "traj.json"


def ended_info(path: Path) -> dict | None:
    """The `info` of a saved trajectory whose episode ended (any exit status, `error` included), or
    None when it is missing, unreadable or still running."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))["info"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) and info.get("exit_status") else None


def finished_status(path: Path) -> str | None:
    """The exit status of a saved trajectory, or None when it is missing, unreadable or unfinished."""
    info = ended_info(path)
    status = info["exit_status"] if info else None
    return status if status != "error" else None


def prediction(instance_id: str, info: dict, model_name: str) -> dict:
    """A SWE-bench prediction row from an ended trajectory's info."""
    return {
        "instance_id": instance_id,
        "model_name_or_path": info.get("model") or model_name,
        "model_patch": info.get("submission") or "",
    }


def write_predictions(path: Path, preds: dict[str, dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in preds.values()))


def rebuild_predictions(out: Path, model_name: str) -> dict[str, dict]:
    """The predictions of `out` by instance id: the readable rows of `preds.jsonl`, then one row per
    ended trajectory `out/<instance_id>/traj.json` (a trajectory wins over the file's row)."""
    preds: dict[str, dict] = {}
    preds_path = out / "preds.jsonl"
    try:
        data = preds_path.read_bytes()
    except FileNotFoundError:
        data = b""
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            row = None
        if isinstance(row, dict) and isinstance(row.get("instance_id"), str):
            preds[row["instance_id"]] = row
        else:
            log.warning("%s:%d: not a prediction row; dropped (rebuilt from trajectories)", preds_path, n)
    for path in sorted(out.glob("*/traj.json")):
        info = ended_info(path)
        if info is not None:
            iid = path.parent.name
            preds.pop(iid, None)  # the trajectory's row goes after the kept ones
            preds[iid] = prediction(iid, info, model_name)
    return preds


def error_trajectory(instance: dict, model: Any, exc: BaseException) -> dict:
    info = {
        "exit_status": "error",
        "submission": "",
        "instance_id": instance["instance_id"],
        "model": getattr(model, "name", type(model).__name__),
        "n_steps": 0,
        "exception": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc)),
    }
    return {"instance_id": instance["instance_id"], "messages": [], "info": info}


def run_instance(instance: dict, model: Any, config: AgentConfig, out: Path, mirror: Path | None) -> dict:
    """One episode in a fresh sandbox; a failure to build or close the sandbox is an `error` trajectory."""

    path = traj_path(out, instance["instance_id"])
    traj = None
    try:
        with env_for_instance(instance, config.sandbox, mirror=mirror) as env:
            traj = run_agent(instance, model, env, config, traj_path=path)
    except Exception as e:
        if traj is None:
            traj = error_trajectory(instance, model, e)
            atomic_write_json(path, traj)
        else:
            log.warning("%s: closing the sandbox failed: %s", instance["instance_id"], e)
    return traj


def run_batch(
    instances: list[dict],
    model: Any,
    config: AgentConfig,
    out: str | Path,
    workers: int = 1,
    mirror: str | Path | None = None,
    instances_path: str | Path | None = None,
    redo: bool = False,
    model_for: Callable[[dict], Any] | None = None,
    label: str = "agent",
    on_progress: OnProgress | None = None,
) -> Counter:
    """Run every unfinished instance; returns a count of exit statuses (skipped ones included).
    `model_for(instance)`, when given, is each instance's model instead of `model` (scripted experts)."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if mirror is None and instances_path is not None:
        mirror = default_mirror(instances_path)
    preds_path = out / "preds.jsonl"
    model_name = getattr(model, "name", type(model).__name__)
    preds = rebuild_predictions(out, model_name)
    write_predictions(preds_path, preds)
    summary: Counter = Counter()
    finished = {}
    for inst in instances:
        status = None if redo else finished_status(traj_path(out, inst["instance_id"]))
        if status:
            summary[status] += 1
            finished[inst["instance_id"]] = status
    if finished:
        log.info("resuming: %d of %d instances already finished", len(finished), len(instances))

    def one(inst: dict) -> dict:
        return run_instance(inst, model_for(inst) if model_for else model, config, out, mirror)

    start = time.monotonic()
    results = parallel_map(
        one,
        instances,
        workers,
        done=lambda inst: inst["instance_id"] in finished,
        label=label,
        on_progress=on_progress,
        status=lambda: " ".join(f"{k}={v}" for k, v in sorted(summary.items())),
    )
    n = 0
    for inst, traj, exc in results:
        if exc is not None and not isinstance(exc, Exception):
            raise exc  # Ctrl-C: nothing more starts, the running episodes are abandoned
        if exc is not None:  # run_instance records its own failures; this is a last resort
            traj = error_trajectory(inst, model, exc)
            atomic_write_json(traj_path(out, inst["instance_id"]), traj)
        info = traj["info"]
        summary[info["exit_status"]] += 1
        preds[traj["instance_id"]] = prediction(traj["instance_id"], info, model_name)
        write_predictions(preds_path, preds)
        if info["exit_status"] == "error":
            log.warning("%s: error: %s", traj["instance_id"], info.get("exception", "?"))
        n += 1
    log.info("ran %d instances in %.1fs", n, time.monotonic() - start)
    return summary
