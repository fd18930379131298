"""The `openai:` backend against real OpenAI-compatible servers serving the shipped checkpoint, started
here on a free port, offline: `transformers serve` (transformers' `serving` extra) and, where its
virtual environment exists, vLLM on CPU. Greedy runs through either give the same replies, thoughts
included, as the same checkpoint in process (`hf:`).

The vLLM server is the `vllm_served` fixture (tests/conftest.py, tests/servers.py: how to make its
environment).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import requests

from swesrl.agent.loop import load_agent_config
from swesrl.agent.models import get_model
from swesrl.agent.prompts import initial_messages
from swesrl.core.actions import parse_action
from swesrl.core.instances import load_instances
from swesrl.envs.local import bwrap_available
from swesrl.tasks import build_suite
from tests.agent.test_cli import swesrl as swesrl_cli
from tests.servers import CHECKPOINT, free_port, serve


@pytest.fixture(scope="module")
def transformers_served(tmp_path_factory):
    """`transformers serve CHECKPOINT`."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but transformers' serving extra (fastapi, uvicorn, openai) is not installed")
        pytest.skip(
            "transformers' serving extra is not installed: pip install 'transformers[serving]==<yours>'"
        )
    port = free_port()
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(CHECKPOINT)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    yield from serve(cmd, port, tmp_path_factory.mktemp("serve") / "serve.log", startup_s=120)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    if not bwrap_available():
        pytest.skip("bubblewrap cannot create sandboxes here")
    path = build_suite(tmp_path_factory.mktemp("bundled") / "suite", n=3, seed=1)
    return path, load_instances(path)


@pytest.fixture(scope="module")
def hf():
    return get_model(f"hf:{CHECKPOINT}")


def raw_reply(spec: str, prompt: list[dict]) -> dict:
    url, _, name = spec.removeprefix("openai:").rpartition("#")
    body = {"model": name, "messages": prompt, "temperature": 0, "max_tokens": 224, "stop": ["</function>"]}
    return requests.post(f"{url}/chat/completions", json=body, timeout=60).json()["choices"][0]


def test_transformers_serve_replies_are_the_in_process_replies(transformers_served, tasks, hf):
    config = load_agent_config(["agent_tiny.yaml"])
    prompt = initial_messages(config, tasks[1][0])
    raw = raw_reply(transformers_served, prompt)
    # the thought split off into reasoning_content and stripped; the stop string kept
    assert raw["message"]["reasoning_content"] and "<think>" not in raw["message"]["content"]
    assert raw["message"]["content"].startswith("<function=") and raw["finish_reason"] == "stop"
    assert raw["message"]["content"].endswith("</function>")

    model = get_model(transformers_served, backoff=0.1)
    greedy = hf.generate(prompt, **config.sampling)
    assert model.generate(prompt, **config.sampling) == greedy
    assert parse_action(greedy[0])[0] == raw["message"]["reasoning_content"]
    # cut off mid-thought
    short = {"temperature": 0, "max_new_tokens": 5}
    assert model.generate(prompt, **short) == hf.generate(prompt, **short)
    # n is ignored: one request per sample, seeds seed, seed+1, ...; the same draws as in process
    samples = model.generate(prompt, n=3, temperature=1.0, seed=3, max_new_tokens=48)
    assert model.server_honours_n is False
    assert samples == [
        hf.generate(prompt, temperature=1.0, seed=3 + i, max_new_tokens=48)[0] for i in range(3)
    ]
    assert len(set(samples)) > 1


@pytest.mark.slow  # vLLM starts in 20-70 s on 2 cores
def test_vllm_replies_are_the_in_process_replies(vllm_served, tasks, hf):
    config = load_agent_config(["agent_tiny.yaml"])
    prompt = initial_messages(config, tasks[1][0])
    raw = raw_reply(vllm_served, prompt)
    # the thought in `reasoning` with its newlines; the stop string dropped, named in stop_reason
    assert raw["message"]["reasoning"].startswith("\n") and "<think>" not in raw["message"]["content"]
    assert raw["message"]["content"].lstrip().startswith("<function=")
    assert "</function>" not in raw["message"]["content"] and raw["stop_reason"] == "</function>"

    model = get_model(vllm_served, backoff=0.1)
    for inst in tasks[1]:
        p = initial_messages(config, inst)
        assert model.generate(p, **config.sampling) == hf.generate(p, **config.sampling)
    short = {"temperature": 0, "max_new_tokens": 5}
    assert model.generate(prompt, **short) == hf.generate(prompt, **short)
    assert model.generate(prompt, n=2, **config.sampling) == hf.generate(prompt, **config.sampling) * 2
    assert len(model.generate(prompt, n=3, temperature=1.0, seed=3, max_new_tokens=48)) == 3
    assert model.server_honours_n is True


@pytest.fixture(scope="module")
def hf_run(tasks, tmp_path_factory):
    """Trajectories of `swesrl run -m hf:CHECKPOINT` on the tasks, by instance id."""
    return run(f"hf:{CHECKPOINT}", tasks, tmp_path_factory.mktemp("hf-run"))


def run(spec: str, tasks, out: Path) -> dict[str, dict]:
    instances_path, instances = tasks
    args = ("run", "-i", str(instances_path), "-m", spec, "-o", str(out), "-c", "agent_tiny.yaml")
    r = swesrl_cli(*args, timeout=900)  # a guard against hangs: 20 s idle, over 120 s on a loaded machine
    assert r.returncode == 0, r.stderr
    return {
        i["instance_id"]: json.loads((out / i["instance_id"] / "traj.json").read_text()) for i in instances
    }


@pytest.mark.slow  # ~20 s alone on 2 cores (two runs of 3 tasks), 65 s beside another test run
@pytest.mark.parametrize("server", ["transformers_served", "vllm_served"])
def test_swesrl_run_through_a_server_matches_hf(server, request, tasks, hf_run, tmp_path):
    served = run(request.getfixturevalue(server), tasks, tmp_path)
    thoughts = 0
    for iid, hf_traj in hf_run.items():
        assert served[iid]["info"]["exit_status"] == hf_traj["info"]["exit_status"]
        assert served[iid]["info"]["submission"] == hf_traj["info"]["submission"]
        assert served[iid]["messages"] == hf_traj["messages"]  # every reply and observation
        thoughts += sum(
            "</think>" in m["content"] for m in served[iid]["messages"] if m["role"] == "assistant"
        )
    assert thoughts >= len(hf_run)
