"""The generator: schema, determinism, splits, git history and patches, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from swesrl.core.instances import default_mirror, load_instances, repo_source
from swesrl.tasks import MAX_N, build_suite
from swesrl.tasks.catalog import FAMILIES, TEST_FAMILIES
from swesrl.utils import UserError

FIELDS = [
    "instance_id",
    "repo",
    "base_commit",
    "problem_statement",
    "patch",
    "test_patch",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
    "version",
    "environment_setup_commit",
    "test_cmd",
    "family",
    "split",
]


def git(cwd, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_schema_and_families(bundled_suite):
    insts = load_instances(bundled_suite)
    assert len(insts) == 20
    for inst in insts:
        assert all(inst.get(f) for f in FIELDS if f != "PASS_TO_PASS"), inst["instance_id"]
        assert inst["repo"].startswith("swesrl-bench/")
        assert inst["instance_id"].startswith(inst["repo"].replace("/", "__") + "-")
        assert len(inst["FAIL_TO_PASS"]) == 1 and inst["PASS_TO_PASS"]
        test_file = inst["FAIL_TO_PASS"][0].split("::")[0]
        assert inst["test_cmd"].endswith(test_file)
        assert all(t.startswith(test_file + "::") for t in inst["PASS_TO_PASS"])
        assert inst["patch"].startswith("diff --git a/") and "tests/" not in inst["patch"].split("\n")[0]
        assert inst["test_patch"].startswith(f"diff --git a/{test_file} b/{test_file}")
        # the issue shows the symptom, never the fix
        added = [
            ln[1:].strip()
            for ln in inst["patch"].splitlines()
            if ln.startswith("+") and not ln.startswith("+++")
        ]
        assert not any(a and a in inst["problem_statement"] for a in added if len(a) > 12)
        assert "```python" in inst["problem_statement"] or ">>> " in inst["problem_statement"]
    fams = Counter(i["family"] for i in insts)
    assert len(fams) == len(FAMILIES) >= 15


def test_splits_hold_out_families_and_repos(bundled_suite):
    insts = load_instances(bundled_suite)
    splits = json.loads((bundled_suite.parent / "splits.json").read_text())
    ids = {i["instance_id"] for i in insts}
    assert set(splits["train"]) | set(splits["test"]) == ids
    assert not set(splits["train"]) & set(splits["test"])
    assert splits["test_families"] == list(TEST_FAMILIES) and splits["test_repos"]
    for inst in insts:
        held_out = inst["family"] in TEST_FAMILIES or inst["repo"] in splits["test_repos"]
        assert inst["split"] == ("test" if held_out else "train")
        assert inst["instance_id"] in splits[inst["split"]]
    train_repos = {i["repo"] for i in insts if i["split"] == "train"}
    assert train_repos and not train_repos & set(splits["test_repos"])


def test_repositories_history_and_patches(bundled_suite, tmp_path):
    insts = load_instances(bundled_suite)
    mirror = default_mirror(bundled_suite)
    files_per_repo = {}
    for inst in insts:
        src = repo_source(inst, mirror)
        assert src is not None and src.name.endswith(".git")
        assert git(src, "rev-parse", "--is-bare-repository").strip() == "true"
        log = git(src, "log", "--format=%H %an %ad", inst["base_commit"]).splitlines()
        assert len(log) >= 3 and log[0].startswith(inst["base_commit"])
        wt = tmp_path / inst["instance_id"]
        git(tmp_path, "clone", "-q", str(src), str(wt))
        git(wt, "checkout", "-q", inst["base_commit"])
        files = git(wt, "ls-files").split()
        assert {"README.md", "pyproject.toml", ".gitignore"} <= set(files)
        modules = [
            f for f in files if f.endswith(".py") and not f.startswith("tests/") and "__init__" not in f
        ]
        assert len(modules) >= 3
        files_per_repo[inst["repo"]] = len(files)
        for patch in (inst["test_patch"], inst["patch"]):
            subprocess.run(["git", "apply", "--check", "-"], cwd=wt, input=patch, text=True, check=True)
            subprocess.run(["git", "apply", "-"], cwd=wt, input=patch, text=True, check=True)
        assert len(git(wt, "status", "--porcelain").splitlines()) == 2
    assert min(files_per_repo.values()) >= 8


def test_same_seed_same_suite(tmp_path):
    a = build_suite(tmp_path / "a", n=6, seed=3)
    b = build_suite(tmp_path / "b", n=6, seed=3)
    c = build_suite(tmp_path / "c", n=6, seed=4)
    assert a.read_text() == b.read_text()
    assert (a.parent / "splits.json").read_text() == (b.parent / "splits.json").read_text()
    assert a.read_text() != c.read_text()
    # rebuilding into an existing suite folder replaces it
    assert build_suite(tmp_path / "a", n=6, seed=3).read_text() == b.read_text()


@pytest.mark.parametrize("n", [0, -3, MAX_N + 1])
def test_impossible_n(tmp_path, n):
    with pytest.raises(UserError, match="--n must be between 1 and"):
        build_suite(tmp_path / "s", n=n)
    res = subprocess.run(
        [sys.executable, "-m", "swesrl", "tasks", "build", "--out", str(tmp_path / "s"), "--n", str(n)],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") == 0 and "--n must be between 1 and 2000" in res.stderr
    assert "Traceback" not in res.stderr


def test_unwritable_or_foreign_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for out, msg in ((blocker / "suite", "cannot write"), (blocker, "not a folder"), (other, "refusing")):
        res = subprocess.run(
            [sys.executable, "-m", "swesrl", "tasks", "build", "--out", str(out), "--n", "2"],
            capture_output=True,
            text=True,
        )
        assert res.returncode != 0 and msg in res.stderr, res.stderr
        assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
    assert (other / "notes.txt").read_text() == "mine"


def test_cli_build(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "swesrl",
            "tasks",
            "build",
            "--out",
            str(tmp_path / "s"),
            "--n",
            "5",
            "--seed",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "5 tasks" in res.stdout
    assert len(load_instances(tmp_path / "s" / "instances.jsonl")) == 5
    assert Path(tmp_path / "s" / "splits.json").is_file()


def test_relative_out_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = build_suite("rel/suite", n=2, seed=3)
    assert path.is_absolute() and path.is_file()
    assert len(path.read_text().splitlines()) == 2
