"""SIGTERM to a process with open local sandboxes (a training run stopped by a scheduler): the
sandboxes close, their workspaces and cgroups go, and the process still dies of SIGTERM."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from swesrl.envs.local import bwrap_available

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot create a sandbox here")
ROOT = Path(__file__).resolve().parents[2]

BARE = """
from swesrl.envs import SandboxConfig
from swesrl.envs.local import LocalEnv
env = LocalEnv({repo!r}, {base!r}, SandboxConfig(timeout=60))
print("READY", env.root, flush=True)
env.execute("sleep 50")  # SIGTERM arrives while the sandbox runs a command
"""

SCORER = """
from swesrl.core.actions import format_action
from swesrl.core.instances import load_instances
from swesrl.tasks import build_suite
from swesrl.training.exec_reward import ExecutionConfig, ExecutionScorer, StepState
suite = build_suite({work!r}, n=1, seed=0)
(inst,) = [dict(i) for i in load_instances(suite)]
iid = inst["instance_id"]
sc = ExecutionScorer(ExecutionConfig(instances=str(suite), timeout=50, workers=2),
                     states={{iid + "#0": StepState(iid, "", "")}}, instances={{iid: inst}})
print("READY", flush=True)
# two sandboxes, opened by the pool's threads, each running a long command when SIGTERM arrives
sleeps = ["<think>t</think>" + format_action("bash", {{"command": f"sleep 4{{k}}"}}) for k in range(8)]
sc(sleeps, [format_action("bash", {{"command": "sleep 49"}})] * 8, instance_id=[iid] * 8, step=[0] * 8)
"""


def _terminate(script: str, wait_for: str) -> tuple[int, int, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), line + proc.stderr.read()
        mine = os.path.join(tempfile.gettempdir(), f"swesrl-local-{proc.pid}-*")
        for _ in range(300):  # until the sandboxes exist and run their commands
            if len(glob.glob(mine)) >= int(wait_for) and _sleeping(proc.pid) >= int(wait_for):
                break
            subprocess.run(["sleep", "0.1"])
        opened = len(glob.glob(mine))
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = glob.glob(mine)
    assert not left, left
    return rc, opened, proc.stderr.read()


def _sleeping(pid: int) -> int:
    """`sleep` commands running in the sandboxes under `pid` (any depth)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,comm="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines()]
    children: dict[int, list[tuple[int, str]]] = {}
    for p, pp, comm in rows:
        children.setdefault(int(pp), []).append((int(p), comm))
    n, todo = 0, [pid]
    while todo:
        for p, comm in children.get(todo.pop(), []):
            n += comm == "sleep"
            todo.append(p)
    return n


def test_sigterm_closes_a_sandbox_running_a_command(tmp_path):
    from tests.envs.conftest import make_repo

    repo, base, _ = make_repo(tmp_path / "repo")
    rc, opened, err = _terminate(BARE.format(repo=str(repo), base=base), "1")
    assert opened == 1 and rc == -signal.SIGTERM, err


def test_sigterm_closes_the_reward_pools_sandboxes_opened_by_its_threads(tmp_path):
    rc, opened, err = _terminate(SCORER.format(work=str(tmp_path / "suite")), "2")
    assert opened == 2 and rc == -signal.SIGTERM, err
