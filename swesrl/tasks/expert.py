"""A scripted expert for the bundled tasks: a Model that solves a task through the real agent loop.

It explores the repository (find / directory view / grep), views the buggy function, reproduces
the issue with the snippet from the problem statement, edits the file with `str_replace_editor`
(the edit is derived from the gold patch's hunks), reruns the reproduction and the tests, and
submits. Every reply is a short plain-text thought followed by one SWE-agent XML call (the
SWE-smith format). A seeded generator varies the sequence (which exploration, full view or a
range, a script or a heredoc, tests before the fix or not, how much context the edit carries), so
trajectories are not one fixed script.

It decides from the conversation: the step is the number of assistant messages so far, and a
failed edit (non-unique or missing `old_str`) is retried with the hunk's full context. It needs
the full history in its prompt: run it with `context.kind=full` (`swesrl tasks expert` does).
"""

from __future__ import annotations

import json
import logging
import random
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swesrl.agent.batch import run_batch, traj_path
from swesrl.agent.loop import AgentConfig, load_agent_config, run_agent
from swesrl.core.actions import format_action, think_reply
from swesrl.core.instances import repo_source
from swesrl.envs import SandboxConfig, env_for_instance
from swesrl.harness import grade_patch
from swesrl.utils import (
    OnProgress,
    UserError,
    append_jsonl,
    atomic_write_text,
    iter_jsonl,
    parallel_map,
    write_jsonl,
)

log = logging.getLogger(__name__)

FIX_NOTES = {
    "swapped_operator": "the arithmetic/logical operator in this expression is the wrong one",
    "off_by_one": "the index/slice/range bound is off by one",
    "inverted_condition": "the condition is inverted",
    "wrong_default": "the default value of the parameter does not match what the docstring promises",
    "missing_none_guard": "nothing handles the None case before the value is used",
    "wrong_exception": "it raises a different exception type than the documented one",
    "wrong_dict_key": "it reads the wrong key",
    "int_division": "it uses the wrong kind of division (floor vs true division)",
    "wrong_sort_order": "the ordering is reversed",
    "boundary_condition": "the comparison at the boundary is wrong (strict vs non-strict)",
    "wrong_variable": "it uses the wrong variable in one place",
    "mutable_default": "a mutable default argument is shared between calls",
    "string_format": "the format specification is wrong",
    "missing_normalisation": "the input is not normalised before it is used",
    "early_return": "it returns from inside the loop before looking at every element",
    "swapped_arguments": "the arguments of a call are passed in the wrong order",
    "wrong_builtin": "it calls the wrong builtin",
    "wrong_initial_value": "the accumulator starts from the wrong value",
    "missing_copy": "it modifies its input instead of working on a copy",
}
_FAILED_EDIT = "No replacement was performed"


@dataclass
class Edit:
    old: str
    new: str
    full_old: str
    full_new: str
    start: int
    end: int


def _hunk_lines(hunk) -> list[tuple[str, str]]:
    """(line type, text with its newline) of a unidiff hunk; "no newline at end of file" markers dropped."""
    return [(ln.line_type, ln.value) for ln in hunk if ln.line_type in " +-"]


def _span(lines: list[tuple[str, str]], lo: int, hi: int) -> tuple[str, str]:
    """The old and new text of hunk lines lo..hi (inclusive), without the final newline."""
    old = "".join(v for t, v in lines[lo : hi + 1] if t in " -")
    new = "".join(v for t, v in lines[lo : hi + 1] if t in " +")
    return old.removesuffix("\n"), new.removesuffix("\n")


def _hunk_edit(hunk, k: int) -> Edit:
    """The hunk's change with `k` lines of context (blank edges trimmed, a pure insertion anchored)."""
    lines = _hunk_lines(hunk)
    changed = [i for i, (t, _) in enumerate(lines) if t in "+-"]
    lo, hi = max(0, changed[0] - k), min(len(lines) - 1, changed[-1] + k)
    while lo > 0 and not any(t in " -" and v.strip() for t, v in lines[lo : hi + 1]):
        lo -= 1  # a pure insertion needs a non-blank anchor line
    while lo < changed[0] and not lines[lo][1].strip():
        lo += 1
    while hi > changed[-1] and not lines[hi][1].strip():
        hi -= 1
    old, new = _span(lines, lo, hi)
    full_old, full_new = _span(lines, 0, len(lines) - 1)
    start = hunk.source_start
    return Edit(old, new, full_old, full_new, start, start + hunk.source_length - 1)


def unique_edit(patch: str, file_text: str) -> tuple[str, str, str]:
    """(path, old_str, new_str) of a patch's first hunk: the changed lines, widened with context (a line
    above, then a line below, ...) until `old_str` occurs once in `file_text`."""
    from unidiff import PatchSet

    f = PatchSet(patch)[0]
    lines = _hunk_lines(f[0])
    changed = [i for i, (t, _) in enumerate(lines) if t in "+-"]
    lo, hi = changed[0], changed[-1]
    old, new = _span(lines, lo, hi)
    while (not old.strip() or file_text.count(old) != 1) and (lo > 0 or hi < len(lines) - 1):
        if lo > 0:
            lo -= 1
        elif hi < len(lines) - 1:
            hi += 1
        old, new = _span(lines, lo, hi)
        if file_text.count(old) == 1 and old.strip():
            break
        if hi < len(lines) - 1:
            hi += 1
            old, new = _span(lines, lo, hi)
    return f.path, old, new


def _file_from_view(obs: str) -> str | None:
    if "result of running `cat -n`" not in obs:
        return None
    rows = [re.match(r"^\s*(\d+)\t(.*)$", ln) for ln in obs.splitlines()[1:]]
    nums = [int(m.group(1)) for m in rows if m]
    if not nums or nums[0] != 1:
        return None
    return "\n".join(m.group(2) for m in rows if m)


def _last_line(obs: str) -> str:
    lines = [ln for ln in obs.strip().splitlines() if ln.strip() and not ln.startswith("OBSERVATION")]
    return lines[-1].strip() if lines else ""


class ScriptedExpert:
    """Model protocol: `generate(messages, n=1, **sampling) -> list[str]`."""

    name = "scripted-expert"

    def __init__(self, instance: dict, seed: int = 0, think_tags: bool = False):
        from unidiff import PatchSet

        self.instance = instance
        self.think_tags = think_tags
        self.rng = random.Random(f"{instance['instance_id']}:{seed}")
        files = [f for f in PatchSet(instance["patch"]) if not f.path.startswith("tests/")]
        if not files:
            raise ValueError(f"{instance['instance_id']}: the gold patch edits no source file")
        self.src_path = files[0].path
        self.edits = [(f.path, [_hunk_edit(h, self.rng.choice((0, 1, 1, 2, 3))) for h in f]) for f in files]
        self.test_file = instance["FAIL_TO_PASS"][0].split("::")[0]
        self.family = instance.get("family", "")
        ps = instance["problem_statement"]
        m = re.search(r"from ([\w.]+) import (\w+)", ps)
        self.import_path, self.func = (m.group(1), m.group(2)) if m else ("", "")
        self.repro = self._repro_code(ps)
        self.src_layout = self.src_path.startswith("src/")
        self.steps: list[Callable[[str], tuple[str, str, dict]]] = self._plan()
        self.file_text: str | None = None
        self.def_line: int | None = None
        self.last_edit: tuple[str, Edit] | None = None

    # ------------------------------------------------------------------ the protocol

    def generate(self, messages: list[dict], n: int = 1, **sampling) -> list[str]:
        i = sum(1 for m in messages if m["role"] == "assistant")
        obs = messages[-1]["content"] if i and messages[-1]["role"] == "user" else ""
        self._observe(obs)
        if self.last_edit and _FAILED_EDIT in obs:
            path, edit = self.last_edit
            self.steps.insert(i, lambda o, p=path, e=edit: self._retry_edit(p, e))
        self.last_edit = None
        step = self.steps[i] if i < len(self.steps) else self._submit
        thought, name, params = step(obs)
        if self.think_tags:
            thought = f"<think>\n{thought}\n</think>"
        return [f"{thought}\n\n{format_action(name, params)}"] * n

    # ------------------------------------------------------------------ planning

    def _plan(self) -> list[Callable[[str], tuple[str, str, dict]]]:
        r = self.rng
        self.repro_mode = r.choice(("heredoc", "heredoc", "script_tmp", "script_testbed"))
        self.test_scope = r.choice(("file", "file", "verbose", "all"))
        explore = r.choice(("find", "tree", "ls", None))
        locate = r.choice(("grep_def", "grep_def", "grep_name")) if explore or r.random() < 0.8 else None
        if explore and r.random() < 0.3:
            locate = "grep_file"
        steps: list = []
        repro_first = self.repro and r.random() < 0.25
        if repro_first:
            steps += self._repro_steps(first=True)
        if explore:
            steps.append(lambda o, e=explore: self._explore(e))
        if locate:
            steps.append(lambda o, g=locate: self._locate(g))
        steps.append(self._view)
        if r.random() < 0.35:
            steps.append(self._view_tests)
        if self.repro and not repro_first:
            steps += self._repro_steps(first=False)
        if r.random() < 0.35:
            steps.append(lambda o: self._run_tests(o, before=True))
        for path, edits in self.edits:
            for e in edits:
                steps.append(lambda o, p=path, e=e: self._edit(p, e))
        if r.random() < 0.3:
            steps.append(self._view_edited)
        if self.repro:
            steps.append(self._rerun_repro)
        steps.append(lambda o: self._run_tests(o, before=False))
        if self.repro_mode == "script_testbed" and self.repro:
            steps.append(self._cleanup)
        steps.append(self._submit)
        return steps

    # ------------------------------------------------------------------ helpers

    def _observe(self, obs: str) -> None:
        body = obs.removeprefix("OBSERVATION:\n")
        text = _file_from_view(body)
        if text is not None and f"on /testbed/{self.src_path}:" in body.splitlines()[0]:
            self.file_text = text
        if self.func and self.def_line is None:
            m = re.search(rf"(?:^|:)(\d+):\s*def {re.escape(self.func)}\(", obs, re.M)
            if m:
                self.def_line = int(m.group(1))

    @staticmethod
    def _repro_code(ps: str) -> str:
        m = re.search(r"```python\n(.*?)\n```", ps, re.S)
        if m:
            return m.group(1).strip()
        lines = [ln[4:] for ln in ps.splitlines() if ln.startswith(">>> ")]
        return "\n".join(lines).strip()

    def _pick(self, *options: str) -> str:
        return self.rng.choice(options)

    def _py(self) -> str:
        return "PYTHONPATH=src python3" if self.src_layout else "python3"

    # ------------------------------------------------------------------ steps

    def _explore(self, kind: str):
        if kind == "find":
            thought = self._pick(
                "Let me start by looking at the structure of the repository to find the relevant code.",
                "First, I'll get an overview of the Python files in the repository.",
            )
            cmd = self._pick(
                'find /testbed -name "*.py" -not -path "*/tests/*" | sort',
                'find /testbed -type f -name "*.py" | grep -v test | sort',
            )
            return thought, "bash", {"command": cmd}
        if kind == "tree":
            thought = self._pick(
                "I'll explore the repository layout first.",
                "Let's see what the repository contains.",
            )
            return thought, "str_replace_editor", {"command": "view", "path": "/testbed"}
        pkg = self.src_path.split("/")[0]
        thought = f"Let me list the files of the project to see how `{self.import_path}` is laid out."
        return thought, "bash", {"command": f"ls -R /testbed/{pkg} | grep -v __pycache__"}

    def _locate(self, kind: str):
        f = self.func
        if kind == "grep_file":
            thought = f"The issue imports `{f}` from `{self.import_path}`; let me find its definition in that module."
            return thought, "bash", {"command": f"grep -n 'def ' /testbed/{self.src_path}"}
        thought = self._pick(
            f"The issue is about `{f}`. Let me find where it is defined.",
            f"I need to find the definition of `{f}` mentioned in the issue.",
            f"Let me search for `{f}` in the code base.",
        )
        if kind == "grep_def":
            cmd = f'grep -rn "def {f}" /testbed --include="*.py"'
        else:
            cmd = f'grep -rn "{f}" /testbed --include="*.py" | grep -v "/tests/"'
        return thought, "bash", {"command": cmd}

    def _view(self, obs: str):
        path = f"/testbed/{self.src_path}"
        first = self.edits[0][1][0]
        if self.def_line and self.rng.random() < 0.6:
            lo = max(1, min(self.def_line, first.start) - self.rng.choice((0, 1, 2, 3)))
            hi = max(self.def_line + self.rng.choice((10, 12, 15, 20)), first.end + 2)
            thought = self._pick(
                f"`{self.func}` is defined at line {self.def_line} of `{self.src_path}`. Let me look at it.",
                f"Found it in `{self.src_path}`. Let me view the function.",
            )
            return (
                thought,
                "str_replace_editor",
                {"command": "view", "path": path, "view_range": f"[{lo}, {hi}]"},
            )
        thought = self._pick(
            f"Let me open `{self.src_path}`, where `{self.func}` lives.",
            f"The function should be in `{self.src_path}`. Let me view the whole module.",
            f"Let me read `{self.src_path}` to understand how `{self.func}` works.",
        )
        return thought, "str_replace_editor", {"command": "view", "path": path}

    def _view_tests(self, obs: str):
        thought = self._pick(
            f"Let me also check the existing tests for this module in `{self.test_file}`.",
            "Before changing anything, I'll look at how the existing tests use this function.",
        )
        return thought, "str_replace_editor", {"command": "view", "path": f"/testbed/{self.test_file}"}

    def _repro_steps(self, first: bool) -> list:
        lead = "The issue comes with a reproduction snippet. " if first else ""
        if self.repro_mode == "heredoc":
            return [
                lambda o: (
                    lead
                    + self._pick(
                        "Let me run the snippet from the issue to confirm the problem.",
                        "Now let me reproduce the issue with the example from the report.",
                    ),
                    "bash",
                    {"command": f"cd /testbed && {self._py()} - <<'EOF'\n{self.repro}\nEOF"},
                )
            ]
        path = "/tmp/reproduce.py" if self.repro_mode == "script_tmp" else "/testbed/reproduce_issue.py"
        return [
            lambda o: (
                lead + "Let me write a small script that reproduces the issue.",
                "str_replace_editor",
                {"command": "create", "path": path, "file_text": self.repro + "\n"},
            ),
            self._run_repro_script,
        ]

    def _repro_cmd(self) -> str:
        if self.repro_mode == "heredoc":
            return f"cd /testbed && {self._py()} - <<'EOF'\n{self.repro}\nEOF"
        if self.repro_mode == "script_tmp":
            pp = "/testbed/src" if self.src_layout else "/testbed"
            return f"cd /testbed && PYTHONPATH={pp} python3 /tmp/reproduce.py"
        return f"cd /testbed && {self._py()} reproduce_issue.py"

    def _run_repro_script(self, obs: str):
        return "Now let me run it.", "bash", {"command": self._repro_cmd()}

    def _run_tests(self, obs: str, before: bool):
        if self.test_scope == "all":
            cmd = "cd /testbed && python3 -m pytest tests -q"
        elif self.test_scope == "verbose":
            cmd = f"cd /testbed && python3 -m pytest {self.test_file} -v"
        else:
            cmd = f"cd /testbed && python3 -m pytest {self.test_file} -q"
        if before:
            got = _last_line(obs)
            thought = (
                f"The output confirms the bug (`{got[:120]}`). " if got else ""
            ) + "Let me check whether the existing tests notice it."
        else:
            thought = self._pick(
                "Now let me run the test suite to make sure nothing else broke.",
                "The reproduction looks right now. Let me run the tests.",
                "Let me run the tests for this module as well.",
            )
        return thought, "bash", {"command": cmd}

    def _edit(self, path: str, e: Edit):
        note = FIX_NOTES.get(self.family, "this is where the behaviour diverges from what the issue expects")
        unique = self.file_text is None or self.file_text.count(e.old) == 1
        old, new = (e.old, e.new) if unique and e.old.strip() else (e.full_old, e.full_new)
        thought = self._pick(
            f"Looking at `{self.func}`, {note}. That explains the behaviour in the issue. Let me fix it.",
            f"I see the problem: {note}. I'll change it so that `{self.func}` behaves as documented.",
            f"Found the bug in `{self.func}`: {note}. Let me fix that.",
        )
        self.last_edit = (path, e)
        return (
            thought,
            "str_replace_editor",
            {
                "command": "str_replace",
                "path": f"/testbed/{path}",
                "old_str": old,
                "new_str": new,
            },
        )

    def _retry_edit(self, path: str, e: Edit):
        thought = "The replacement did not go through; let me include more surrounding lines so the match is unique."
        return (
            thought,
            "str_replace_editor",
            {
                "command": "str_replace",
                "path": f"/testbed/{path}",
                "old_str": e.full_old,
                "new_str": e.full_new,
            },
        )

    def _view_edited(self, obs: str):
        e = self.edits[0][1][0]
        thought = "Let me double-check the edited function."
        lo, hi = max(1, e.start - 3), e.end + 3
        return (
            thought,
            "str_replace_editor",
            {
                "command": "view",
                "path": f"/testbed/{self.edits[0][0]}",
                "view_range": f"[{lo}, {hi}]",
            },
        )

    def _rerun_repro(self, obs: str):
        thought = self._pick(
            "Now let me run the reproduction again to confirm the fix.",
            "Let me verify the fix with the reproduction from the issue.",
        )
        return thought, "bash", {"command": self._repro_cmd()}

    def _cleanup(self, obs: str):
        return (
            "The tests pass. Let me remove the reproduction script so it does not end up in the patch.",
            "bash",
            {"command": "rm /testbed/reproduce_issue.py"},
        )

    def _submit(self, obs: str):
        thought = self._pick(
            "The fix works and the tests pass. I'll submit the change.",
            f"`{self.func}` now behaves as the issue expects and the tests pass. Submitting.",
            "Everything looks good. Let me submit.",
        )
        return thought, "submit", {}


def solve(
    instances: list[dict],
    out: str | Path,
    *,
    mirror: str | Path,
    backend: str = "local",
    workers: int = 1,
    seed: int = 0,
    grade: bool = True,
    overrides: list[str] | None = None,
    on_progress: OnProgress | None = None,
) -> list[dict]:
    """Run the expert on every instance through the agent loop; write one trajectory per line to `out`.

    With `grade`, each submission is evaluated by the harness in a fresh sandbox and
    `info["resolved"]` records the result. Returns the trajectories in instance order.
    """

    out = Path(out)
    config = load_agent_config(["context.kind=full", "step_limit=40", *(overrides or [])])
    # Bundled tasks need only pytest; host plugins would make every run in the local sandbox slow.
    # No bytecode: an edit that keeps a file's size within the same second would run a stale .pyc.
    config.sandbox = SandboxConfig(**{**config.sandbox.model_dump(), "backend": backend})
    config.sandbox.env = {
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **config.sandbox.env,
    }
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)

    def one(inst: dict) -> dict:
        with env_for_instance(inst, config.sandbox, mirror=mirror) as env:
            traj = run_agent(inst, ScriptedExpert(inst, seed), env, config)
        info = traj["info"]
        info.update(family=inst.get("family", ""), split=inst.get("split", ""), expert_seed=seed)
        if grade:
            report = grade_patch(inst, info.get("submission") or "", config.sandbox, mirror=mirror)
            info["resolved"] = bool(report.get("resolved"))
        return traj

    results: dict[str, dict] = {}

    def status() -> str:
        ok = sum(1 for t in results.values() if t["info"].get("resolved", True))
        return f"ok {ok}/{len(results)}"

    for _, traj, exc in parallel_map(
        one, instances, max(1, workers), label="expert", on_progress=on_progress, status=status
    ):
        if exc is not None:
            raise exc
        results[traj["instance_id"]] = traj
        append_jsonl(partial, traj)
    ordered = [results[i["instance_id"]] for i in instances]
    atomic_write_text(out, "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in ordered))
    partial.unlink(missing_ok=True)
    log.info("wrote %d expert trajectories to %s", len(ordered), out)
    return ordered


# ---------------------------------------------------------------- the short expert (the demo's)

RECOVERY_THOUGHT = (
    "The edit failed: `old_str` must be copied from the file as printed. Fix the bug in `{name}`."
)
MISTAKE_STEP = 2
"""The step of a recovery trajectory that is the wrong edit (0-based; the right one follows)."""


def short_expert_turns(instance: dict, file_text: str, recovery: bool = False) -> list[str]:
    """The short expert's replies: find the function named in the issue, read it, fix it, submit.

    `recovery`: the first edit uses the fixed code as `old_str` (not in the file, so the editor
    refuses it), then the expert makes the right edit: a trajectory with an error and its repair.
    Nothing changes when the fixed code does occur in the file (the wrong edit would apply)."""
    m = re.search(r"from [\w.]+ import (\w+)", instance["problem_statement"])
    if not m:
        raise UserError(f"{instance['instance_id']}: the issue names no function to import")
    name = m.group(1)
    path, old, new = unique_edit(instance["patch"], file_text)
    full = f"/testbed/{path}"
    edit = format_action(
        "str_replace_editor", {"command": "str_replace", "path": full, "old_str": old, "new_str": new}
    )
    fix = [think_reply(f"Fix the bug in `{name}`.", edit)]
    if recovery and new.strip() and new not in file_text:
        wrong = {"command": "str_replace", "path": full, "old_str": new, "new_str": new}
        fix = [
            think_reply(f"Fix the bug in `{name}`.", format_action("str_replace_editor", wrong)),
            think_reply(RECOVERY_THOUGHT.format(name=name), edit),
        ]
    return [
        think_reply(
            f"The issue is about `{name}`. Find where it is defined.",
            format_action("bash", {"command": f'grep -rn "def {name}(" /testbed'}),
        ),
        think_reply(
            f"`{name}` is in {full}. Read it.",
            format_action("bash", {"command": f'grep -n -A 10 "def {name}(" {full}'}),
        ),
        *fix,
        think_reply("The fix is in place. Submit.", format_action("submit")),
    ]


class ShortExpert:
    """A scripted expert (Model protocol) for one instance, using its gold patch, sized for what a tiny
    model can imitate: four steps (five with `recovery`: a refused edit, then the right one)."""

    name = "short-expert"

    def __init__(self, instance: dict, mirror: str | Path, recovery: bool = False):
        patch_path = re.search(r"^--- a/(\S+)", instance["patch"], re.M).group(1)
        src = repo_source(instance, mirror)
        text = subprocess.run(
            ["git", "-C", str(src), "show", f"{instance['base_commit']}:{patch_path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        self.turns = short_expert_turns(instance, text, recovery)

    def generate(self, messages: list[dict], n: int = 1, **sampling) -> list[str]:
        k = sum(m["role"] == "assistant" for m in messages)
        return [self.turns[min(k, len(self.turns) - 1)]] * n


def recovers(instance: dict, share: float, seed: int) -> bool:
    """Whether this train task's short expert makes (and repairs) a wrong edit: a fixed draw per task."""
    if instance["split"] != "train" or not share:
        return False
    return random.Random(f"{seed}:{instance['instance_id']}").random() < share


def relabel_mistakes(srl_path: Path, recovering: set[str]) -> int:
    """Give each recovery trajectory's wrong-edit row the right edit as its target (same prompt: task +
    the find and read steps), so no row teaches the mistake; return how many were relabelled."""
    rows = list(iter_jsonl(srl_path))
    fixes = {
        r["instance_id"]: r
        for r in rows
        if r["instance_id"] in recovering and r["step"] == MISTAKE_STEP + 1 and r["n_steps"] == 5
    }
    for r in rows:
        fix = fixes.get(r["instance_id"])
        if fix and r["step"] == MISTAKE_STEP:
            r["expert_action"] = fix["expert_action"]  # the thought stays "Fix the bug in ..."
    if fixes:
        write_jsonl(srl_path, rows)
    return len(fixes)


def run_experts(
    instances: list[dict],
    expert_for: Callable[[dict], Any],
    config: AgentConfig,
    out: Path,
    mirror: Path,
    workers: int = 1,
    label: str = "expert",
    on_progress: OnProgress | None = None,
) -> dict:
    """Expert trajectories through the agent loop (`OUT/<id>/traj.json`, resumable, then `out.jsonl`
    in instance order); returns counts (trajectories, submitted, mean steps)."""
    run_batch(
        instances,
        None,
        config,
        out,
        workers,
        mirror,
        model_for=expert_for,
        label=label,
        on_progress=on_progress,
    )
    trajs = [json.loads(traj_path(out, i["instance_id"]).read_text()) for i in instances]
    write_jsonl(out.with_suffix(".jsonl"), trajs)
    return {
        "trajectories": len(trajs),
        "submitted": sum(t["info"]["exit_status"] == "submitted" for t in trajs),
        "mean_steps": round(sum(t["info"]["n_steps"] for t in trajs) / max(len(trajs), 1), 2),
    }
