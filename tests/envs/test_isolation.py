"""Isolation and robustness of both backends: network, file system, timeouts, resources, output."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from swesrl.envs import SandboxConfig, make_env


def test_no_network(env):
    obs = env.execute(
        "python3 -c \"import socket; s = socket.create_connection(('1.1.1.1', 80), timeout=3)\" 2>&1 | tail -1"
    )
    assert "Error" in obs.output  # unreachable / no route: no interface but loopback
    obs = env.execute("python3 -c 'import socket; print(sorted(n for _, n in socket.if_nameindex()))'")
    assert obs.output == "['lo']\n"


def test_writes_outside_the_workspace_do_not_reach_the_host(env, backend, tmp_path):
    marker = f"swesrl-{uuid.uuid4().hex}"
    obs = env.execute(f"touch /tmp/{marker} /root/{marker}; echo ok > /testbed/{marker}; ls /tmp")
    assert marker in obs.output
    assert not (Path("/tmp") / marker).exists()
    host_file = tmp_path / "host.txt"
    host_file.write_text("untouched")
    obs = env.execute(f"echo changed > {host_file}; rm -rf {tmp_path}; touch /usr/{marker} /etc/{marker}")
    assert host_file.read_text() == "untouched"
    assert not Path(f"/usr/{marker}").exists() and not Path(f"/etc/{marker}").exists()
    if backend == "local":  # the host is mounted read-only
        assert "Read-only file system" in obs.output and obs.returncode != 0
    assert marker in env.diff()  # the workspace itself is writable


def test_host_home_and_data_are_hidden_in_local(repo):
    with make_env(repo[0], repo[1], SandboxConfig()) as env:
        obs = env.execute("ls /work /home 2>&1 | head -2; ls /proc | grep -c '^[0-9]'")
        lines = obs.output.splitlines()
    assert all("No such file or directory" in x for x in lines[:2]), obs.output
    assert int(lines[-1]) <= 5  # own pid namespace: only the command's processes


def test_timeout_kills_the_whole_tree(env):
    t = time.monotonic()
    obs = env.execute("(setsid sleep 1000 &); sleep 1000 & sleep 1000", timeout=2)
    elapsed = time.monotonic() - t
    assert obs.timed_out and obs.returncode == -1
    assert elapsed < 4, elapsed
    obs = env.execute("ps -eo args | grep -c '^sleep 1000' || true")
    assert obs.output.strip() == "0", obs.output
    assert env.execute("echo alive").output == "alive\n"


def test_output_is_bounded(env):
    limit = env.config.max_output_bytes
    t = time.monotonic()
    obs = env.execute("head -c 50000000 /dev/zero | tr '\\0' 'a'; echo; echo THE-END", timeout=60)
    assert time.monotonic() - t < 30
    assert obs.returncode == 0
    assert len(obs.output) < limit + 200
    assert obs.output.startswith("aaaa") and obs.output.endswith("THE-END\n")
    assert "bytes of output elided" in obs.output


def test_non_utf8_output_is_replaced(env):
    obs = env.execute("printf 'ok \\xff\\xfe caf\\xc3\\xa9\\n'")
    assert obs.output == "ok \ufffd\ufffd café\n"


@pytest.fixture(params=[pytest.param("local"), pytest.param("docker", marks=pytest.mark.docker)])
def small_env(request, repo):
    if request.param == "docker":
        request.getfixturevalue("base_image")
    config = SandboxConfig(backend=request.param, memory="512m", pids=64, timeout=20)
    with make_env(repo[0], repo[1], config) as e:
        if request.param == "local" and not (e.cgroup and e.cgroup.has_pids) and os.geteuid() == 0:
            pytest.skip("root without a writable pids cgroup: no process limit for the local backend")
        yield e


def test_fork_bomb_is_contained(small_env):
    t = time.monotonic()
    obs = small_env.execute(":(){ :|:& };:", timeout=5)
    assert time.monotonic() - t < 15
    # contained by the pids limit and/or killed with the command: no bomb process survives it
    assert obs.timed_out or obs.returncode == 0
    for _ in range(20):  # leftovers are killed with the command; the sandbox works again
        if small_env.execute("echo alive", timeout=10).output == "alive\n":
            break
        time.sleep(0.5)
    assert small_env.execute("echo alive", timeout=10).output == "alive\n"
    assert int(small_env.execute("ps -e --no-headers | wc -l").output) < 10


def test_big_allocation_is_contained(small_env):
    obs = small_env.execute("python3 -c 'b = bytearray(2 * 1024**3); print(len(b))'", timeout=20)
    assert obs.returncode != 0 and "2147483648" not in obs.output
    assert small_env.execute("echo alive").output == "alive\n"


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from swesrl.envs import SandboxConfig, make_env
    env = make_env(sys.argv[1], sys.argv[2], SandboxConfig(backend=sys.argv[3]))
    print("READY", flush=True)
    env.execute("sleep 4321.5")
    """
)


def _start_and_sigkill(repo, backend: str) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(repo[0]), repo[1], backend], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "READY"
    time.sleep(1.0)  # the command is running
    proc.kill()
    proc.wait()
    return proc.pid


def test_sigkill_of_the_owner_leaves_no_local_processes(repo):
    pid = _start_and_sigkill(repo, "local")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        if "sleep 4321.5" not in ps:
            break
        time.sleep(0.2)
    assert "sleep 4321.5" not in ps
    import tempfile

    leftovers = list(Path(tempfile.gettempdir()).glob(f"swesrl-local-{pid}-*"))
    assert leftovers  # the workspace of the killed process...
    out = subprocess.run([sys.executable, "-m", "swesrl", "sandbox", "gc"], capture_output=True, text=True)
    assert "leftover local sandbox" in out.stdout or out.returncode != 0  # (no daemon: local part still ran)
    assert not any(p.exists() for p in leftovers)  # ...is removed by gc


@pytest.mark.docker
def test_sigkill_of_the_owner_then_gc_leaves_no_container(repo, docker_client, base_image):
    before = {c.id for c in docker_client.containers.list(filters={"label": "swesrl.sandbox=1"})}
    _start_and_sigkill(repo, "docker")
    leftover = [
        c for c in docker_client.containers.list(filters={"label": "swesrl.sandbox=1"}) if c.id not in before
    ]
    assert leftover, "the killed process's container should still be running before gc"
    out = subprocess.run([sys.executable, "-m", "swesrl", "sandbox", "gc"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    running = {c.id for c in docker_client.containers.list(all=True, filters={"label": "swesrl.sandbox=1"})}
    assert not any(c.id in running for c in leftover)
    assert "removed" in out.stdout


def test_local_commands_run_at_the_configured_cpu_priority(repo):
    """Sandboxed commands yield the CPU to the trainer (whose generation every episode waits on)."""
    mine = os.nice(0)
    for nice, want in ((10, min(mine + 10, 19)), (0, mine)):
        with make_env(repo[0], repo[1], SandboxConfig(nice=nice)) as env:
            obs = env.execute("nice; sh -c nice")
        assert obs.returncode == 0
        assert obs.output.split() == [str(want), str(want)]  # the command and what it starts
