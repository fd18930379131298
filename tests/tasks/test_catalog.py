"""Every bug of the catalog is real: its edits apply, its new test fails on it and passes on the fix."""

from __future__ import annotations

from collections import Counter

import pytest

from swesrl.tasks.catalog import FAMILIES, TEST_FAMILIES, THEMES, apply_bug
from swesrl.tasks.generate import (
    Module,
    render_module,
    render_test,
    repro_code,
    run_repro,
    run_tests_in_process,
)

CASES = [(t, si, bi) for t in THEMES for si, s in enumerate(t.snippets) for bi in range(len(s.bugs))]


def _module(theme):
    return Module(theme, theme.module_names[0], "", {s.key: s.aliases[0] for s in theme.snippets})


def test_families_and_names():
    sites = Counter(b.family for t in THEMES for s in t.snippets for b in s.bugs)
    assert set(sites) == set(FAMILIES)
    assert len(FAMILIES) >= 15
    assert min(sites.values()) >= 2, sites
    assert set(TEST_FAMILIES) < set(FAMILIES)
    aliases = [a for t in THEMES for s in t.snippets for a in s.aliases]
    assert len(aliases) == len(set(aliases))
    modules = [m for t in THEMES for m in t.module_names]
    assert len(modules) == len(set(modules))
    for t in THEMES:
        for s in t.snippets:
            names = [n for n, _ in s.tests] + [b.test_name for b in s.bugs]
            assert len(names) == len(set(names)), s.key


@pytest.mark.parametrize("theme", THEMES, ids=lambda t: t.key)
def test_correct_code_passes_all_tests(theme):
    m = _module(theme)
    tests = [render_test(m.aliases[s.key], n, b) for s in theme.snippets for n, b in s.tests]
    tests += [render_test(m.aliases[s.key], b.test_name, b.test) for s in theme.snippets for b in s.bugs]
    assert all(run_tests_in_process(render_module(m), tests))


@pytest.mark.parametrize(("theme", "si", "bi"), CASES, ids=lambda v: getattr(v, "key", str(v)))
def test_bug_is_caught_and_reported(theme, si, bi):
    m = _module(theme)
    snippet = theme.snippets[si]
    bug = snippet.bugs[bi]
    assert apply_bug(snippet.code, bug) != snippet.code
    buggy = render_module(m, si, bug)
    fixed = render_module(m)
    alias = m.aliases[snippet.key]
    new = render_test(alias, bug.test_name, bug.test)
    assert run_tests_in_process(buggy, [new]) == [False]
    assert run_tests_in_process(fixed, [new]) == [True]
    body = repro_code(bug.test.replace("__fn__", alias))
    assert run_repro(buggy, body) != run_repro(fixed, body) or run_repro(
        buggy, repro_code(bug.test.replace("__fn__", alias), use_repr=True)
    ) != run_repro(fixed, repro_code(bug.test.replace("__fn__", alias), use_repr=True))
    # an issue never gives the fix away
    for old, _ in bug.edits:
        if old.strip():
            assert old.strip() not in bug.symptom and old.strip() not in bug.title
