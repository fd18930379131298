"""How to test one instance: its eval script, log parser, grading mode, image.

`make_eval_spec(instance).eval_script` is the script the harness runs for every kind of instance,
in this order of precedence:

1. **swebench 5 instances** carry `eval_script`, `log_parser`, `eval_type` and `image`: their own
   eval script (it resets the test files and applies the test patch itself).
2. **Instances with `test_cmd`** (the bundled tasks, SWE-smith style sets): `test_cmd_script`, the
   harness's script: reset the files `test_patch` touches (removing those base_commit lacks),
   apply `test_patch`, then, between the markers, run `test_cmd` from /testbed in the image's
   `testbed` conda environment when it has one.
3. **Classic instances** (SWE-bench / Lite / Verified / Multimodal / Multilingual fields only):
   SWE-bench's official eval script, built by `official.py` from swebench 4.1's per-repository,
   per-version specs (swebench 5 dropped them), in the official evaluation image
   `<namespace>/sweb.eval.x86_64.<instance_id with "__" -> "_1776_">`. A repository or version
   that table lacks is an error naming it: such an instance needs `test_cmd` or `eval_script`.

`instance.py` runs the script in two commands split at the `>>>>> Start Test Output` / `End` markers
(`split_eval_script`): the set-up, then the test lines, whose output alone is the test log.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from swesrl.core.instances import DEFAULT_NAMESPACE, Instance, official_image
from swesrl.envs.base import WORKDIR
from swesrl.envs.common import CONDA_ACTIVATE
from swesrl.harness import official

ACTIVATE = CONDA_ACTIVATE
"""Enter the image's `testbed` conda environment when it has one (SWE-bench images do)."""

# `diff --git` headers, or `---` / `+++` lines for diffs without them.
_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.M)
_MINUS_FILE = re.compile(r"^--- (?:a/)?(\S+)", re.M)
_PLUS_FILE = re.compile(r"^\+\+\+ (?:b/)?(\S+)", re.M)


def patch_files(patch: str) -> list[str]:
    """Paths a unified diff touches (both sides; /dev/null dropped), in order of appearance."""
    paths: list[str] = []
    found = _DIFF_FILE.findall(patch)
    if found:
        for a, b in found:
            paths += [a, b]
    else:
        paths = _MINUS_FILE.findall(patch) + _PLUS_FILE.findall(patch)
    out: list[str] = []
    for p in paths:
        if p != "/dev/null" and p not in out:
            out.append(p)
    return out


def default_parser(repo: str) -> str:
    from swebench.harness.log_parsers import c, go, java, javascript, php, python, ruby, rust

    maps: dict[str, Any] = {}
    for mod, name in (
        (python, "PY"),
        (javascript, "JS"),
        (c, "C"),
        (go, "GO"),
        (java, "JAVA"),
        (php, "PHP"),
        (ruby, "RUBY"),
        (rust, "RUST"),
    ):
        maps.update(getattr(mod, f"MAP_REPO_TO_PARSER_{name}", {}))
    fn = maps.get(repo)
    return fn.__name__ if fn is not None else "parse_log_pytest"


@dataclass
class EvalSpec:
    """Everything the runner needs for one instance (built by `make_eval_spec`)."""

    instance_id: str
    repo: str
    version: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    log_parser: str
    eval_type: str
    test_cmd: str | None = None
    """The instance's own test command (kind "test_cmd"); None otherwise."""
    eval_script: str | None = None
    """The script the harness runs (every kind; None only when `problems` says why)."""
    test_files: list[str] = field(default_factory=list)
    """Files `test_patch` touches: reset to base_commit (removed if it lacks them) before it is applied."""
    base_commit: str = ""
    image: str | None = None
    """Docker image named by the instance or the official-image fallback (None: backend default)."""
    kind: str = "test_cmd"
    """"eval_script" (swebench 5), "test_cmd" or "classic" (the official SWE-bench script)."""
    problems: list[str] = field(default_factory=list)
    """Why this instance cannot be evaluated (empty when it can)."""

    def swebench_test_spec(self):
        """A `swebench.types.TestSpec`, the object swebench's parsers and grading take."""
        from swebench.types import TestSpec

        return TestSpec(
            instance_id=self.instance_id,
            image=self.image or "",
            eval_script_list=[],
            repo=self.repo,
            version=self.version,
            FAIL_TO_PASS=self.fail_to_pass,
            PASS_TO_PASS=self.pass_to_pass,
            log_parser=self.log_parser,
            eval_type=self.eval_type,
        )


def reset_test_files(base_commit: str, files: list[str]) -> str:
    """One command: each file back to base_commit, or removed where base_commit lacks it (so a
    model patch cannot pre-create a file the test patch adds)."""
    base = shlex.quote(base_commit)
    cmds = [f"cd {WORKDIR}"]
    for f in files:
        q = shlex.quote(f)
        cmds.append(
            f"if git cat-file -e {base}:{q} 2>/dev/null; then git checkout {base} -- {q}; else rm -rf -- {q}; fi"
        )
    return " && ".join(cmds)


def _heredoc(text: str) -> tuple[str, str]:
    """(delimiter, body) for `<<'delimiter'` giving exactly `text` (a delimiter no line equals)."""
    body = text if text.endswith("\n") else text + "\n"
    delim = official.HEREDOC_DELIMITER
    while delim in body.split("\n"):
        delim += "_"
    return delim, body


def test_cmd_script(instance: Instance, test_cmd: str) -> str:
    """The harness's eval script for an instance with `test_cmd`: test files reset, test patch
    applied (set-up, one `&&` chain), then the test command from /testbed in `testbed`'s env."""
    setup = reset_test_files(instance["base_commit"], patch_files(instance.get("test_patch", "")))
    if instance.get("test_patch", "").strip():
        delim, body = _heredoc(instance["test_patch"])
        setup += f" && git apply --verbose - <<'{delim}'\n{body}{delim}"
    return "\n".join(
        [
            "#!/bin/bash",
            setup,
            f": '{official.START_TEST_OUTPUT}'",
            f"cd {WORKDIR}",
            ACTIVATE,
            test_cmd,
            f": '{official.END_TEST_OUTPUT}'",
            "",
        ]
    )


_HEREDOC_START = re.compile(r"(?<!<)<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


def split_eval_script(script: str) -> tuple[list[str], list[str], list[str]]:
    """(header `set` lines, set-up lines, test lines) of an eval script: the test lines are those
    between the `>>>>> Start Test Output` and `>>>>> End Test Output` markers (lines after the end
    marker, the final test-file reset, are dropped: the sandbox is thrown away). Markers inside a
    heredoc (a test patch that prints them) do not count. Raises ValueError without markers."""
    lines = script.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    header: list[str] = []
    k = 0
    while k < len(lines) and (lines[k].startswith("#!") or lines[k].startswith("set -")):
        if lines[k].startswith("set -"):
            header.append(lines[k])
        k += 1
    body = lines[k:]
    start = end = None
    pending: list[str] = []  # heredoc delimiters still open, in order
    for n, ln in enumerate(body):
        if pending:
            if ln == pending[0] or ln.lstrip("\t") == pending[0]:
                pending.pop(0)
            continue
        if start is None and official.START_TEST_OUTPUT in ln:
            start = n
        elif start is not None and official.END_TEST_OUTPUT in ln:
            end = n
            break
        pending += [m.group(2) for m in _HEREDOC_START.finditer(ln)]
    if start is None or end is None:
        raise ValueError("eval_script has no >>>>> Start/End Test Output markers around its test command")
    return header, body[:start], body[start + 1 : end]


def _as_list(v: Any) -> list[str]:
    if isinstance(v, str):
        v = json.loads(v) if v.strip() else []
    return [str(x) for x in (v or [])]


def make_eval_spec(instance: Instance, namespace: str = DEFAULT_NAMESPACE) -> EvalSpec:
    from swebench.harness.constants import FAIL_ONLY_REPOS, EvalType
    from swebench.harness.log_parsers import PARSER_REGISTRY

    inst: dict[str, Any] = dict(instance)
    repo = inst.get("repo", "")
    problems: list[str] = []
    eval_type = inst.get("eval_type") or (
        EvalType.FAIL_ONLY.value if repo in FAIL_ONLY_REPOS else EvalType.PASS_AND_FAIL.value
    )
    parser = inst.get("log_parser") or default_parser(repo)
    if parser not in PARSER_REGISTRY:
        problems.append(f"unknown log_parser {parser!r}")
    if eval_type not in {e.value for e in EvalType}:
        problems.append(f"unknown eval_type {eval_type!r}")
    spec = EvalSpec(
        instance_id=inst["instance_id"],
        repo=repo,
        version=str(inst.get("version") or ""),
        fail_to_pass=_as_list(inst.get("FAIL_TO_PASS")),
        pass_to_pass=_as_list(inst.get("PASS_TO_PASS")),
        log_parser=parser,
        eval_type=eval_type,
        test_files=patch_files(inst.get("test_patch", "")),
        base_commit=inst.get("base_commit", ""),
        image=inst.get("image") or inst.get("image_name") or None,
        problems=problems,
    )
    if inst.get("eval_script"):
        spec.kind = "eval_script"
        spec.eval_script = inst["eval_script"]
    elif inst.get("test_cmd"):
        spec.kind = "test_cmd"
        spec.test_cmd = inst["test_cmd"]
        spec.eval_script = test_cmd_script(instance, inst["test_cmd"])
    else:
        spec.kind = "classic"
        spec.image = spec.image or official_image(spec.instance_id, namespace)
        try:
            spec.eval_script = official.eval_script(inst)
        except official.NoOfficialScript as e:
            problems.append(f"no test command: {e}; the instance needs `test_cmd` or `eval_script`")
        except Exception as e:  # noqa: BLE001 - an unparsable test_patch is this instance's problem
            problems.append(f"cannot build the official eval script: {type(e).__name__}: {e}")
    if spec.eval_script is not None:
        try:
            split_eval_script(spec.eval_script)
        except ValueError as e:
            problems.append(str(e))
    return spec
