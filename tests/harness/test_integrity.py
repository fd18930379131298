"""The grader's integrity rules as pure functions: what counts as test infrastructure, how the
reporter's records are read and merged with the log."""

from __future__ import annotations

import json

from swesrl.harness.integrity import (
    Change,
    infra_reason,
    merge,
    pytest_config,
    read_reporter,
    reporter_lines,
)


def change(path, status="M", old="100644", new="100644"):
    return Change(path, old, new, status)


def test_infrastructure_by_name_at_any_depth_and_shadowing_only_when_added():
    assert infra_reason(change("a/b/c/conftest.py")) == "conftest.py"
    assert infra_reason(change("pytest.ini", "A", "000000")) == "pytest.ini"
    assert infra_reason(change("src/x.pth")) == ".pth file"
    assert infra_reason(change("sitecustomize.py", "A")) == "sitecustomize.py"
    assert "shadows" in infra_reason(change("_pytest/__init__.py", "A", "000000"))
    assert infra_reason(change("_pytest/runner.py", "M")) is None  # the repository is pytest itself
    assert infra_reason(change("src/_pytest/runner.py", "A", "000000")) is None
    assert infra_reason(change("tests/data", "A", "000000", "120000")) == "symbolic link"
    assert infra_reason(change("pkg/mod.py")) is None


def test_pytest_config_sections_only():
    base = "[metadata]\nname = x\n\n[tool:pytest]\naddopts = -q\n"
    assert pytest_config("setup.cfg", base) == pytest_config(
        "setup.cfg", base.replace("name = x", "name = y")
    )
    assert pytest_config("setup.cfg", base) != pytest_config("setup.cfg", base.replace("-q", "-p evil"))
    assert pytest_config("setup.cfg", "[metadata]\nname = x\n") == ""
    assert pytest_config("tox.ini", "[pytest]\naddopts = -p evil\n") != ""
    entry = "[options.entry_points]\npytest11 =\n    evil = pkg.evil\n"
    assert pytest_config("setup.cfg", entry) != ""
    toml = '[project]\nname = "x"\n[tool.pytest.ini_options]\naddopts = "-q"\n'
    assert pytest_config("pyproject.toml", toml) != pytest_config("pyproject.toml", toml.replace("-q", "-x"))
    assert pytest_config("pyproject.toml", '[project]\nname = "x"\n') == ""
    assert pytest_config("pyproject.toml", "not = [toml") == "not = [toml"  # unparseable: every change counts
    assert pytest_config("setup.py", "setup(entry_points={'pytest11': ['e = m']})") != ""


def rec(**kw):
    return json.dumps(kw) + "\n"


def test_reporter_worst_phase_wins_and_unfinished_sessions_are_counted():
    raw = (
        rec(e="start", pid=1)
        + rec(e="test", nodeid="t::a", when="setup", outcome="passed", xfail=False)
        + rec(e="test", nodeid="t::a", when="call", outcome="passed", xfail=False)
        + rec(e="test", nodeid="t::a", when="teardown", outcome="failed", xfail=False)
        + rec(e="test", nodeid="t::b", when="call", outcome="failed", xfail=False)
        + rec(e="test", nodeid="t::c", when="call", outcome="skipped", xfail=True)
        + rec(e="test", nodeid="t::d", when="call", outcome="passed", xfail=False)
        + "garbage\n"
    ).encode()
    rep = read_reporter(raw)
    assert rep.tests == {"t::a": "ERROR", "t::b": "FAILED", "t::c": "XFAIL", "t::d": "PASSED"}
    assert (rep.starts, rep.finishes, rep.garbled) == (1, 0, 1)
    assert "PASSED t::d\n" in reporter_lines(rep)


def test_merge_needs_both_channels_to_pass():
    log = {"a": "PASSED", "b": "PASSED", "c": "FAILED", "d": "PASSED"}
    reporter = {"a": "PASSED", "b": "FAILED", "e": "FAILED"}
    assert merge(log, reporter) == {"a": "PASSED", "b": "FAILED", "c": "FAILED", "d": "FAILED", "e": "FAILED"}
