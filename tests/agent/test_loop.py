"""The agent loop in real bubblewrap sandboxes on a real git repository."""

from __future__ import annotations

import json

from swesrl.agent.loop import Agent, load_agent_config, run_agent
from swesrl.agent.models import get_model
from swesrl.core.actions import format_action
from swesrl.envs import env_for_instance
from tests.agent.conftest import expert_turns, trajectory


class Recording:
    """Wraps a real model and keeps every prompt it was sent."""

    def __init__(self, model):
        self.model, self.name, self.prompts = model, model.name, []

    def generate(self, messages, n=1, **sampling):
        self.prompts.append(messages)
        return self.model.generate(messages, n=n, **sampling)


def run(suite, model, overrides=(), instance=0, traj_path=None):
    config = load_agent_config(list(overrides))
    inst = suite["instances"][instance]
    with env_for_instance(inst, config.sandbox, mirror=suite["mirror"]) as env:
        return run_agent(inst, model, env, config, traj_path=traj_path)


def write_replay(tmp_path, suite, turns, instance=0):
    path = tmp_path / "replay.json"
    path.write_text(json.dumps(trajectory(suite["instances"][instance], turns)))
    return get_model(f"replay:{path}")


def test_replay_of_expert_submits_expected_patch(suite, tmp_path):
    traj_path = tmp_path / "out" / "traj.json"
    traj = run(suite, get_model(f"replay:{suite['experts']}"), traj_path=traj_path)
    info = traj["info"]
    assert info["exit_status"] == "submitted"
    assert info["submission"] == suite["patch"]
    assert info["n_steps"] == 3 and info["n_format_errors"] == 0
    msgs = traj["messages"]
    assert [m["role"] for m in msgs] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert msgs[3]["content"].startswith("OBSERVATION:\ndef add(a, b):\n    return a-b")
    assert "has been edited" in msgs[5]["content"] or "pkg/calc.py" in msgs[5]["content"]
    assert json.loads(traj_path.read_text()) == traj


def test_replay_with_srl_and_full_context_match(suite):
    for kind in ("srl", "full"):
        traj = run(
            suite,
            get_model(f"replay:{suite['experts']}"),
            [f"context.kind={kind}", "context.k=1"],
            instance=1,
        )
        assert traj["info"]["exit_status"] == "submitted", kind
        assert traj["info"]["submission"] == suite["patch"]


def test_srl_context_is_what_the_model_sees(suite):
    model = Recording(get_model(f"replay:{suite['experts']}"))
    run(suite, model, ["context.kind=srl", "context.k=1"])
    last = model.prompts[-1]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user"]
    assert last[1]["content"].endswith("(1 earlier steps omitted)")
    assert last[2]["content"] == format_action(
        "str_replace_editor",
        {
            "command": "str_replace",
            "path": "/testbed/pkg/calc.py",
            "old_str": "    return a-b",
            "new_str": "    return a + b",
        },
    )


def test_format_error_feedback_reaches_the_model(suite, tmp_path):
    bad = "I will just describe the fix without calling anything."
    model = Recording(write_replay(tmp_path, suite, [bad, *expert_turns()]))
    traj = run(suite, model, ["context.kind=full"])
    assert traj["info"]["exit_status"] == "submitted"
    assert traj["info"]["n_format_errors"] == 1
    feedback = model.prompts[1][-1]
    assert feedback["role"] == "user"
    assert feedback["content"].startswith(
        "Your last response was not formatted correctly: No function call found."
    )
    assert model.prompts[1][-2] == {"role": "assistant", "content": bad}


def test_repeated_format_errors_stop(suite, tmp_path):
    turns = ["no call", "<function=bash><parameter=command>ls</parameter>", "<function=nope></function>"] * 2
    traj = run(suite, write_replay(tmp_path, suite, turns), ["max_format_errors=3"])
    assert traj["info"]["exit_status"] == "format_errors"
    assert traj["info"]["n_steps"] == 3 and traj["info"]["n_format_errors"] == 3


def test_step_limit_stops_and_autosubmits(suite):
    traj = run(suite, get_model(f"replay:{suite['experts']}"), ["step_limit=2"])
    assert traj["info"]["exit_status"] == "step_limit"
    assert traj["info"]["n_steps"] == 2
    assert traj["info"]["submission"] == suite["patch"]  # the edit was step 2
    traj = run(suite, get_model(f"replay:{suite['experts']}"), ["step_limit=2", "autosubmit=false"])
    assert traj["info"]["submission"] == ""


def test_time_limit_stops(suite, tmp_path):
    sleep = format_action("bash", {"command": "sleep 1.5"})
    traj = run(suite, write_replay(tmp_path, suite, [sleep] * 5), ["time_limit=1"])
    assert traj["info"]["exit_status"] == "time_limit"
    assert traj["info"]["n_steps"] == 1


def test_token_limit_stops(suite):
    traj = run(suite, get_model(f"replay:{suite['experts']}"), ["token_limit=100"])
    assert traj["info"]["exit_status"] == "token_limit"
    assert traj["info"]["n_steps"] == 0


def test_command_timeout_is_observed(suite, tmp_path):
    turns = [format_action("bash", {"command": "sleep 5"}), format_action("submit")]
    traj = run(suite, write_replay(tmp_path, suite, turns), ["command_timeout=1"])
    assert traj["info"]["exit_status"] == "submitted"
    assert "timed out" in traj["messages"][3]["content"]


def test_crash_is_error_with_traceback(suite, tmp_path):
    traj = run(suite, write_replay(tmp_path, suite, expert_turns()[:1]))
    info = traj["info"]
    assert info["exit_status"] == "error"
    assert "replay exhausted" in info["exception"]
    assert "Traceback" in info["traceback"]


def test_submit_review_needs_second_submit(suite, tmp_path):
    turns = [*expert_turns(), format_action("submit")]
    review = tmp_path / "review.yaml"
    review.write_text("submit_review_template: |-\n  Review:\n  {{diff}}\n")
    traj = run(suite, write_replay(tmp_path, suite, turns), [str(review)])
    assert traj["info"]["exit_status"] == "submitted"
    assert traj["info"]["n_steps"] == 4
    assert traj["messages"][-2]["content"] == "OBSERVATION:\nReview:\n" + suite["patch"]


def test_agent_steps_one_at_a_time(suite):
    config = load_agent_config()
    inst = suite["instances"][0]
    with env_for_instance(inst, config.sandbox, mirror=suite["mirror"]) as env:
        agent = Agent(inst, get_model(f"replay:{suite['experts']}"), env, config)
        obs = agent.step()
        assert obs.returncode == 0 and "return a-b" in obs.output
        assert agent.info["exit_status"] is None and len(agent.messages) == 4
