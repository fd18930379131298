"""The scripted expert: solves every task of a generated suite through the real agent loop and the
local sandbox (checked by the harness), in the SWE-smith message format, with varied sequences."""

from __future__ import annotations

import json
import subprocess
import sys
from statistics import median

import pytest

from swesrl.agent.loop import load_agent_config, render_observation
from swesrl.core.actions import parse_action
from swesrl.core.instances import default_mirror, load_instances
from swesrl.envs.base import Observation
from swesrl.tasks.expert import (
    MISTAKE_STEP,
    ScriptedExpert,
    relabel_mistakes,
    short_expert_turns,
    solve,
    unique_edit,
)
from swesrl.utils import iter_jsonl, write_jsonl


def check_format(traj: dict) -> list[str]:
    """The SWE-smith layout: system, task, then assistant (thought + one call) / observation pairs."""
    msgs = traj["messages"]
    assert [m["role"] for m in msgs[:2]] == ["system", "user"]
    assert "<pr_description>" in msgs[1]["content"]
    names = []
    for i, m in enumerate(msgs[2:]):
        assert m["role"] == ("assistant" if i % 2 == 0 else "user")
        if m["role"] == "assistant":
            thought, action = parse_action(m["content"])
            assert thought and "<think>" not in m["content"]
            names.append(action.name if action.name != "str_replace_editor" else action.params["command"])
        else:
            assert m["content"].startswith(("OBSERVATION:\n", "Your command ran successfully"))
    assert names[-1] == "submit"
    return names


@pytest.mark.slow
def test_expert_solves_every_task(bundled_suite, tmp_path):
    insts = load_instances(bundled_suite)
    out = tmp_path / "trajs.jsonl"
    trajs = solve(insts, out, mirror=default_mirror(bundled_suite), workers=2, seed=0, grade=True)
    assert [json.loads(line)["instance_id"] for line in out.read_text().splitlines()] == [
        i["instance_id"] for i in insts
    ]
    sequences = []
    for traj in trajs:
        info = traj["info"]
        assert info["exit_status"] == "submitted", (traj["instance_id"], info)
        assert info["resolved"], traj["instance_id"]
        assert info["model"] == "scripted-expert" and info["family"]
        sequences.append(tuple(check_format(traj)))
        assert "str_replace" in sequences[-1] and "reproduce" not in info["submission"]
    steps = [t["info"]["n_steps"] for t in trajs]
    assert min(steps) >= 5 and max(steps) <= 20 and median(steps) >= 7
    assert len(set(sequences)) >= len(sequences) // 2  # varied, not one fixed script
    assert len({s[0] for s in sequences}) >= 3


def test_expert_retries_a_failed_edit(bundled_suite):
    inst = load_instances(bundled_suite)[0]
    config = load_agent_config()
    expert = ScriptedExpert(inst, seed=1)
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    for _ in range(30):
        reply = expert.generate(messages)[0]
        _, action = parse_action(reply)
        messages.append({"role": "assistant", "content": reply})
        if action.params.get("command") == "str_replace":
            break
        messages.append({"role": "user", "content": render_observation(config, Observation("", 0))})
    else:
        pytest.fail("the expert never edited")
    failed = (
        f"No replacement was performed, old_str `{action.params['old_str']}` did not appear verbatim in x."
    )
    messages.append({"role": "user", "content": render_observation(config, Observation(failed, 1))})
    thought, retry = parse_action(expert.generate(messages)[0])
    assert retry.params["command"] == "str_replace" and "more surrounding lines" in thought
    assert retry.params["old_str"].count("\n") >= action.params["old_str"].count("\n")
    assert action.params["old_str"] in retry.params["old_str"]


def test_expert_is_seeded(bundled_suite):
    inst = load_instances(bundled_suite)[3]
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    a = ScriptedExpert(inst, seed=0).generate(msgs, n=2)
    assert a == ScriptedExpert(inst, seed=0).generate(msgs) * 2
    firsts = {ScriptedExpert(inst, seed=s).generate(msgs)[0] for s in range(8)}
    assert len(firsts) >= 2


def test_expert_cli(bundled_suite, tmp_path):
    out = tmp_path / "t.jsonl"
    cmd = [sys.executable, "-m", "swesrl", "tasks", "expert", "--instances", str(bundled_suite)]
    res = subprocess.run([*cmd, "--out", str(out), "--limit", "1"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "resolved 1/1" in res.stdout
    traj = json.loads(out.read_text())
    assert traj["info"]["resolved"] and check_format(traj)
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = subprocess.run([*cmd, "--out", str(blocker / "t.jsonl")], capture_output=True, text=True)
    assert res.returncode != 0 and "cannot write trajectories" in res.stderr
    assert res.stderr.strip().count("\n") == 0


PATCH = """diff --git a/pkg/m.py b/pkg/m.py
--- a/pkg/m.py
+++ b/pkg/m.py
@@ -1,6 +1,6 @@
 def f(x):
     y = x
-    return y
+    return y + 1
 
 def g(x):
     return y
"""
FILE = "def f(x):\n    y = x\n    return y\n\ndef g(x):\n    return y\n"


def test_short_expert_edit_is_unique_in_the_file():
    path, old, new = unique_edit(PATCH, FILE)
    assert path == "pkg/m.py"
    assert FILE.count(old) == 1
    assert FILE.replace(old, new) == FILE.replace("    return y\n\ndef g", "    return y + 1\n\ndef g")


INSTANCE = {
    "instance_id": "x__m-1",
    "problem_statement": "`f` is off\n\nfrom pkg.m import f\n",
    "patch": PATCH,
}


def test_recovery_expert_makes_a_refused_edit_then_the_right_one():
    plain = short_expert_turns(INSTANCE, FILE)
    turns = short_expert_turns(INSTANCE, FILE, recovery=True)
    assert len(plain) == 4 and len(turns) == 5
    assert turns[:MISTAKE_STEP] == plain[:MISTAKE_STEP] and turns[-1] == plain[-1]
    right = plain[MISTAKE_STEP].split("</think>")[1]
    assert turns[MISTAKE_STEP + 1].split("</think>")[1] == right
    wrong = turns[MISTAKE_STEP]
    fixed = "    y = x\n    return y + 1"  # the right edit's new_str (old_str widened until unique)
    assert f"<parameter=new_str>{fixed}</parameter>" in right
    assert f"<parameter=old_str>{fixed}</parameter>" in wrong and fixed not in FILE  # refused by the editor
    # when the fixed code is in the file the wrong edit would apply: no mistake then
    assert len(short_expert_turns(INSTANCE, FILE + f"\ndef h(x):\n{fixed}\n", recovery=True)) == 4


def test_relabel_mistakes_never_trains_the_wrong_edit(tmp_path):
    def row(iid, step, n, action, thought="t"):
        return {
            "instance_id": iid,
            "step": step,
            "n_steps": n,
            "prompt": [],
            "expert_action": action,
            "expert_thought": thought,
        }

    rows = [row("a", s, 5, f"a{s}", f"ta{s}") for s in range(5)] + [row("b", s, 4, f"b{s}") for s in range(4)]
    path = tmp_path / "srl.jsonl"
    write_jsonl(path, rows)
    assert relabel_mistakes(path, {"a", "b"}) == 1  # b made no mistake (4 steps)
    out = {(r["instance_id"], r["step"]): r for r in iter_jsonl(path)}
    assert out[("a", MISTAKE_STEP)]["expert_action"] == f"a{MISTAKE_STEP + 1}"
    assert out[("a", MISTAKE_STEP)]["expert_thought"] == f"ta{MISTAKE_STEP}"
    assert [out[("b", s)]["expert_action"] for s in range(4)] == ["b0", "b1", "b2", "b3"]
