"""Fixtures: a small task suite (bare git repos + instances.jsonl) and expert trajectories for it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from swesrl.agent.prompts import initial_messages, load_agent_config
from swesrl.core.actions import format_action
from swesrl.envs.local import bwrap_available

# the fix changes the file's size: see the report on racy-git in the envs diff (cp without -p)
CALC = "def add(a, b):\n    return a-b\n\n\ndef mul(a, b):\n    return a * b\n"


def git(*args: str, cwd: Path) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **env}
    ).stdout.strip()


def expert_turns() -> list[str]:
    return [
        "<think>\nLet me read the module first.\n</think>\n"
        + format_action("bash", {"command": "cat /testbed/pkg/calc.py"}),
        "<think>\n`add` subtracts; fix it.\n</think>\n"
        + format_action(
            "str_replace_editor",
            {
                "command": "str_replace",
                "path": "/testbed/pkg/calc.py",
                "old_str": "    return a-b",
                "new_str": "    return a + b",
            },
        ),
        "<think>\nDone.\n</think>\n" + format_action("submit"),
    ]


def trajectory(instance: dict, turns: list[str]) -> dict:
    messages = initial_messages(load_agent_config(), instance)
    for t in turns:
        messages += [
            {"role": "assistant", "content": t},
            {"role": "user", "content": "OBSERVATION:\n(recorded)"},
        ]
    return {
        "instance_id": instance["instance_id"],
        "messages": messages[:-1],
        "info": {"exit_status": "submitted"},
    }


@pytest.fixture(scope="session")
def suite(tmp_path_factory) -> dict:
    """`instances.jsonl` + `repos/acme__calc.git` with three instances, and the expert's patch."""
    if not bwrap_available():
        pytest.skip("bubblewrap cannot create sandboxes here")
    root = tmp_path_factory.mktemp("suite")
    work = root / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "pkg").mkdir()
    (work / "pkg" / "calc.py").write_text(CALC)
    git("add", ".", cwd=work)
    git("commit", "-qm", "init", cwd=work)
    base = git("rev-parse", "HEAD", cwd=work)
    (root / "repos").mkdir()
    git("clone", "-q", "--bare", str(work), str(root / "repos" / "acme__calc.git"), cwd=root)
    (work / "pkg" / "calc.py").write_text(CALC.replace("a-b", "a + b"))
    patch = git("diff", cwd=work) + "\n"

    def inst(iid: str, problem: str, commit: str = base) -> dict:
        return {"instance_id": iid, "repo": "acme/calc", "base_commit": commit, "problem_statement": problem}

    instances = [
        inst("acme__calc-1", "add() subtracts instead of adding."),
        inst("acme__calc-2", "add() should return the sum of its arguments."),
        inst("acme__calc-3", "This instance's commit does not exist.", commit="0" * 40),
    ]
    (root / "instances.jsonl").write_text("".join(json.dumps(i) + "\n" for i in instances))
    experts = root / "experts.jsonl"
    experts.write_text("".join(json.dumps(trajectory(i, expert_turns())) + "\n" for i in instances[:2]))
    return {
        "root": root,
        "instances_path": root / "instances.jsonl",
        "instances": instances,
        "mirror": root / "repos",
        "experts": experts,
        "patch": patch,
    }


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from swesrl.training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))
