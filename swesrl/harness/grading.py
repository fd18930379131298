"""Grade a test run: parse its log with swebench's parsers, grade with swebench's functions.

The inputs are trusted by construction (see `instance.py`): `section` is exactly what the test command
wrote (it ran with its output redirected to a file of its own, so nothing printed before or after
it counts), and `exit_code` comes from the sandbox, not from a line in the log. On top of
`swebench.harness.grading` two rules keep printed output from scoring:

* swebench's exit-code rule: a run that exits non-zero while its log shows no failure is invalid;
* for line-based pytest parsers the *worst* status a test is given anywhere in the log wins, so a
  forged `PASSED tests/x.py::test_y` line cannot override pytest's own `FAILED` line for it (in
  honest pytest logs, where `-rA` prints errors and failures last, this equals swebench's
  last-line-wins).

Logs are also written in SWE-bench's layout (`>>>>> Start Test Output` ... `>>>>> End Test
Output`, `>>>>> Test Exit Code: N`), with a random per-run nonce on the markers, so swebench's
own `get_logs_eval` can re-grade them and `parse_test_output` can recover the exact section.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from swesrl.harness.integrity import SUMMARY_LINES, Reporter, merge, reporter_lines
from swesrl.harness.spec import EvalSpec


class Status(str, Enum):
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    EMPTY_PATCH = "empty_patch"
    PATCH_APPLY_FAILED = "patch_apply_failed"
    TIMEOUT = "timeout"
    ERROR = "error"


# Parsers that read one test result per line: safe to apply line by line for worst-status-wins.
LINE_PARSERS = {
    "parse_log_pytest",
    "parse_log_pytest_options",
    "parse_log_pytest_v2",
    "parse_log_seaborn",
    "parse_log_matplotlib",
    "parse_log_astroid",
    "parse_log_flask",
    "parse_log_marshmallow",
    "parse_log_pvlib",
    "parse_log_pyvista",
    "parse_log_sqlfluff",
    "parse_log_xarray",
    "parse_log_pydicom",
    "parse_log_requests",
    "parse_log_pylint",
    "parse_log_astropy",
    "parse_log_scikit",
    "parse_log_sphinx",
}
_RANK = {"FAILED": 0, "ERROR": 0, "SKIPPED": 1, "XFAIL": 2, "PASSED": 2}


def markers(nonce: str) -> tuple[str, str]:
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT

    return f"{START_TEST_OUTPUT} [{nonce}]", f"{END_TEST_OUTPUT} [{nonce}]"


def format_test_output(pre: str, section: str, exit_code: int | None, nonce: str, note: str = "") -> str:
    """The test_output.txt of one run (SWE-bench layout; swebench's `get_logs_eval` reads it)."""
    from swebench.harness.constants import TEST_EXIT_CODE

    start, end = markers(nonce)
    parts = [pre.rstrip("\n"), start, section.rstrip("\n"), end]
    if exit_code is not None:
        parts.append(f"{TEST_EXIT_CODE}: {exit_code}")
    if note:
        parts.append(note)
    return "\n".join(parts) + "\n"


def parse_test_output(text: str, nonce: str) -> tuple[str | None, int | None]:
    """(section, exit code) of a test_output.txt written by `format_test_output` with this nonce."""
    from swebench.harness.constants import TEST_EXIT_CODE

    start, end = markers(nonce)
    i = text.find(start + "\n")
    j = text.rfind("\n" + end)
    if i < 0 or j < 0 or j < i:
        return None, None
    section = text[i + len(start) + 1 : j + 1]
    m = re.match(rf"\n{re.escape(end)}\n{re.escape(TEST_EXIT_CODE)}: (-?\d+)", text[j:])
    return section, int(m.group(1)) if m else None


def status_map(section: str, spec: EvalSpec) -> dict[str, str]:
    from swebench.harness.log_parsers import PARSER_REGISTRY

    parser = PARSER_REGISTRY[spec.log_parser]
    ts = spec.swebench_test_spec()
    sm = parser(section, ts)
    if spec.log_parser in LINE_PARSERS and sm:
        for line in section.split("\n"):
            for test, st in parser(line, ts).items():
                if test in sm and _RANK.get(st, 1) < _RANK.get(sm[test], 1):
                    sm[test] = st
    return sm


def grade(
    spec: EvalSpec,
    section: str,
    exit_code: int | None,
    reporter: Reporter | None = None,
    reporter_expected: bool = False,
) -> dict[str, Any]:
    """Grade one finished test run. Returns `resolved`, `tests_status` and why a log was rejected.

    With the harness's pytest reporter (`integrity.py`) a test passes only if the log and the
    reporter agree; a reporter that was expected and never started, or that saw pytest start but
    not finish, rejects the log."""
    from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS, EvalType, ResolvedStatus, TestStatus
    from swebench.harness.grading import SUITE_RAN, get_eval_tests_report, get_resolution_status
    from swebench.harness.log_parsers import PARSER_REGISTRY

    sm = status_map(section, spec)
    invalid = ""
    if reporter_expected or (reporter is not None and reporter.starts):
        if reporter is None or not reporter.starts:
            invalid = (
                "the harness's pytest reporter never started (pytest did not run, or its set-up was changed)"
            )
        elif reporter.finishes < reporter.starts:
            invalid = f"pytest never finished: the test process ended early (exit code {exit_code})"
        else:
            theirs = PARSER_REGISTRY[spec.log_parser](reporter_lines(reporter), spec.swebench_test_spec())
            sm = merge(sm, theirs)
    elif spec.log_parser in SUMMARY_LINES and not SUMMARY_LINES[spec.log_parser].search(section):
        invalid = "the test runner's final summary is missing: the run ended early"
    if invalid:
        pass
    elif not sm and not SUITE_RAN.search(section):
        invalid = "no test results in the log"
    elif (
        exit_code not in (None, 0)
        and sm
        and not any(s in (TestStatus.FAILED.value, TestStatus.ERROR.value) for s in sm.values())
    ):
        invalid = f"the test command exited {exit_code} but the log reports no failure"
    if invalid:
        sm = {}
    gold = {FAIL_TO_PASS: spec.fail_to_pass, PASS_TO_PASS: spec.pass_to_pass}
    report = get_eval_tests_report(sm, gold, eval_type=EvalType(spec.eval_type))
    resolved = not invalid and get_resolution_status(report) == ResolvedStatus.FULL.value
    return {
        "resolved": resolved,
        "tests_status": report,
        "log_rejected": invalid or None,
        "n_tests_parsed": len(sm),
    }


def failed_tests_report(spec: EvalSpec) -> dict[str, Any]:
    """The tests_status of a run that produced no usable log (every listed test counts as failed)."""
    from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS

    return {
        FAIL_TO_PASS: {"success": [], "failure": list(spec.fail_to_pass)},
        PASS_TO_PASS: {"success": [], "failure": list(spec.pass_to_pass)},
    }
