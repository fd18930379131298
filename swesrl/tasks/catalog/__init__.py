r"""The bug catalog of the bundled suite: themed modules made of small functions, each with tests and bugs.

The catalog is data: one YAML file per theme in this folder (`text.yaml`, `stats.yaml`, ...). A theme
names the module names a repository may give it and holds snippets. A `Snippet` is one function written
correctly (`__fn__` is replaced by the function's name in a repository), its tests (pass on the correct
code) and its `Bug`s. A bug is a list of textual edits that turn the correct code into the buggy code
(`old` / `new`, or `edits`: a list of them), a bug family, a new test that fails on the buggy code and
passes on the correct one, and the title / symptom of the issue a user would file. Reproduction
snippets and expected / actual outputs in issues are computed by running the code, so they are always
true. `tests/tasks/test_catalog.py` checks every bug of the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Bug:
    family: str
    edits: tuple[tuple[str, str], ...]
    """(correct text, buggy text) pairs; each correct text occurs exactly once in the snippet."""
    test_name: str
    test: str
    """Body of the new test (uses `__fn__`); fails on the buggy code, passes on the fix."""
    title: str
    symptom: str


@dataclass(frozen=True)
class Snippet:
    key: str
    aliases: tuple[str, ...]
    code: str
    tests: tuple[tuple[str, str], ...]
    bugs: tuple[Bug, ...]
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Theme:
    key: str
    module_names: tuple[str, ...]
    doc: str
    snippets: tuple[Snippet, ...] = field(default_factory=tuple)


FAMILIES = (
    "swapped_operator",
    "off_by_one",
    "inverted_condition",
    "wrong_default",
    "missing_none_guard",
    "wrong_exception",
    "wrong_dict_key",
    "int_division",
    "wrong_sort_order",
    "boundary_condition",
    "wrong_variable",
    "mutable_default",
    "string_format",
    "missing_normalisation",
    "early_return",
    "swapped_arguments",
    "wrong_builtin",
    "wrong_initial_value",
    "missing_copy",
)

TEST_FAMILIES = ("early_return", "mutable_default", "swapped_arguments")
"""Bug families held out of the train split (every task of these families is a test task)."""

THEME_FILES = ("text", "stats", "seqs", "config", "orders", "time", "geometry", "paths", "jobs")
"""The themes, in the order the generator draws from them (the order is part of a seed's suite)."""


def _bug(d: dict) -> Bug:
    edits = d["edits"] if "edits" in d else [{"old": d["old"], "new": d["new"]}]
    return Bug(
        d["family"],
        tuple((e["old"], e["new"]) for e in edits),
        d["name"],
        d["test"],
        d["title"],
        d["symptom"],
    )


def load_theme(path: Path) -> Theme:
    d = yaml.safe_load(path.read_text(encoding="utf-8"))
    snippets = tuple(
        Snippet(
            s["key"],
            tuple(s["aliases"]),
            s["code"],
            tuple((t["name"], t["body"]) for t in s["tests"]),
            tuple(_bug(b) for b in s["bugs"]),
            tuple(s.get("imports", ())),
        )
        for s in d["snippets"]
    )
    return Theme(d["key"], tuple(d["module_names"]), d["doc"], snippets)


THEMES: tuple[Theme, ...] = tuple(load_theme(Path(__file__).parent / f"{name}.yaml") for name in THEME_FILES)


def apply_bug(code: str, bug: Bug) -> str:
    for old, new in bug.edits:
        if code.count(old) != 1:
            raise ValueError(f"bug edit {old!r} must occur exactly once (found {code.count(old)})")
        code = code.replace(old, new)
    return code
