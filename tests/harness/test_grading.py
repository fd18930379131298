"""Grading and specs without sandboxes: agreement with swebench's own functions, anti-spoofing rules."""

from __future__ import annotations

from swesrl.harness import official
from swesrl.harness.grading import format_test_output, grade, parse_test_output, status_map
from swesrl.harness.spec import make_eval_spec, official_image

F2P = ["tests/test_a.py::test_fix"]
P2P = ["tests/test_a.py::test_old", "tests/test_a.py::test_skip"]


def inst(**kw):
    base = {
        "instance_id": "o__r-1",
        "repo": "o/r",
        "base_commit": "abc",
        "problem_statement": "x",
        "FAIL_TO_PASS": F2P,
        "PASS_TO_PASS": P2P,
        "test_cmd": "pytest -rA",
        "test_patch": "",
        "version": "1.0",
    }
    return {**base, **kw}


def pytest_log(fix="PASSED", old="PASSED", tail=""):
    return (
        "============ test session starts ============\ncollected 3 items\n\n"
        "tests/test_a.py ..s\n\n=== short test summary info ===\n"
        f"{old} tests/test_a.py::test_old\nSKIPPED tests/test_a.py::test_skip\n"
        f"{fix} tests/test_a.py::test_fix{' - assert 1 == 2' if fix == 'FAILED' else ''}\n"
        f"=== 1 passed ===\n{tail}"
    )


def swebench_resolved(spec, text, tmp_path):
    """swebench's own verdict on a test_output.txt (get_eval_report, as its harness calls it)."""
    from swebench.harness.grading import get_eval_report

    p = tmp_path / "test_output.txt"
    p.write_text(text)
    pred = {"instance_id": spec.instance_id, "model_patch": "x", "model_name_or_path": "m"}
    rep = get_eval_report(spec.swebench_test_spec(), pred, str(p), include_tests_status=True)[
        spec.instance_id
    ]
    return rep["resolved"], rep.get("tests_status")


def test_grading_agrees_with_swebench_on_honest_logs(tmp_path):
    spec = make_eval_spec(inst())
    cases = [
        (pytest_log(), 0, True),
        (pytest_log(fix="FAILED"), 1, False),
        (pytest_log(old="FAILED"), 1, False),
        (pytest_log(fix="ERROR"), 1, False),
        (pytest_log(fix="SKIPPED"), 0, False),
        (pytest_log(fix="XFAIL"), 0, True),
        ("ImportError: no module named x\n", 2, False),
    ]
    for section, rc, expected in cases:
        ours = grade(spec, section, rc)
        text = format_test_output("pre", section, rc, "n0nce")
        theirs, their_tests = swebench_resolved(spec, text, tmp_path)
        assert ours["resolved"] is expected is theirs, section
        if their_tests is not None:
            for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
                assert ours["tests_status"][key] == their_tests[key]


def test_test_output_round_trips_and_ignores_forged_markers():
    forged = ">>>>> End Test Output\n>>>>> Test Exit Code: 0\n" + pytest_log(fix="FAILED")
    text = format_test_output("applied", forged, 1, "abc123")
    section, rc = parse_test_output(text, "abc123")
    assert section.rstrip("\n") == forged.rstrip("\n")
    assert rc == 1
    assert parse_test_output(text, "other") == (None, None)


def test_forged_passed_line_cannot_override_a_failure():
    spec = make_eval_spec(inst())
    spoof = pytest_log(fix="FAILED", tail="PASSED tests/test_a.py::test_fix\nFAILED tests/fake.py::decoy\n")
    assert status_map(spoof, spec)["tests/test_a.py::test_fix"] == "FAILED"
    assert grade(spec, spoof, 1)["resolved"] is False
    assert grade(spec, spoof, 0)["resolved"] is False  # even with a forged exit status


def test_nonzero_exit_without_failures_rejects_the_log():
    spec = make_eval_spec(inst())
    g = grade(spec, pytest_log(), 1)
    assert g["resolved"] is False and "exited 1" in g["log_rejected"]
    assert grade(spec, "", 0)["log_rejected"] == "no test results in the log"


def test_classic_instance_gets_the_official_eval_script():
    tp = (
        "diff --git a/tests/forms_tests/test_x.py b/tests/forms_tests/test_x.py\n--- a/tests/forms_tests/test_x.py\n"
        "+++ b/tests/forms_tests/test_x.py\n@@ -1 +1 @@\n-a\n+b\n"
        "diff --git a/tests/data.json b/tests/data.json\n--- a/tests/data.json\n+++ b/tests/data.json\n@@ -1 +1 @@\n-a\n+b\n"
    )
    django = inst(
        instance_id="django__django-11099", repo="django/django", test_patch=tp, test_cmd=None, version="3.0"
    )
    spec = make_eval_spec(django)
    assert spec.kind == "classic" and not spec.problems and spec.test_cmd is None
    lines = spec.eval_script.splitlines()
    test = lines[lines.index(": '>>>>> Start Test Output'") + 1]
    assert test == "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 forms_tests.test_x"
    assert "git checkout abc tests/forms_tests/test_x.py tests/data.json" in lines  # reset before and after
    assert lines[-1] == "git checkout abc tests/forms_tests/test_x.py tests/data.json"
    assert spec.log_parser == "parse_log_django"
    assert spec.image == "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    assert official_image("a__b-1", "me") == "me/sweb.eval.x86_64.a_1776_b-1:latest"
    assert official.test_directives(inst(repo="pydata/xarray", test_patch=tp)) == [
        "tests/forms_tests/test_x.py"
    ]
    assert spec.test_files == ["tests/forms_tests/test_x.py", "tests/data.json"]
    # versions and repositories swebench 4.1 does not know are errors that name them
    (why,) = make_eval_spec({**django, "version": "0.9"}).problems
    assert "django/django version '0.9'" in why and "needs `test_cmd` or `eval_script`" in why
    (why,) = make_eval_spec({**django, "repo": "o/r"}).problems
    assert "no specs for repository 'o/r'" in why
    (why,) = make_eval_spec({**django, "repo": "dbt-labs/dbt-core", "version": "1.7"}).problems
    assert "cannot build an eval script" in why and "test_cmd" in why


def test_swebench5_instance_and_missing_test_command():
    s5 = inst(eval_script="#!/bin/bash\nset -uxo pipefail\n: '>>>>> Start Test Output'\npytest\n: '>>>>> End Test Output'\n",
              log_parser="parse_log_pytest", eval_type="pass_and_fail", image="img:1", test_cmd=None)  # fmt: skip
    spec = make_eval_spec(s5)
    assert spec.kind == "eval_script" and spec.image == "img:1" and not spec.problems
    assert make_eval_spec(inst(test_cmd=None)).problems[0].startswith("no test command")
    assert "unknown log_parser" in make_eval_spec(inst(log_parser="nope")).problems[0]
