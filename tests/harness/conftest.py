"""A small real task repository (bare git repo in a mirror folder) with hand-written instances.

`calc/ops.py` has two bugs; `tests/test_ops.py` checks them. Each instance's `test_patch` adds the
failing tests; `patch` is the fix. Variants cover a test that hangs and a new test file.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

OPS = textwrap.dedent(
    """\
    def add(a, b):
        return a - b


    def mul(a, b):
        return a * b


    def neg(a):
        return a
    """
)
TESTS = textwrap.dedent(
    """\
    from calc.ops import mul


    def test_mul():
        assert mul(2, 3) == 6
    """
)
TEST_CMD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -rA -p no:cacheprovider tests/test_ops.py"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def diff_of(repo: Path, edit) -> str:
    """The patch `edit(repo)` makes (as `git diff`), undone afterwards."""
    edit(repo)
    git(repo, "add", "-A")
    out = git(repo, "diff", "--cached")
    git(repo, "reset", "-q", "--hard")
    return out


def write(repo: Path, rel: str, text: str) -> None:
    p = repo / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def make_suite(root: Path) -> tuple[Path, dict[str, dict]]:
    work = root / "work"
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    write(work, "calc/__init__.py", "")
    write(work, "calc/ops.py", OPS)
    write(work, "tests/test_ops.py", TESTS)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "init")
    base = git(work, "rev-parse", "HEAD").strip()

    test_add = TESTS + "\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    test_add = test_add.replace("import mul", "import add, mul")
    test_patch = diff_of(work, lambda r: write(r, "tests/test_ops.py", test_add))
    gold = diff_of(work, lambda r: write(r, "calc/ops.py", OPS.replace("a - b", "a + b")))
    hang_tests = test_add + "\n\ndef test_hang():\n    import time\n    time.sleep(3600)\n"
    hang_patch = diff_of(work, lambda r: write(r, "tests/test_ops.py", hang_tests))
    new_file_tests = "from calc.ops import neg\n\n\ndef test_neg():\n    assert neg(2) == -2\n"
    new_test_patch = diff_of(work, lambda r: write(r, "tests/test_neg.py", new_file_tests))
    gold_neg = diff_of(work, lambda r: write(r, "calc/ops.py", OPS.replace("return a\n", "return -a\n")))

    mirror = root / "repos"
    mirror.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirror / "demo__calc.git")], check=True)
    common = {"repo": "demo/calc", "base_commit": base, "version": "0.1"}
    insts = {
        "demo__calc-1": {
            **common,
            "instance_id": "demo__calc-1",
            "problem_statement": "add() subtracts instead of adding.",
            "patch": gold,
            "test_patch": test_patch,
            "FAIL_TO_PASS": ["tests/test_ops.py::test_add"],
            "PASS_TO_PASS": ["tests/test_ops.py::test_mul"],
            "test_cmd": TEST_CMD,
        },
        "demo__calc-hang": {
            **common,
            "instance_id": "demo__calc-hang",
            "problem_statement": "add() subtracts instead of adding.",
            "patch": gold,
            "test_patch": hang_patch,
            "FAIL_TO_PASS": ["tests/test_ops.py::test_add"],
            "PASS_TO_PASS": ["tests/test_ops.py::test_mul"],
            "test_cmd": TEST_CMD,
        },
        "demo__calc-2": {
            **common,
            "instance_id": "demo__calc-2",
            "problem_statement": "neg() does not negate.",
            "patch": gold_neg,
            "test_patch": new_test_patch,
            "FAIL_TO_PASS": ["tests/test_neg.py::test_neg"],
            "PASS_TO_PASS": ["tests/test_ops.py::test_mul"],
            "test_cmd": TEST_CMD + " tests/test_neg.py",
        },
    }
    path = root / "instances.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in insts.values()))
    return path, insts


@pytest.fixture(scope="session")
def calc_suite(tmp_path_factory):
    """(instances.jsonl path, {id: instance}); the mirror is `repos/` beside the file."""
    return make_suite(tmp_path_factory.mktemp("calc"))


@pytest.fixture(scope="session")
def calc_mirror(calc_suite):
    return calc_suite[0].parent / "repos"
