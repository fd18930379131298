"""SWE-bench predictions: load them (JSONL, a JSON list, or SWE-agent's `{id: prediction}`),
make gold / empty ones, and match them to instances (duplicates, unknown ids)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from swesrl.core.instances import Instance
from swesrl.utils import UserError, read_utf8


def load_predictions(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """SWE-bench predictions (JSONL, a JSON list, or SWE-agent's `{id: prediction}`) and problems.

    A malformed line or entry is reported and left out; the rest load.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"predictions file not found: {p}")

    problems: list[str] = []
    rows: list[tuple[str, Any]] = []
    text = read_utf8(p)  # not UTF-8: UserError naming the first bad byte
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
        items = list(data.values()) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise UserError(f"{p}: expected a list of predictions or an {{instance_id: prediction}} object")
        rows = [(f"{p}: entry {i}", x) for i, x in enumerate(items, 1)]
    else:
        for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 is no line break
            if not line.strip():
                continue
            try:
                rows.append((f"{p}:{n}", json.loads(line)))
            except json.JSONDecodeError as e:
                problems.append(f"{p}:{n}: not valid JSON ({e.msg}); line skipped")
    preds = []
    for where, row in rows:
        if not isinstance(row, dict):
            problems.append(f"{where}: not a JSON object; skipped")
        elif not isinstance(row.get("instance_id"), str) or not row["instance_id"]:
            problems.append(f"{where}: no instance_id; skipped")
        elif row.get("model_patch") is not None and not isinstance(row["model_patch"], str):
            problems.append(f"{where}: model_patch of {row['instance_id']} is not a string; skipped")
        else:
            preds.append(row)
    return preds, problems


def gold_predictions(instances: Iterable[Instance], empty: bool = False) -> list[dict[str, Any]]:
    name = "empty" if empty else "gold"
    return [
        {
            "instance_id": i["instance_id"],
            "model_name_or_path": name,
            "model_patch": "" if empty else i["patch"],
        }
        for i in instances
    ]


def match_predictions(
    instances: list[Instance], predictions: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[str]]:
    """(usable predictions by id, input errors by id, problems). Duplicates with the same patch are
    merged; conflicting duplicates make that instance an input error; unknown ids are reported."""
    known = {i["instance_id"] for i in instances}
    by_id: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    problems: list[str] = []
    for pred in predictions:
        iid = pred["instance_id"]
        if iid not in known:
            problems.append(f"prediction for unknown instance id {iid!r}; skipped")
            continue
        if iid in by_id and (by_id[iid].get("model_patch") or "") != (pred.get("model_patch") or ""):
            errors[iid] = "several predictions with different patches; fix the predictions file"
        by_id.setdefault(iid, pred)
    for iid in errors:
        problems.append(f"{iid}: {errors[iid]}")
        by_id.pop(iid, None)
    return by_id, errors, problems
