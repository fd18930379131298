"""The action parser on real SWE-smith data and on every kind of malformed reply."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from swesrl.core.actions import FormatError, format_action, parse_action

REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "swesmith_ft_xml_example.jsonl"


def swesmith_turns() -> list[str]:
    rows = [json.loads(line) for line in REAL.read_text().splitlines() if line.strip()]
    return [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]


def test_every_swesmith_turn_parses_exactly():
    turns = swesmith_turns()
    assert len(turns) == 37 + 44 + 22
    for text in turns:
        thought, action = parse_action(text)
        start = text.index("<function=")
        assert thought == text[:start].strip()
        assert action.raw == text[start : text.index("</function>") + len("</function>")]
        assert text[start + len(action.raw) :].strip() == ""
        for name, value in action.params.items():
            body = re.search(rf"<parameter={name}>(.*?)</parameter>", action.raw, re.DOTALL).group(1)
            assert value == body.removeprefix("\n").removesuffix("\n")
        assert parse_action(action.canonical())[1].params == action.params


def test_think_tags_and_multiline_values():
    text = (
        "<think>\nThe slice is wrong.\n</think>\n<function=str_replace_editor>\n"
        "<parameter=command>str_replace</parameter>\n<parameter=path>/testbed/a.py</parameter>\n"
        "<parameter=old_str>\n    x = y[1:]\n</parameter>\n<parameter=new_str>    x = y[:]\n\n</parameter>\n</function>"
    )
    thought, action = parse_action(text)
    assert thought == "The slice is wrong."
    assert action.params["old_str"] == "    x = y[1:]"
    assert action.params["new_str"] == "    x = y[:]\n"
    assert parse_action(format_action("submit")) == ("", parse_action("<function=submit>\n</function>")[1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I think the fix is to change the slice.", "No function call found"),
        (
            "<function=bash><parameter=command>ls</parameter></function>\n"
            "<function=bash><parameter=command>pwd</parameter></function>",
            "Found 2 function calls",
        ),
        ("<function=python><parameter=code>1</parameter></function>", "Unknown function 'python'"),
        ("<function=bash></function>", "Missing required parameter(s) for bash: command"),
        ("<function=str_replace_editor><parameter=command>view</parameter></function>", "Missing required"),
        ("<function=bash><parameter=command>ls</parameter>", "not closed"),
        ("<function=bash><parameter=command>ls</function>", "not closed with </parameter>"),
        (
            "<think>unfinished thought <function=bash><parameter=command>ls</parameter></function>",
            "Unclosed <think>",
        ),
        ("<function=bash><parameter=cmd>ls</parameter></function>", "Unknown parameter(s) for bash: cmd"),
        (
            "<function=str_replace_editor><parameter=command>delete</parameter>"
            "<parameter=path>/a</parameter></function>",
            "Unknown str_replace_editor command 'delete'",
        ),
    ],
)
def test_format_errors(text, message):
    with pytest.raises(FormatError, match=re.escape(message)):
        parse_action(text)
