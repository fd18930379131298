"""What keeps code under test from grading itself: test-infrastructure reset and the reporter check.

Threat: under RL a policy's patch optimises whatever the grader lets through. Two defences sit
between `git apply` of the model patch and grading (`instance.py` calls them):

* **Test infrastructure a patch touches is reset** before the tests run (back to base_commit, or
  removed if the patch added it), and the report lists it: conftest.py at any depth; pytest.ini,
  .pytest.ini, pytest.toml; the pytest sections (and pytest11 entry points) of setup.cfg, tox.ini
  and pyproject.toml; setup.py lines that name pytest11; sitecustomize / usercustomize; .pth
  files; a top-level `pytest`, `_pytest` or `py` module the repository did not have (shadowing
  the runner); symbolic links the patch adds. Honest patches rarely touch these; when one does,
  it is graded with the repository's own test set-up, which is what SWE-bench's tests expect.
* **Results come from two channels that must agree.** For pytest runs the harness's reporter
  (`pytest_report.py`) writes each test's outcome to a pipe read by the sandbox's runner, apart
  from the log. A test counts as passed only if both the log (parsed by swebench's parser, so
  SWE-bench's semantics hold) and the reporter (its records turned into `STATUS nodeid` lines
  and parsed by the same parser, so names match) say so; a run whose reporter started but never
  saw pytest finish (an `os._exit` after forged output) is rejected, as is one where the reporter
  was expected and never started. Runners without a reporter (django, sympy) must print their
  own final summary.

Not covered: code under test runs inside the test process and could, with effort, rewrite the
reporter or pytest in memory; no harness that runs tests in-process can rule that out.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from swesrl.envs.base import WORKDIR
from swesrl.envs.common import STATE_DIR

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

PLUGIN_NAME = "swesrl_pytest_report"
INFRA_NAMES = {
    "conftest.py",
    "pytest.ini",
    ".pytest.ini",
    "pytest.toml",
    ".pytest.toml",
    "sitecustomize.py",
    "usercustomize.py",
}
CONFIG_NAMES = {"setup.cfg", "tox.ini", "pyproject.toml", "setup.py"}
SHADOW_TOPS = {"pytest.py", "pytest", "_pytest", "py.py", "pluggy", "pluggy.py"}
SUMMARY_LINES = {
    "parse_log_django": re.compile(r"^Ran \d+ tests? in [\d.]+s$", re.M),
    "parse_log_sympy": re.compile(r"tests finished: \d+ passed", re.M),
}
_RANK = {"FAILED": 0, "ERROR": 0, "MISSING": 0, "SKIPPED": 1, "XFAIL": 2, "PASSED": 2}


# -- test infrastructure ----------------------------------------------------------------------


def changes_script(base_commit: str) -> str:
    """Shell (in the sandbox, before any patched code runs): `git diff --raw -z` of the whole tree,
    ignored and untracked files included, against base_commit, through a throw-away index."""
    b = shlex.quote(base_commit)
    idx = f"{STATE_DIR}/infra.index"
    return (
        f"cd {WORKDIR} && rm -f {idx} && cp -p .git/index {idx} && GIT_INDEX_FILE={idx} git add -A -f && "
        f"GIT_INDEX_FILE={idx} git diff --cached --raw -z --no-renames --no-abbrev {b}; rc=$?; rm -f {idx}; exit $rc"
    )


@dataclass
class Change:
    path: str
    old_mode: str
    new_mode: str
    status: str  # A, M, D, T

    @property
    def added(self) -> bool:
        return self.status == "A"


def parse_raw_diff(text: str) -> list[Change]:
    parts = text.split("\0")
    out = []
    i = 0
    while i + 1 < len(parts):
        head = parts[i]
        if not head.startswith(":"):
            i += 1
            continue
        fields = head[1:].split()
        out.append(Change(parts[i + 1], fields[0], fields[1], fields[4][:1]))
        i += 2
    return out


def infra_reason(change: Change) -> str | None:
    """Why a changed path is test infrastructure by its name or kind alone (None: it is not,
    or only its content can tell: `config_paths`)."""
    p = PurePosixPath(change.path)
    if change.new_mode == "120000" and change.old_mode != "120000":
        return "symbolic link"
    if p.name in INFRA_NAMES:
        return p.name
    if p.suffix == ".pth":
        return ".pth file"
    if change.added and p.parts and p.parts[0] in SHADOW_TOPS:
        return f"shadows the test runner ({p.parts[0]})"
    return None


def config_paths(changes: list[Change]) -> list[str]:
    return [c.path for c in changes if PurePosixPath(c.path).name in CONFIG_NAMES and c.status != "D"]


def pytest_config(name: str, text: str | None) -> str:
    """The part of a packaging/config file that configures pytest, canonicalised ('' if none;
    unparseable text is returned whole, so any change to it counts)."""
    if not text:
        return ""
    if name == "setup.py":
        return "\n".join(line.strip() for line in text.splitlines() if "pytest11" in line)
    if name == "pyproject.toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return text
        keep = {
            "pytest": data.get("tool", {}).get("pytest"),
            "entry": data.get("project", {}).get("entry-points", {}).get("pytest11"),
            "poetry": data.get("tool", {}).get("poetry", {}).get("plugins", {}).get("pytest11"),
        }
        return json.dumps(keep, sort_keys=True) if any(keep.values()) else ""
    cp = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        cp.read_string(text)
    except configparser.Error:
        return text
    keep = {s: dict(cp.items(s)) for s in ("pytest", "tool:pytest") if cp.has_section(s)}
    if cp.has_section("options.entry_points") and cp.has_option("options.entry_points", "pytest11"):
        keep["entry"] = {"pytest11": cp.get("options.entry_points", "pytest11")}
    return json.dumps(keep, sort_keys=True) if keep else ""


def reset_script(base_commit: str, paths: list[str], existed: set[str]) -> str:
    b = shlex.quote(base_commit)
    cmds = [f"cd {WORKDIR}"]
    for p in paths:
        q = shlex.quote(p)
        cmds.append(f"rm -rf -- {q}" + (f" && git checkout {b} -- {q}" if p in existed else ""))
    return " && ".join(cmds)


# -- reporter ---------------------------------------------------------------------------------


def plugin_source() -> str:
    return Path(__file__).with_name("pytest_report.py").read_text(encoding="utf-8")


def reporter_env(plugin_dir: str) -> str:
    """Shell lines that switch the reporter on for the test command (after any environment set-up)."""
    d = shlex.quote(plugin_dir)
    return (
        f'export PYTHONPATH={d}"${{PYTHONPATH:+:$PYTHONPATH}}"\n'
        f'export PYTEST_PLUGINS={PLUGIN_NAME}"${{PYTEST_PLUGINS:+,$PYTEST_PLUGINS}}"\n'
    )


@dataclass
class Reporter:
    """What the reporter wrote: per-test worst status, and whether sessions started and finished."""

    tests: dict[str, str] = field(default_factory=dict)
    starts: int = 0
    finishes: int = 0
    garbled: int = 0


def _phase_status(rec: dict) -> str | None:
    outcome, when, xfail = rec.get("outcome"), rec.get("when"), rec.get("xfail")
    if outcome == "failed":
        return "ERROR" if when != "call" else "FAILED"
    if outcome == "skipped":
        return "XFAIL" if xfail else "SKIPPED"
    if outcome == "passed" and when == "call":
        return "XPASS" if xfail else "PASSED"
    return None


def read_reporter(raw: bytes) -> Reporter:
    rep = Reporter()
    worst: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            rep.garbled += 1
            continue
        kind = rec.get("e") if isinstance(rec, dict) else None
        if kind == "start":
            rep.starts += 1
        elif kind == "finish":
            rep.finishes += 1
        elif kind == "test" and isinstance(rec.get("nodeid"), str):
            st = _phase_status(rec)
            if st is None:
                continue
            old = worst.get(rec["nodeid"])
            if old is None or _RANK.get(st, 1) < _RANK.get(old, 1) or (old == "SKIPPED" and st != "SKIPPED"):
                worst[rec["nodeid"]] = st
    rep.tests = worst
    return rep


def reporter_lines(rep: Reporter) -> str:
    """The reporter's results as pytest `-rA` summary lines, for the instance's own log parser."""
    return "".join(f"{st} {nodeid}\n" for nodeid, st in rep.tests.items())


def merge(log_map: dict[str, str], reporter_map: dict[str, str]) -> dict[str, str]:
    """Per test, the worse of the log's and the reporter's status; a test the log shows but the
    reporter never saw counts as failed."""
    out = {}
    for t in set(log_map) | set(reporter_map):
        a, b = log_map.get(t), reporter_map.get(t, "MISSING")
        if a is None:
            out[t] = b
            continue
        out[t] = a if _RANK.get(a, 1) <= _RANK.get(b, 1) else b
        if out[t] == "MISSING":
            out[t] = "FAILED"
    return out
