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

from swesrl.utils import UserError, read_utf8

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


def read_instances(path: str | Path, lenient: bool = False) -> tuple[list[Instance], list[str]]:
    """(instances, problems) from JSON, JSONL or parquet. Strict (the default, `load_instances`):
    the first bad line or entry, missing field or duplicate id raises UserError (one line). Lenient
    (`swesrl eval`): each is reported in `problems` and left out, an entry repeated with the same
    contents counts once, and only a file with nothing usable raises."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"instances file not found: {p}")
    problems: list[str] = []

    def problem(msg: str) -> None:
        if not lenient:
            raise UserError(msg)
        problems.append(f"{msg}; skipped")

    rows: list[tuple[str, Any]] = []
    if p.suffix == ".parquet":
        import pandas as pd

        rows = [(f"{p}: entry {i}", r) for i, r in enumerate(pd.read_parquet(p).to_dict(orient="records"), 1)]
    elif p.suffix == ".json":
        try:
            data = json.loads(read_utf8(p))
        except json.JSONDecodeError as e:
            raise UserError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
        rows = [(f"{p}: entry {i}", r) for i, r in enumerate(data if isinstance(data, list) else [data], 1)]
    else:
        for n, line in enumerate(read_utf8(p).split("\n"), 1):  # not splitlines(): U+2028 is no break
            if line.strip():
                try:
                    rows.append((f"{p}:{n}", json.loads(line)))
                except json.JSONDecodeError as e:
                    problem(f"{p}:{n}: not valid JSON ({e.msg})")
    out: dict[str, Instance] = {}
    dups: set[str] = set()
    for where, row in rows:
        if not isinstance(row, dict):
            problem(f"{where}: not a JSON object")
            continue
        try:
            inst = normalise_instance(row, where)
        except UserError as e:
            problem(str(e))
            continue
        iid = inst["instance_id"]
        if iid in out and not lenient:
            raise UserError(f"{p}: duplicate instance_id {iid}")
        if iid in out and out[iid] != inst:
            dups.add(iid)
        out.setdefault(iid, inst)
    for iid in sorted(dups):
        problems.append(f"{p}: instance id {iid} appears several times with different contents; skipped")
        out.pop(iid)
    if not out:
        raise UserError(f"{p}: no usable instances ({problems[0]})" if problems else f"{p}: no instances")
    return list(out.values()), problems


def load_instances(path: str | Path) -> list[Instance]:
    """Read instances strictly (`read_instances`): any problem is one UserError line."""
    return read_instances(path)[0]


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
