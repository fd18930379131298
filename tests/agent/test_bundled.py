"""Replay of expert trajectories on the bundled task suite: `swesrl run` re-executes them in
sandboxes and submits the gold fix."""

from __future__ import annotations

import json

import pytest
from unidiff import PatchSet

from swesrl.agent.batch import run_batch
from swesrl.agent.loop import load_agent_config
from swesrl.agent.models import get_model
from swesrl.agent.prompts import initial_messages
from swesrl.core.actions import format_action
from swesrl.core.instances import load_instances
from swesrl.envs.local import bwrap_available
from swesrl.tasks import build_suite


def changes(patch: str) -> list[tuple[str, list[str]]]:
    """What a patch does, without index lines or hunk offsets."""
    return [(f.path, [str(line) for h in f for line in h if not line.is_context]) for f in PatchSet(patch)]


def expert_turns(instance: dict) -> list[str]:
    """An expert that views each file, applies each gold hunk with str_replace, runs the tests, submits."""
    turns = []
    for f in PatchSet(instance["patch"]):
        path = f"/testbed/{f.path}"
        turns.append(
            f"<think>\nRead {f.path}.\n</think>\n"
            + format_action("str_replace_editor", {"command": "view", "path": path})
        )
        for h in f:
            old = "".join(line.value for line in h if not line.is_added)
            new = "".join(line.value for line in h if not line.is_removed)
            params = {
                "command": "str_replace",
                "path": path,
                "old_str": old.rstrip("\n"),
                "new_str": new.rstrip("\n"),
            }
            turns.append("<think>\nFix it.\n</think>\n" + format_action("str_replace_editor", params))
    turns.append(format_action("bash", {"command": instance["test_cmd"]}))
    turns.append(format_action("submit"))
    return turns


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    if not bwrap_available():
        pytest.skip("bubblewrap cannot create sandboxes here")
    instances_path = build_suite(tmp_path_factory.mktemp("bundled") / "suite", n=2, seed=1)
    return instances_path, load_instances(instances_path)


def test_replay_of_gold_edits_on_bundled_tasks(bundled, tmp_path):
    instances_path, instances = bundled
    config = load_agent_config()
    trajs = []
    for inst in instances:
        messages = initial_messages(config, inst)
        for turn in expert_turns(inst):
            messages += [
                {"role": "assistant", "content": turn},
                {"role": "user", "content": "OBSERVATION:\n"},
            ]
        trajs.append({"instance_id": inst["instance_id"], "messages": messages[:-1]})
    experts = tmp_path / "experts.jsonl"
    experts.write_text("".join(json.dumps(t) + "\n" for t in trajs))

    out = tmp_path / "run"
    summary = run_batch(
        instances, get_model(f"replay:{experts}"), config, out, workers=2, instances_path=instances_path
    )
    assert summary == {"submitted": 2}
    for inst in instances:
        traj = json.loads((out / inst["instance_id"] / "traj.json").read_text())
        assert traj["info"]["exit_status"] == "submitted"
        assert changes(traj["info"]["submission"]) == changes(inst["patch"])
        test_obs = traj["messages"][-2]["content"]  # the task's tests (without the hidden F2P ones) pass
        for test in inst["PASS_TO_PASS"]:
            assert f"PASSED {test}" in test_obs
        assert "FAILED" not in test_obs
    preds = [json.loads(line) for line in (out / "preds.jsonl").read_text().splitlines()]
    assert {p["instance_id"] for p in preds} == {i["instance_id"] for i in instances}


@pytest.mark.slow
def test_replay_reexecutes_scripted_expert_trajectories(bundled, tmp_path):
    """The tasks engineer's scripted expert solves the tasks; replaying its trajectories in fresh
    sandboxes gives the same actions and the same patches."""
    from swesrl.tasks.expert import solve

    instances_path, instances = bundled
    experts = tmp_path / "experts.jsonl"
    recorded = {
        t["instance_id"]: t
        for t in solve(instances, experts, mirror=instances_path.parent / "repos", grade=False)
    }
    assert all(t["info"]["exit_status"] == "submitted" for t in recorded.values())

    config = load_agent_config(["context.kind=srl", "step_limit=40"])
    config.sandbox.env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = tmp_path / "replay"
    assert run_batch(
        instances, get_model(f"replay:{experts}"), config, out, instances_path=instances_path
    ) == {"submitted": 2}
    for inst in instances:
        replayed = json.loads((out / inst["instance_id"] / "traj.json").read_text())
        expert = recorded[inst["instance_id"]]
        assert replayed["info"]["submission"] == expert["info"]["submission"]
        assert changes(replayed["info"]["submission"]) == changes(inst["patch"])
        turns = [
            [m["content"] for m in t["messages"] if m["role"] == "assistant"] for t in (replayed, expert)
        ]
        assert turns[0] == turns[1]
