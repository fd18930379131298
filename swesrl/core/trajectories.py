"""Trajectory readers: every supported format becomes one normalised trajectory.

    {"instance_id", "task", "task_message", "steps": [Step(thought, action, raw_action, observation)],
     "responses", "resolved", "source_format", "info"}

- `task` is the problem statement (what the agent's task template renders); `task_message` is the
  first user message exactly as the source had it.
- `action` is the canonical XML call (`format_action`), or None where the turn held no usable call;
  `raw_action` is the action exactly as the source wrote it (an XML call, a JSON argument string, a
  bash block, a SWE-agent command line).
- `observation` is the tool output without the scaffold's wrapper ("OBSERVATION:\\n", mini-swe-agent's
  `<returncode>`/`<output>` tags, "ran successfully and did not produce any output" = "").
- `responses[i]` is the assistant message of step i verbatim where it is in our XML format
  (SWE-smith, this project), else None: full-history prompts then repeat it as the agent had it.
- `observation_messages[i]` (this project's trajectories only) is the observation message verbatim,
  so prompts rebuilt from our own runs are byte-identical even where the template clipped output.

Formats (detected per record, `source_format`): `swesrl` (this project: SWE-smith messages + info),
`swesmith` (`{"messages", "instance_id"}`), `sweagent` (`.traj`: xml / thought-action / function
calling), `minisweagent` (a message list, or `{"info", "messages"}`, text or tool calls),
`openai` (tool-calling message lists: OpenHands, SWE-Gym, nebius; `trajectory`/`messages` keys).
Bad records are yielded as `Dropped(source, reason, detail)`; reading never stops on one.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

from typing_extensions import NotRequired

from swesrl.core.actions import FormatError, format_action, parse_action, split_thought


class Step(NamedTuple):
    thought: str
    action: str | None
    raw_action: str
    observation: str


class Trajectory(TypedDict):
    instance_id: str
    task: str
    task_message: str
    system: str | None
    steps: list[Step]
    responses: list[str | None]
    resolved: bool | None
    source_format: str
    source: str
    info: dict
    observation_messages: NotRequired[list[str | None]]
    """This project's own trajectories: each observation message verbatim (None: none followed)."""


@dataclass
class Dropped:
    source: str
    """`file` or `file:line` (or `file#index` inside a JSON list)."""
    reason: str
    """A short stable key counted in stats: bad_json, unknown_format, empty_file, no_actions, ..."""
    detail: str = ""


EMPTY_OUTPUT = "Your command ran successfully and did not produce any output."
_OBS_PREFIX = re.compile(r"\A(?:OBSERVATION:\n|Observation: ?\n?|EXECUTION RESULT of \[\w+\]:\n)")
_FUNC_OPEN = re.compile(r"<function\s*=\s*([^>\s]*)\s*>")
_PARAM = re.compile(r"<parameter\s*=\s*([^>\s]*)\s*>(.*?)</parameter>", re.DOTALL)
_MINI_OBS = re.compile(r"\A<returncode>(-?\d+)</returncode>\n<output>\n?(.*?)</output>\s*\Z", re.DOTALL)
_FENCE = re.compile(r"```([A-Za-z_]*)[ \t]*\n(.*?)\n?```", re.DOTALL)
_SWEAGENT_CMD = re.compile(r"<command>\n?(.*?)\n?</command>", re.DOTALL)
_THOUGHT_LABEL = re.compile(r"\A(?:THOUGHT|DISCUSSION):?[ \t]*\n?[ \t]*")
_SUBMIT_SENTINELS = ("COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "MINI_SWE_AGENT_FINAL_OUTPUT")
_TASK_PATTERNS = [
    re.compile(r"<pr_description>\n?(.*?)\n?</pr_description>", re.DOTALL),
    re.compile(r"<issue_description>\n?(.*?)\n?</issue_description>", re.DOTALL),
    re.compile(r"<issue>\n?(.*?)\n?</issue>", re.DOTALL),
    re.compile(
        r"\AWe're currently solving the following issue within our repository\. Here's the issue text:\nISSUE:\n(.*?)\n\nINSTRUCTIONS:",
        re.DOTALL,
    ),
    re.compile(r"\APlease solve this issue: (.*?)\n\nYou can execute bash commands", re.DOTALL),
]
# function-call tool names of other scaffolds -> ours
_TOOL_ALIASES = {
    "execute_bash": "bash",
    "run": "bash",
    "cmd_run": "bash",
    "shell": "bash",
    "terminal": "bash",
    "str_replace_based_edit_tool": "str_replace_editor",
    "finish": "submit",
}
_ARG_ALIASES = {"cmd": "command"}


def _text(content: Any) -> str:
    """Message content as text: strings as they are, OpenAI content-part lists joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def extract_task(task_message: str) -> str:
    """The problem statement inside a scaffold's task message (the whole message if no known wrapper)."""
    for pat in _TASK_PATTERNS:
        m = pat.search(task_message)
        if m:
            return m.group(1)
    return task_message


def unwrap_observation(text: str) -> str:
    """Tool output without the scaffold's wrapper (see module docstring)."""
    if text.strip() == EMPTY_OUTPUT:
        return ""
    m = _MINI_OBS.match(text)
    if m:
        return m.group(2)
    return _OBS_PREFIX.sub("", text, count=1)


def _param_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(v)


def canonical_from_call(name: str, arguments: Any) -> str:
    """A function call (name + JSON arguments, string or dict) as the canonical XML call."""
    if isinstance(arguments, str):
        args = json.loads(arguments) if arguments.strip() else {}
    else:
        args = dict(arguments or {})
    if not isinstance(args, dict):
        raise ValueError(f"arguments of {name} are not a JSON object")
    name = _TOOL_ALIASES.get(name, name)
    params = {_ARG_ALIASES.get(k, k): _param_str(v) for k, v in args.items() if v is not None}
    if name == "submit":
        params = {}
    if name == "bash" and "command" in params:
        return canonical_from_command(params["command"])
    return format_action(name, params)


def canonical_from_command(command: str) -> str:
    """A shell command line (mini-swe-agent block, SWE-agent command) as the canonical XML call.

    The submit command / mini-swe-agent's submit sentinel become `submit()`; SWE-agent's
    `str_replace_editor CMD PATH --arg value` lines become editor calls; anything else is `bash`.
    """
    stripped = command.strip()
    first = stripped.split("\n", 1)[0]
    if stripped == "submit" or any(s in first for s in _SUBMIT_SENTINELS) and first.startswith("echo"):
        return format_action("submit")
    if stripped.startswith("str_replace_editor "):
        try:
            argv = shlex.split(stripped)
        except ValueError:
            argv = []
        if len(argv) >= 3 and len(argv) % 2 == 1:
            params = {"command": argv[1], "path": argv[2]}
            for flag, value in zip(argv[3::2], argv[4::2], strict=False):
                if not flag.startswith("--"):
                    break
                params[flag[2:]] = value
            else:
                return format_action("str_replace_editor", params)
    return format_action("bash", {"command": stripped})


def _xml_step(content: str) -> tuple[str, str | None, str]:
    """(thought, canonical action or None, raw action) of an XML-format assistant turn."""
    try:
        thought, action = parse_action(content)
    except FormatError:
        thought, rest = split_thought(content)
        return thought, _aliased_xml_call(rest), rest
    return thought, action.canonical(), action.raw


def _aliased_xml_call(rest: str) -> str | None:
    """One XML call of another scaffold's tool set (OpenHands' `execute_bash`, `finish`) as ours, else None."""
    opens = _FUNC_OPEN.findall(rest)
    end = rest.find("</function>")
    if len(opens) != 1 or end < 0 or opens[0] not in _TOOL_ALIASES:
        return None
    params = {m.group(1): _strip_newline(m.group(2)) for m in _PARAM.finditer(rest[:end])}
    action = canonical_from_call(opens[0], params)
    try:
        parse_action(action)
    except FormatError:
        return None
    return action


def _strip_newline(v: str) -> str:
    v = v[1:] if v.startswith("\n") else v
    return v[:-1] if v.endswith("\n") else v


def clean_thought(text: str) -> str:
    """Reasoning without surrounding blanks and the scaffold's `THOUGHT:` / `DISCUSSION` label."""
    return _THOUGHT_LABEL.sub("", text.strip())


def _text_step(content: str) -> tuple[str, str | None, str]:
    """(thought, action, raw) of a text turn: XML call, else SWE-agent <command>, else one fenced block."""
    if "<function=" in content:
        return _xml_step(content)
    m = _SWEAGENT_CMD.search(content)
    if m is None:
        blocks = [
            b for b in _FENCE.finditer(content) if b.group(1) in ("", "bash", "sh", "mswea_bash_command")
        ]
        if len(blocks) != 1:
            return content.strip(), None, ""
        m = blocks[0]
        raw = m.group(2)
    else:
        raw = m.group(1)
    return clean_thought(content[: m.start()]), canonical_from_command(raw), raw


_ROLE_ALIASES = {"ai": "assistant", "gpt": "assistant", "human": "user", "observation": "user"}


def _norm_messages(messages: list) -> list[dict]:
    out = []
    for m in messages:
        if not isinstance(m, dict):
            raise ValueError("a message is not a JSON object")
        role = m.get("role", m.get("from"))
        role = _ROLE_ALIASES.get(role, role)
        content = m["content"] if "content" in m else m.get("text", m.get("value"))
        out.append({**m, "role": role, "content": _text(content)})
    return out


def _from_messages(messages: list[dict], fmt: str) -> tuple[str | None, str, list[Step], list, list]:
    """(system, task message, steps, responses, rendered observations) of an OpenAI-style message list."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    rest = messages[1:] if system is not None else messages
    i = next((j for j, m in enumerate(rest) if m["role"] == "user"), None)
    if i is None:
        raise ValueError("no user (task) message")
    task_message = rest[i]["content"]
    steps: list[Step] = []
    responses: list[str | None] = []
    rendered: list[str | None] = []
    turns = rest[i + 1 :]
    j = 0
    while j < len(turns):
        m = turns[j]
        j += 1
        if m["role"] != "assistant":
            continue  # stray user/tool turns before the first action (e.g. demonstrations' feedback)
        obs_msgs = []
        while j < len(turns) and turns[j]["role"] in ("user", "tool"):
            obs_msgs.append(turns[j])
            j += 1
        calls = m.get("tool_calls") or []
        if calls:
            thought = m["content"].strip()
            for n, call in enumerate(calls):
                fn = call.get("function", call)
                raw = fn.get("arguments", "")
                raw_s = raw if isinstance(raw, str) else json.dumps(raw)
                try:
                    action = canonical_from_call(fn["name"], raw)
                except (ValueError, KeyError):
                    action = None
                cid = call.get("id")
                match = [o for o in obs_msgs if cid and o.get("tool_call_id") == cid]
                if not match:
                    match = obs_msgs[n : n + 1] if len(calls) > 1 else obs_msgs
                obs = "\n".join(unwrap_observation(o["content"]) for o in match)
                steps.append(Step(thought if n == 0 else "", action, raw_s, obs))
                responses.append(None)
                if fmt == "swesrl":
                    rendered.append(None)
            continue
        content = m["content"]
        xml = fmt in ("swesmith", "swesrl")
        if xml:
            thought, action, raw = _xml_step(content)
        else:
            thought, action, raw = _text_step(content)
        obs = "\n".join(unwrap_observation(o["content"]) for o in obs_msgs)
        steps.append(Step(thought, action, raw, obs))
        aliased = action is not None and action.split(">", 1)[0] != raw.split(">", 1)[0]
        responses.append(content if (xml or "<function=" in content) and not aliased else None)
        if fmt == "swesrl":
            rendered.append("\n".join(o["content"] for o in obs_msgs) if obs_msgs else None)
    return system, task_message, steps, responses, rendered


def _resolved(*dicts: dict) -> bool | None:
    for d in dicts:
        for key in ("resolved", "target", "success"):
            v = d.get(key)
            if isinstance(v, bool):
                return v
    return None


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _has_tool_calls(messages: list[dict]) -> bool:
    return any(m.get("tool_calls") for m in messages)


def detect_format(record: Any) -> str | None:
    """The format name of one decoded JSON record, or None."""
    if isinstance(record, list):
        if record and all(isinstance(m, dict) and "role" in m for m in record):
            return "minisweagent"
        return None
    if not isinstance(record, dict):
        return None
    traj = record.get("trajectory")
    if traj == [] and "history" in record:
        return "sweagent"  # an episode that ended before its first action
    if isinstance(traj, list) and traj and isinstance(traj[0], dict):
        if "action" in traj[0] and ("observation" in traj[0] or "response" in traj[0]):
            return "sweagent"
        if "role" in traj[0]:
            return "openai"
    messages = _maybe_json(record.get("messages"))
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        info = record.get("info") if isinstance(record.get("info"), dict) else {}
        tf = str(record.get("trajectory_format", ""))
        if tf.startswith("mini-swe-agent") or "mini_version" in info:
            return "minisweagent"
        if _has_tool_calls(messages):
            return "openai"
        if "info" in record:
            return "swesrl"
        return "swesmith"
    history = record.get("history")
    if isinstance(history, list) and history and isinstance(history[0], dict) and "role" in history[0]:
        return "openai"
    return None


def _sweagent(record: dict, source: str) -> Trajectory:
    info = record.get("info") or {}
    replay = _maybe_json(record.get("replay_config")) or {}
    ps = replay.get("problem_statement") if isinstance(replay, dict) else None
    history = [m for m in record.get("history") or [] if isinstance(m, dict) and not m.get("is_demo")]
    system = next((_text(m.get("content")) for m in history if m.get("role") == "system"), None)
    task_message = next((_text(m.get("content")) for m in history if m.get("role") == "user"), "")
    task = ps["text"] if isinstance(ps, dict) and ps.get("text") else extract_task(task_message)
    actions = [
        m for m in history if m.get("role") == "assistant" and m.get("message_type", "action") == "action"
    ]
    traj = record["trajectory"]
    use_calls = len(actions) == len(traj) and all(m.get("tool_calls") for m in actions)
    steps: list[Step] = []
    for k, s in enumerate(traj):
        thought = clean_thought(_text(s.get("thought")))
        raw = _text(s.get("action"))
        action: str | None
        if use_calls:
            fn = actions[k]["tool_calls"][0].get("function", {})
            raw = (
                fn.get("arguments", "")
                if isinstance(fn.get("arguments"), str)
                else json.dumps(fn.get("arguments"))
            )
            try:
                action = canonical_from_call(fn["name"], fn.get("arguments", {}))
            except (ValueError, KeyError):
                action = None
        elif raw.strip():
            action = canonical_from_command(raw)
        else:
            action = None
        steps.append(Step(thought, action, raw, _text(s.get("observation"))))
    iid = (ps or {}).get("id") if isinstance(ps, dict) else None
    iid = (
        iid
        or record.get("instance_id")
        or Path(source.split(":")[0].split("#")[0]).name.removesuffix(".traj")
    )
    return Trajectory(
        instance_id=str(iid),
        task=task,
        task_message=task_message,
        system=system,
        steps=steps,
        responses=[None] * len(steps),
        resolved=_resolved(record, info),
        source_format="sweagent",
        source=source,
        info={k: v for k, v in info.items() if k in ("exit_status", "submission", "model_stats")},
    )


def normalise(record: Any, source: str) -> Trajectory | Dropped:
    """One decoded JSON record -> a trajectory, or Dropped saying why not."""
    fmt = detect_format(record)
    if fmt is None:
        keys = ", ".join(sorted(record)[:8]) if isinstance(record, dict) else type(record).__name__
        return Dropped(source, "unknown_format", f"no known trajectory format (keys: {keys})")
    try:
        if fmt == "sweagent":
            traj = _sweagent(record, source)
        else:
            rec = {} if isinstance(record, list) else record
            raw_msgs = (
                record
                if isinstance(record, list)
                else _maybe_json(rec.get("messages") or rec.get("trajectory") or rec.get("history"))
            )
            messages = _norm_messages(raw_msgs)
            system, task_message, steps, responses, rendered = _from_messages(messages, fmt)
            info = rec.get("info") if isinstance(rec.get("info"), dict) else {}
            iid = (
                rec.get("instance_id")
                or info.get("instance_id")
                or Path(source.split(":")[0].split("#")[0]).name.split(".")[0]
            )
            traj = Trajectory(
                instance_id=str(iid),
                task=extract_task(task_message),
                task_message=task_message,
                system=system,
                steps=steps,
                responses=responses,
                resolved=_resolved(rec, info),
                source_format=fmt,
                source=source,
                info=info,
            )
            if rendered:
                traj["observation_messages"] = rendered
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        return Dropped(source, "malformed", f"{fmt}: {e}")
    if not any(s.action for s in traj["steps"]):
        return Dropped(
            source, "no_actions", f"{fmt} trajectory of {traj['instance_id']} has no usable action"
        )
    return traj


class RawLine(str):
    """A JSONL line not decoded yet (decoding happens where the record is normalised, e.g. in a worker)."""


def decode(record: Any, source: str) -> Any:
    """The JSON value of a record from `iter_records`; raises ValueError for a bad line."""
    if isinstance(record, RawLine):
        try:
            return json.loads(record)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    return record


def load_and_normalise(record: Any, source: str) -> Trajectory | Dropped:
    """`normalise` of one record from `iter_records` (a JSONL line is decoded first)."""
    try:
        value = decode(record, source)
    except ValueError as e:
        return Dropped(source, "bad_json", str(e))
    return normalise(value, source)


def iter_records(paths: Iterable[str | Path]) -> Iterator[tuple[Any, str] | Dropped]:
    """Every record of every file (JSONL lines undecoded, as RawLine) with its source label."""
    for path in expand_paths(paths):
        if not path.is_file():
            yield Dropped(str(path), "missing_file", "no such file")
            continue
        try:
            yield from _records(path)
        except (UnicodeDecodeError, OSError) as e:
            yield Dropped(str(path), "unreadable", str(e))


def _records(path: Path) -> Iterator[tuple[Any, str] | Dropped]:
    """Records of a file with their source label: JSONL line by line, else one decoded document."""
    src = str(path)
    with open(path, encoding="utf-8") as f:
        head = f.read(1 << 16)
        if not head.strip():
            yield Dropped(src, "empty_file", "the file is empty")
            return
        f.seek(0)
        jsonl = path.suffix == ".jsonl"
        if not jsonl:
            first = head.lstrip().split("\n", 1)[0].strip()
            try:
                json.loads(first)
                jsonl = head.lstrip().startswith("{") and "\n" in head.strip()
            except json.JSONDecodeError:
                jsonl = False
        if jsonl:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield RawLine(line), f"{src}:{lineno}"
            return
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            yield Dropped(src, "bad_json", f"not valid JSON ({e.msg} at line {e.lineno})")
            return
    if isinstance(doc, list) and doc and all(isinstance(r, dict) and "role" not in r for r in doc):
        for n, r in enumerate(doc):  # a JSON list of trajectories
            yield r, f"{src}#{n}"
    else:
        yield doc, src


TRAJECTORY_SUFFIXES = (".jsonl", ".json", ".traj")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders searched recursively for *.jsonl, *.json and *.traj files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.name.endswith(TRAJECTORY_SUFFIXES))
        else:
            out.append(p)
    return out


def iter_trajectories(paths: Iterable[str | Path]) -> Iterator[Trajectory | Dropped]:
    """Stream normalised trajectories (and Dropped items) from files and folders, one record at a time."""
    for item in iter_records(paths):
        yield item if isinstance(item, Dropped) else load_and_normalise(*item)


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """All trajectories of one file or folder (Dropped items are left out)."""
    return [t for t in iter_trajectories([path]) if not isinstance(t, Dropped)]
