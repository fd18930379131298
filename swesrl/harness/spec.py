"""How to test one instance: test command, log parser, grading mode, image.

Three kinds of instance are supported, in this order of precedence:

1. **swebench 5 instances** carry `eval_script`, `log_parser`, `eval_type` and `image`; the
   package's own `make_test_spec` turns them into a TestSpec and their eval script is run as is
   (it resets the test files and applies the test patch itself).
2. **Instances with `test_cmd`** (the bundled tasks, SWE-smith style sets): the harness resets
   the files `test_patch` touches, applies `test_patch` and runs `test_cmd` from /testbed.
3. **Classic instances** (SWE-bench / Lite / Verified fields only). swebench 5 dropped the
   per-repo/version specs, so a documented fallback is used: the official evaluation image
   `<namespace>/sweb.eval.x86_64.<instance_id with "__" -> "_1776_">` and the per-repo default test
   command in `DEFAULT_TEST_CMDS` followed by the test files of `test_patch` (the "test
   directives", as swebench 4 built them). The test command runs inside the image's `testbed`
   conda environment when the image has one. This reproduces the official commands for the
   common versions of each repository; exact parity for every version needs instances that
   carry their own `eval_script` (kind 1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from swesrl.tasks.instances import Instance

DEFAULT_NAMESPACE = "swebench"

# swebench 4.x `MAP_REPO_VERSION_TO_SPECS[repo][version]["test_cmd"]` for the repositories of
# SWE-bench / Lite / Verified (the most common value per repository).
_PYTEST = "pytest --no-header -rA --tb=no -p no:cacheprovider"
DEFAULT_TEST_CMDS: dict[str, str] = {
    "astropy/astropy": "pytest -rA -vv -o console_output_style=classic --tb=no",
    "django/django": "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1",
    "marshmallow-code/marshmallow": _PYTEST,
    "matplotlib/matplotlib": _PYTEST,
    "mwaskom/seaborn": "pytest --no-header -rA",
    "pallets/flask": _PYTEST,
    "psf/requests": _PYTEST,
    "pvlib/pvlib-python": _PYTEST,
    "pydata/xarray": _PYTEST,
    "pydicom/pydicom": _PYTEST,
    "pylint-dev/astroid": _PYTEST,
    "pylint-dev/pylint": _PYTEST,
    "pytest-dev/pytest": "pytest -rA",
    "pyvista/pyvista": _PYTEST,
    "scikit-learn/scikit-learn": _PYTEST,
    "sqlfluff/sqlfluff": _PYTEST,
    "sphinx-doc/sphinx": "tox --current-env -epy39 -v --",
    "sympy/sympy": "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose",
}

# Files in a test patch that are data, not tests (swebench.harness.constants.NON_TEST_EXTS).
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


def test_directives(instance: Instance) -> list[str]:
    """The test files of `test_patch` as the repository's runner wants them (swebench 4 rule)."""
    from swebench.harness.constants import NON_TEST_EXTS

    files = [
        f
        for f in patch_files(instance.get("test_patch", ""))
        if not any(f.endswith(e) for e in NON_TEST_EXTS)
    ]
    if instance["repo"] == "django/django":
        out = []
        for f in files:
            f = f[: -len(".py")] if f.endswith(".py") else f
            f = f[len("tests/") :] if f.startswith("tests/") else f
            out.append(f.replace("/", "."))
        return out
    return files


def official_image(instance_id: str, namespace: str = DEFAULT_NAMESPACE, arch: str = "x86_64") -> str:
    """SWE-bench's published evaluation image (Docker Hub forbids `__`, hence `_1776_`)."""
    key = f"sweb.eval.{arch}.{instance_id.lower()}:latest"
    return f"{namespace}/{key}".replace("__", "_1776_")


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
    """Shell command run from /testbed (kinds 2 and 3); None for kind 1."""
    eval_script: str | None = None
    """swebench 5 eval script (kind 1); None otherwise."""
    test_files: list[str] = field(default_factory=list)
    """Files reset to base_commit before `test_patch` is applied (kinds 2 and 3)."""
    image: str | None = None
    """Docker image named by the instance or the official-image fallback (None: backend default)."""
    kind: str = "test_cmd"
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
        image=inst.get("image") or inst.get("image_name") or None,
        problems=problems,
    )
    if inst.get("eval_script"):
        spec.kind = "eval_script"
        spec.eval_script = inst["eval_script"]
        return spec
    spec.test_files = patch_files(inst.get("test_patch", ""))
    if inst.get("test_cmd"):
        spec.kind = "test_cmd"
        spec.test_cmd = inst["test_cmd"]
    elif repo in DEFAULT_TEST_CMDS:
        spec.kind = "classic"
        spec.test_cmd = " ".join([DEFAULT_TEST_CMDS[repo], *test_directives(instance)])
        spec.image = spec.image or official_image(spec.instance_id, namespace)
    else:
        problems.append(
            f"no test command: {repo!r} has no default, so the instance needs `test_cmd` or `eval_script`"
        )
    return spec
