"""A whole evaluation run: predictions on instances, in parallel, resume-safe, with swebench's run report.

    summary = evaluate(instances, predictions, "runs", "my-run", backend="local", workers=2)

Outputs `out_dir/<run_id>/<instance_id>/{patch.diff, test_output.txt, report.json}`
(`instance.py`; a rerun skips an instance whose report.json is there for the same patch) and
`out_dir/<run_id>/summary.json` in the shape of swebench's run report, recomputed from the
report files, so an interrupted and resumed run counts every instance once. `validate_dataset`
checks a dataset: gold patches resolve, empty patches do not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swesrl.core.instances import Instance
from swesrl.envs.base import SandboxConfig
from swesrl.harness.grading import Status
from swesrl.harness.instance import (
    DEFAULT_TIMEOUT,
    PATCH,
    read_report,
    run_instance,
    write_instance_outputs,
)
from swesrl.harness.predictions import gold_predictions, match_predictions
from swesrl.harness.spec import DEFAULT_NAMESPACE
from swesrl.utils import Interrupted, OnProgress, UserError, atomic_write_json, parallel_map

log = logging.getLogger(__name__)

SUMMARY = "summary.json"


def make_summary(
    instances: list[Instance],
    predictions: dict[str, dict[str, Any]],
    run_dir: Path,
    input_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """swebench's run report (`make_run_report` shape, schema 2) from the report files on disk."""
    input_errors = dict(input_errors or {})
    ids = {s.value: [] for s in Status}
    completed, incomplete, errors = [], [], {}
    for inst in instances:
        iid = inst["instance_id"]
        if iid in input_errors:
            ids[Status.ERROR.value].append(iid)
            errors[iid] = input_errors[iid]
            continue
        if iid not in predictions:
            incomplete.append(iid)
            continue
        rep = read_report(run_dir / iid, iid)
        if rep is None:
            incomplete.append(iid)
            continue
        ids[rep["status"]].append(iid)
        if rep["status"] in (Status.RESOLVED.value, Status.UNRESOLVED.value):
            completed.append(iid)
        if rep.get("error"):
            errors[iid] = rep["error"]
    err = sorted(ids["error"] + ids["patch_apply_failed"] + ids["timeout"])
    submitted = sorted(set(predictions) | set(input_errors))
    return {
        "total_instances": len(instances),
        "submitted_instances": len(submitted),
        "completed_instances": len(completed),
        "resolved_instances": len(ids["resolved"]),
        "unresolved_instances": len(ids["unresolved"]),
        "empty_patch_instances": len(ids["empty_patch"]),
        "error_instances": len(err),
        "patch_apply_failed_instances": len(ids["patch_apply_failed"]),
        "timeout_instances": len(ids["timeout"]),
        "completed_ids": sorted(completed),
        "incomplete_ids": sorted(incomplete),
        "empty_patch_ids": sorted(ids["empty_patch"]),
        "submitted_ids": submitted,
        "resolved_ids": sorted(ids["resolved"]),
        "unresolved_ids": sorted(ids["unresolved"]),
        "error_ids": err,
        "patch_apply_failed_ids": sorted(ids["patch_apply_failed"]),
        "timeout_ids": sorted(ids["timeout"]),
        "errors": dict(sorted(errors.items())),
        "schema_version": 2,
    }


def evaluate(
    instances: list[Instance],
    predictions: list[dict[str, Any]] | dict[str, dict[str, Any]],
    out_dir: str | Path,
    run_id: str,
    backend: str = "local",
    workers: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    mirror: str | Path | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    config: SandboxConfig | None = None,
    allow_empty: bool = False,
    retry_errors: bool = False,
    input_errors: dict[str, str] | None = None,
    on_progress: OnProgress | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate predictions (SWE-bench JSONL rows) on instances; resume-safe; returns the summary.

    Instances whose report.json exists for the same patch are skipped (with `retry_errors`, those
    whose status is `error` run again; a changed prediction is graded again). Predictions for unknown ids and conflicting duplicates are logged and left
    out; instances without a prediction count as incomplete, as in swebench.

    Ctrl-C starts no further instance and abandons the running ones (their sandboxes die with the
    process), writes the summary of what is on disk and raises `swesrl.utils.Interrupted`.
    `on_progress` gets `(f"eval {run_id}", done, to do, counts)` after each instance.
    """

    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise UserError(f"bad run id {run_id!r}")
    config = (config or SandboxConfig()).model_copy(update={"backend": backend})
    preds_list = list(predictions.values()) if isinstance(predictions, dict) else list(predictions)
    by_id, errors, problems = match_predictions(instances, preds_list)
    errors.update(input_errors or {})
    for p in problems:
        log.warning("%s", p)
    run_dir = Path(out_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    todo = []
    for inst in instances:
        iid = inst["instance_id"]
        if iid not in by_id:
            continue
        rep = read_report(run_dir / iid, iid)
        if rep is not None and not (retry_errors and rep["status"] == Status.ERROR.value):
            try:
                same = (run_dir / iid / PATCH).read_text(encoding="utf-8") == (
                    by_id[iid].get("model_patch") or ""
                )
            except OSError:
                same = False
            if same:
                continue
            log.warning("%s: the prediction differs from the one graded in %s; grading it again", iid, run_id)
        todo.append(inst)
    n_done = len(by_id) - len(todo)
    if n_done:
        log.info("resuming %s: %d instance(s) already evaluated, %d to go", run_id, n_done, len(todo))
    counts = {"resolved": 0, "failed": 0}

    def one(inst: Instance) -> dict[str, Any]:
        pred = by_id[inst["instance_id"]]
        patch = pred.get("model_patch")
        rep, output = run_instance(
            inst, patch, config, mirror, timeout, namespace, allow_empty, pred.get("model_name_or_path", "")
        )
        write_instance_outputs(run_dir / inst["instance_id"], rep, patch, output)
        return rep

    n_finished = 0
    interrupted = False
    try:
        results = parallel_map(
            one,
            todo,
            workers,
            label=f"eval {run_id}",
            on_progress=on_progress,
            status=lambda: f"{counts['resolved']} resolved {counts['failed']} failed",
        )
        # daemon threads: on Ctrl-C nothing more starts and the running instances are abandoned
        with contextlib.closing(results):
            for inst, rep, exc in results:
                iid = inst["instance_id"]
                if exc is not None and not isinstance(exc, Exception):
                    raise exc
                if exc is not None:  # writing the outputs failed; the next run retries it
                    log.error("%s: %s", iid, exc)
                    rep = {
                        "instance_id": iid,
                        "status": Status.ERROR.value,
                        "resolved": False,
                        "error": str(exc),
                    }
                n_finished += 1
                counts["resolved" if rep["resolved"] else "failed"] += 1
                if rep["status"] == Status.ERROR.value:
                    log.warning("%s: error: %s", iid, rep.get("error"))
                if on_result is not None:
                    on_result(rep)
    except KeyboardInterrupt:
        interrupted = True
    summary = make_summary(instances, by_id, run_dir, errors)
    summary["run_id"] = run_id
    summary["input_problems"] = problems
    atomic_write_json(run_dir / SUMMARY, summary)
    if interrupted:
        raise Interrupted(n_done + n_finished, len(by_id), summary)
    return summary


def validate_dataset(
    instances: list[Instance],
    out_dir: str | Path,
    run_id: str,
    **kw: Any,
) -> dict[str, Any]:
    """`eval --gold`: the gold patch must resolve and the empty patch must not; lists broken instances.

    Runs `<run_id>.gold` (gold patches) and `<run_id>.empty` (tests on the unpatched base) and writes
    `<out_dir>/<run_id>.validation.json`.
    """
    gold = evaluate(instances, gold_predictions(instances), out_dir, f"{run_id}.gold", **kw)
    empty = evaluate(
        instances, gold_predictions(instances, empty=True), out_dir, f"{run_id}.empty", allow_empty=True, **kw
    )
    broken: dict[str, list[str]] = {}
    for inst in instances:
        iid = inst["instance_id"]
        why = []
        g = read_report(Path(out_dir) / f"{run_id}.gold" / iid, iid)
        e = read_report(Path(out_dir) / f"{run_id}.empty" / iid, iid)
        if g is None or g["status"] != Status.RESOLVED.value:
            status = g["status"] if g else "not run"
            why.append(f"gold patch: {status}" + (f" ({g['error']})" if g and g.get("error") else ""))
        if e is None or e["status"] == Status.RESOLVED.value:
            why.append("empty patch resolves (FAIL_TO_PASS tests pass without the fix)")
        elif e.get("tests_status"):
            p2p_fail = e["tests_status"]["PASS_TO_PASS"]["failure"]
            if p2p_fail:
                why.append(f"PASS_TO_PASS fails without the fix: {', '.join(p2p_fail[:3])}")
        if why:
            broken[iid] = why
    result = {
        "run_id": run_id,
        "total_instances": len(instances),
        "valid_instances": len(instances) - len(broken),
        "broken_instances": len(broken),
        "broken": broken,
        "gold_summary": gold,
        "empty_summary": empty,
    }
    atomic_write_json(Path(out_dir) / f"{run_id}.validation.json", result)
    return result
