"""Oracle file edit: reading the model's edits robustly, and the whole command on a real repository."""

from __future__ import annotations

import json
import subprocess

from swesrl.envs.base import SandboxConfig
from swesrl.harness import grade_patch
from swesrl.harness.oracle import (
    RepoReader,
    build_messages,
    edits_to_patch,
    load_oracle_config,
    oracle_files,
    replace_once,
    resolve_path,
    run_oracle,
)

SRC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
FILES = {"calc/ops.py": SRC, "calc/other.py": "X = 1\n"}


def apply(patch: str, files: dict[str, str], tmp_path) -> dict[str, str]:
    """Apply a patch with git to a real folder holding `files`; returns the new contents."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for p, t in files.items():
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text(t)
    (tmp_path / "x.patch").write_text(patch)
    subprocess.run(["git", "-C", str(tmp_path), "apply", "x.patch"], check=True)
    return {p: (tmp_path / p).read_text() for p in files}


def test_search_replace_block_with_fence_and_header(tmp_path):
    answer = (
        "<think>the sign is wrong</think>\nHere is the fix:\n\n```python\n### calc/ops.py\n"
        "<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n```\n"
    )
    patch, problems = edits_to_patch(answer, FILES)
    assert problems == []
    assert apply(patch, FILES, tmp_path)["calc/ops.py"] == SRC.replace("a - b", "a + b")


def test_loose_matching_paths_whitespace_and_indentation():
    assert resolve_path("a/calc/ops.py", list(FILES)) == "calc/ops.py"
    assert resolve_path("`ops.py`:", list(FILES)) == "calc/ops.py"
    assert resolve_path("File: /testbed/calc/ops.py", list(FILES)) == "calc/ops.py"
    assert resolve_path("nothing.py", list(FILES)) is None
    assert replace_once(SRC, "    return a - b   \n", "    return a + b\n") == SRC.replace("a - b", "a + b")
    # the model dropped the indentation: found anyway, the replacement re-indented
    assert replace_once(SRC, "return a - b\n", "return a + b\n") == SRC.replace("a - b", "a + b")
    assert replace_once(SRC, "return a / b\n", "x\n") is None


def test_several_blocks_one_bad_and_unknown_file():
    answer = (
        "calc/ops.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n\n"
        "calc/ops.py\n<<<<<<< SEARCH\n    return a ** b\n=======\n    return 0\n>>>>>>> REPLACE\n\n"
        "lib/missing.py\n<<<<<<< SEARCH\nfoo\n=======\nbar\n>>>>>>> REPLACE\n"
    )
    patch, problems = edits_to_patch(answer, FILES)
    assert "+    return a + b" in patch
    assert len(problems) == 2
    assert "SEARCH text not found in calc/ops.py" in problems[0] and "not shown" in problems[1]


def test_consecutive_blocks_share_the_path_line():
    answer = (
        "### calc/ops.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n"
        "<<<<<<< SEARCH\n    return a * b\n=======\n    return b * a\n>>>>>>> REPLACE\n"
    )
    patch, problems = edits_to_patch(answer, FILES)
    assert problems == [] and "+    return a + b" in patch and "+    return b * a" in patch


def test_new_file_block_and_unified_diff_with_wrong_line_numbers(tmp_path):
    answer = "### calc/new.py\n<<<<<<< SEARCH\n=======\nY = 2\n>>>>>>> REPLACE\n"
    patch, problems = edits_to_patch(answer, FILES)
    assert problems == [] and "new file mode" in patch and "+Y = 2" in patch
    diff = (
        "Fix:\n```diff\n--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -40,2 +40,2 @@ def add(a, b):\n"
        "-    return a - b\n+    return a + b\n \n```\n"
    )
    patch, problems = edits_to_patch(diff, FILES)
    assert problems == []
    assert apply(patch, FILES, tmp_path)["calc/ops.py"] == SRC.replace("a - b", "a + b")


def test_answers_without_edits_give_an_empty_patch():
    for answer in ("I don't know.", "", "<<<<<<< SEARCH\nunterminated"):
        patch, problems = edits_to_patch(answer, FILES)
        assert patch == "" and problems


class GoldEditModel:
    """Answers a known issue with a search/replace block (the gold fix), anything else with prose
    (a stand-in for a model; the prompt building, parsing and grading around it are real)."""

    name = "gold-edits"

    def __init__(self, fixes: dict[str, tuple[str, str, str]]):
        self.fixes = fixes
        self.prompts: list[list[dict]] = []

    def generate(self, messages, n=1, **sampling):
        self.prompts.append(messages)
        for issue, (path, old, new) in self.fixes.items():
            if issue in messages[-1]["content"]:
                return [f"```python\n### {path}\n<<<<<<< SEARCH\n{old}=======\n{new}>>>>>>> REPLACE\n```"] * n
        return ["no idea"] * n


def test_run_oracle_writes_predictions_that_resolve(calc_suite, calc_mirror, tmp_path):
    path, insts = calc_suite
    inst = insts["demo__calc-1"]
    reader = RepoReader()
    files = oracle_files(inst, calc_mirror, reader)
    reader.close()
    assert list(files) == ["calc/ops.py"] and "return a - b" in files["calc/ops.py"]
    msgs = build_messages(inst, files, load_oracle_config())
    assert inst["problem_statement"] in msgs[1]["content"] and files["calc/ops.py"] in msgs[1]["content"]

    model = GoldEditModel({"add() subtracts": ("calc/ops.py", "    return a - b\n", "    return a + b\n")})
    chosen = [insts["demo__calc-1"], insts["demo__calc-2"]]
    res = run_oracle(chosen, model, tmp_path, calc_mirror)
    assert res["written"] == 2 and res["empty"] == 1  # calc-2 needs neg(): the stand-in has no fix
    rows = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["instance_id"] for r in rows] == ["demo__calc-1", "demo__calc-2"]
    rep = grade_patch(inst, rows[0]["model_patch"], SandboxConfig(), calc_mirror, timeout=120)
    assert rep["resolved"] is True
    again = run_oracle(chosen, model, tmp_path, calc_mirror)
    assert again["written"] == 0 and again["skipped"] == 2 and len(model.prompts) == 2
