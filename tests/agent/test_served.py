"""The `openai:` backend against a real OpenAI-compatible server: `transformers serve` (transformers'
`serving` extra) serving the shipped checkpoint, started here on a free port, offline. Greedy runs
through it give the same replies, thoughts included, as the same checkpoint in process (`hf:`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import swesrl
from swesrl.agent.actions import parse_action
from swesrl.agent.loop import load_agent_config
from swesrl.agent.models import get_model
from swesrl.agent.prompts import initial_messages
from swesrl.envs.local import bwrap_available
from swesrl.tasks import build_suite
from swesrl.tasks.instances import load_instances
from tests.agent.test_cli import free_port
from tests.agent.test_cli import swesrl as swesrl_cli

CHECKPOINT = Path(swesrl.__file__).parent / "checkpoints" / "tiny-demo"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`transformers serve CHECKPOINT`: yields the `openai:` model spec for it."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but transformers' serving extra (fastapi, uvicorn, openai) is not installed")
        pytest.skip(
            "transformers' serving extra is not installed: pip install 'transformers[serving]==<yours>'"
        )
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(CHECKPOINT)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield f"openai:http://127.0.0.1:{port}/v1#{CHECKPOINT}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    if not bwrap_available():
        pytest.skip("bubblewrap cannot create sandboxes here")
    path = build_suite(tmp_path_factory.mktemp("bundled") / "suite", n=3, seed=1)
    return path, load_instances(path)


def test_served_replies_are_the_in_process_replies(served, tasks):
    config = load_agent_config(["agent_tiny.yaml"])
    prompt = initial_messages(config, tasks[1][0])
    url, _, name = served.removeprefix("openai:").rpartition("#")
    raw = requests.post(
        f"{url}/chat/completions",
        json={
            "model": name,
            "messages": prompt,
            "temperature": 0,
            "max_tokens": 224,
            "stop": ["</function>"],
        },
        timeout=60,
    ).json()["choices"][0]
    # what the server does with the reply: thought split off and stripped, the stop string kept
    assert raw["message"]["reasoning_content"] and "<think>" not in raw["message"]["content"]
    assert raw["message"]["content"].startswith("<function=") and raw["finish_reason"] == "stop"

    model, hf = get_model(served, backoff=0.1), get_model(f"hf:{CHECKPOINT}")
    greedy = hf.generate(prompt, **config.sampling)
    assert model.generate(prompt, **config.sampling) == greedy
    assert parse_action(greedy[0])[0] == raw["message"]["reasoning_content"]
    # cut off mid-thought
    assert model.generate(prompt, temperature=0, max_new_tokens=5) == hf.generate(
        prompt, temperature=0, max_new_tokens=5
    )
    # the server ignores n: one request per sample, seeds seed, seed+1, ...; same draws as in process
    samples = model.generate(prompt, n=3, temperature=1.0, seed=3, max_new_tokens=48)
    assert model.server_honours_n is False
    assert samples == [
        hf.generate(prompt, temperature=1.0, seed=3 + i, max_new_tokens=48)[0] for i in range(3)
    ]
    assert len(set(samples)) > 1


@pytest.mark.slow  # ~20 s alone on 2 cores, 65 s beside another test run
def test_swesrl_run_through_the_server_matches_hf(served, tasks, tmp_path):
    instances_path, instances = tasks
    trajs = {}
    for label, spec in (("hf", f"hf:{CHECKPOINT}"), ("served", served)):
        out = tmp_path / label
        r = swesrl_cli("run", "-i", str(instances_path), "-m", spec, "-o", str(out), "-c", "agent_tiny.yaml")
        assert r.returncode == 0, r.stderr
        trajs[label] = {
            i["instance_id"]: json.loads((out / i["instance_id"] / "traj.json").read_text())
            for i in instances
        }
    thoughts = 0
    for iid, hf_traj in trajs["hf"].items():
        served_traj = trajs["served"][iid]
        assert served_traj["info"]["exit_status"] == hf_traj["info"]["exit_status"]
        assert served_traj["info"]["submission"] == hf_traj["info"]["submission"]
        assert served_traj["messages"] == hf_traj["messages"]  # every reply and observation
        thoughts += sum(
            "</think>" in m["content"] for m in served_traj["messages"] if m["role"] == "assistant"
        )
    assert thoughts >= len(instances)
