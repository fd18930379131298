"""The action format: an optional `<think>...</think>` monologue, then exactly one SWE-agent XML call.

    <think>the bug is in the slice</think>
    <function=str_replace_editor>
    <parameter=command>str_replace</parameter>
    <parameter=path>/testbed/pkg/mod.py</parameter>
    <parameter=old_str>x[1:]</parameter>
    <parameter=new_str>x[:]</parameter>
    </function>

Text before the call without `<think>` tags (SWE-smith's style) is the thought too. A parameter
value loses one leading and one trailing newline, nothing else, so indentation survives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TOOLS: dict[str, dict[str, list[str]]] = {
    "bash": {"required": ["command"], "optional": []},
    "str_replace_editor": {
        "required": ["command", "path"],
        "optional": ["file_text", "old_str", "new_str", "insert_line", "view_range"],
    },
    "submit": {"required": [], "optional": []},
}
EDITOR_COMMANDS = ("view", "create", "str_replace", "insert", "undo_edit")

_FUNC_OPEN = re.compile(r"<function\s*=\s*([^>\s]*)\s*>")
_FUNC_CLOSE = "</function>"
_PARAM = re.compile(r"<parameter\s*=\s*([^>\s]*)\s*>(.*?)</parameter>", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class FormatError(Exception):
    """The model's output is not one well-formed call; the message is fed back to the model."""


@dataclass
class Action:
    name: str
    params: dict[str, str] = field(default_factory=dict)
    raw: str = ""
    """The call exactly as the model wrote it, from `<function=` to `</function>`."""

    def canonical(self) -> str:
        return format_action(self.name, self.params)


def format_action(name: str, params: dict[str, str] | None = None) -> str:
    """The canonical XML call: one parameter per line, tool-spec order, then the rest sorted."""
    params = params or {}
    spec = TOOLS.get(name, {"required": [], "optional": []})
    order = [p for p in spec["required"] + spec["optional"] if p in params]
    order += sorted(p for p in params if p not in order)
    lines = [f"<function={name}>"]
    lines += [f"<parameter={p}>{params[p]}</parameter>" for p in order]
    lines.append("</function>")
    return "\n".join(lines)


def think_reply(thought: str, action: str) -> str:
    """The reply the agent's system prompt asks for: reasoning in <think> tags, then one call."""
    return f"<think>\n{thought}\n</think>\n{action}" if thought else action


def _strip_one_newline(v: str) -> str:
    if v.startswith("\n"):
        v = v[1:]
    if v.endswith("\n"):
        v = v[:-1]
    return v


def split_thought(text: str) -> tuple[str, str]:
    """Split a response into (thought, rest-from-the-first-call). No validation."""
    m = _FUNC_OPEN.search(text)
    before, after = (text[: m.start()], text[m.start() :]) if m else (text, "")
    think = _THINK.search(before)
    thought = think.group(1) if think else before.replace("<think>", "").replace("</think>", "")
    return thought.strip(), after


def parse_action(text: str, tools: dict[str, dict[str, list[str]]] | None = None) -> tuple[str, Action]:
    """Return (thought, action) or raise FormatError saying what is wrong."""
    tools = TOOLS if tools is None else tools
    if text.count("<think>") != text.count("</think>"):
        raise FormatError(
            "Unclosed <think> tag: close your reasoning with </think> before the function call."
        )
    opens = list(_FUNC_OPEN.finditer(text))
    if not opens:
        raise FormatError("No function call found. End your response with exactly one <function=...> call.")
    if len(opens) > 1:
        raise FormatError(f"Found {len(opens)} function calls; call exactly one function per response.")
    start = opens[0]
    end = text.find(_FUNC_CLOSE, start.end())
    if end < 0:
        raise FormatError("The function call is not closed: end it with </function>.")
    if text.find("</think>", start.end()) >= 0 or text.find("<think>", start.end()) >= 0:
        raise FormatError("Reasoning must come before the function call, not inside or after it.")
    name = start.group(1).strip().strip("\"'")
    if name not in tools:
        raise FormatError(f"Unknown function {name!r}. Available functions: {', '.join(tools)}.")
    body = text[start.end() : end]
    params: dict[str, str] = {}
    for m in _PARAM.finditer(body):
        key = m.group(1).strip().strip("\"'")
        if key in params:
            raise FormatError(f"Parameter {key!r} is given twice.")
        params[key] = _strip_one_newline(m.group(2))
    leftover = _PARAM.sub("", body)
    if "<parameter" in leftover or "</parameter>" in leftover:
        raise FormatError("A <parameter=...> tag is not closed with </parameter>.")
    spec = tools[name]
    allowed = set(spec["required"]) | set(spec["optional"])
    unknown = [p for p in params if p not in allowed]
    if unknown:
        raise FormatError(f"Unknown parameter(s) for {name}: {', '.join(unknown)}.")
    missing = [p for p in spec["required"] if p not in params]
    if missing:
        raise FormatError(f"Missing required parameter(s) for {name}: {', '.join(missing)}.")
    if name == "str_replace_editor" and params["command"] not in EDITOR_COMMANDS:
        raise FormatError(
            f"Unknown str_replace_editor command {params['command']!r}; use one of {', '.join(EDITOR_COMMANDS)}."
        )
    thought, _ = split_thought(text[: start.start()])
    action = Action(name=name, params=params, raw=text[start.start() : end + len(_FUNC_CLOSE)])
    return thought, action
