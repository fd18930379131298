"""SWE-bench-schema instances: load from JSON / JSONL / parquet, validate, locate their repository.

Repositories of local instances live in a mirror folder holding `<owner>__<name>.git` (bare
repositories or git bundles named `<owner>__<name>.bundle`); for an instances file the default
mirror is the `repos/` folder beside it. The same convention serves `--repo-mirror` for
air-gapped clusters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from swesrl.utils import UserError, iter_jsonl, read_utf8

REQUIRED = ("instance_id", "repo", "base_commit", "problem_statement")
LIST_FIELDS = ("FAIL_TO_PASS", "PASS_TO_PASS")
DEFAULT_NAMESPACE = "swebench"
"""Docker Hub namespace of SWE-bench's published evaluation images."""


class Instance(TypedDict, total=False):
    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    patch: str
    test_patch: str
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str]
    version: str
    environment_setup_commit: str
    image_name: str
    hints_text: str
    # swesrl extensions (bundled tasks): how to run the tests, which family, which split
    test_cmd: str
    family: str
    split: str


def normalise_instance(row: dict[str, Any], where: str) -> Instance:
    missing = [k for k in REQUIRED if not row.get(k)]
    if missing:
        raise UserError(f"{where}: instance is missing {', '.join(missing)}")
    inst = dict(row)
    for k in LIST_FIELDS:
        v = inst.get(k, [])
        if isinstance(v, str):  # SWE-bench on the Hub stores these as JSON strings
            try:
                v = json.loads(v) if v.strip() else []
            except json.JSONDecodeError:
                raise UserError(f"{where}: {k} is neither a list nor a JSON list string") from None
        if hasattr(v, "tolist"):  # parquet gives numpy arrays
            v = v.tolist()
        if not isinstance(v, list):
            raise UserError(f"{where}: {k} must be a list of test names")
        inst[k] = [str(t) for t in v]
    inst.setdefault("patch", "")
    inst.setdefault("test_patch", "")
    inst.setdefault("version", "")
    return inst  # type: ignore[return-value]


def load_instances(path: str | Path) -> list[Instance]:
    """Read instances; raise UserError (one line) for a missing file, text that is not UTF-8, bad
    JSON, missing fields or duplicate ids."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"instances file not found: {p}")
    if p.suffix == ".parquet":
        import pandas as pd

        rows = pd.read_parquet(p).to_dict(orient="records")
    elif p.suffix == ".json":
        try:
            data = json.loads(read_utf8(p))
        except json.JSONDecodeError as e:
            raise UserError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
        rows = data if isinstance(data, list) else [data]
    else:
        rows = list(iter_jsonl(p))
    if not rows:
        raise UserError(f"{p}: no instances")
    out: list[Instance] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise UserError(f"{p}: entry {i} is not an object")
        inst = normalise_instance(row, f"{p}: entry {i}")
        if inst["instance_id"] in seen:
            raise UserError(f"{p}: duplicate instance_id {inst['instance_id']}")
        seen.add(inst["instance_id"])
        out.append(inst)
    return out


def select(instances: list[Instance], ids: list[str] | None) -> list[Instance]:
    if not ids:
        return instances
    by_id = {i["instance_id"]: i for i in instances}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise UserError(f"unknown instance id(s): {', '.join(unknown[:5])}")
    return [by_id[i] for i in ids]


def repo_dirname(repo: str) -> str:
    return repo.replace("/", "__")


def default_mirror(instances_path: str | Path) -> Path:
    return Path(instances_path).resolve().parent / "repos"


def repo_source(instance: Instance, mirror: str | Path | None) -> Path | None:
    """The local git source (bare repo, working repo or bundle) of an instance, or None if absent."""
    if mirror is None:
        return None
    base = Path(mirror) / repo_dirname(instance["repo"])
    for cand in (base.with_name(base.name + ".git"), base, base.with_name(base.name + ".bundle")):
        if cand.exists():
            return cand
    return None


def official_image(instance_id: str, namespace: str = DEFAULT_NAMESPACE, arch: str = "x86_64") -> str:
    """SWE-bench's published evaluation image (Docker Hub forbids `__`, hence `_1776_`)."""
    key = f"sweb.eval.{arch}.{instance_id.lower()}:latest"
    return f"{namespace}/{key}".replace("__", "_1776_")
