"""Red-team tests for the sandboxes: commands an RL policy could emit to leave the sandbox, read
host secrets or the grader's files, outlive their command, or forge what the trainer reads.

Each test is an attack; it must fail inside the sandbox. Docker-only attacks live in
`test_redteam_docker.py`; the grader's attacks in `tests/harness/test_redteam.py`.
"""

from __future__ import annotations

import json
import os
import shlex
import uuid
from pathlib import Path

import pytest

from swesrl.envs import SandboxConfig, make_env

OPEN_BY_HANDLE = r"""
import ctypes, ctypes.util, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
class FH(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("h", ctypes.c_ubyte * 128)]
fh = FH(); fh.bytes = 128; mnt = ctypes.c_int()
if libc.name_to_handle_at(-100, b"/etc/hostname", ctypes.byref(fh), ctypes.byref(mnt), 0) != 0:
    sys.exit("name_to_handle_at: " + os.strerror(ctypes.get_errno()))
mfd = os.open("/etc", os.O_RDONLY)
fd = libc.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY)
if fd < 0:
    sys.exit("open_by_handle_at: " + os.strerror(ctypes.get_errno()))
print("OPENED", os.read(fd, 100))
"""
PTRACE = r"""
import ctypes, ctypes.util, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
pid, tried = os.getppid(), []
while pid > 0:  # every ancestor but the shells: the command runner, the sandbox init
    comm = open("/proc/%d/comm" % pid).read().strip()
    if comm not in ("bash", "sh"):
        tried.append(pid)
        if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
            print("ATTACHED", pid, comm)
            sys.exit(0)
        print("ptrace %d %s: %s" % (pid, comm, os.strerror(ctypes.get_errno())))
    pid = int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[1])
print("TRIED", tried)
"""


def local_env(repo, **kw):
    return make_env(repo[0], repo[1], SandboxConfig(backend="local", timeout=30, **kw))


@pytest.fixture(scope="module")
def lenv(repo):
    with local_env(repo) as env:
        yield env


def test_local_commands_have_no_capabilities_and_cannot_gain_any(lenv):
    out = lenv.execute("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status").output
    fields = dict(line.split(":\t") for line in out.splitlines())
    assert fields["CapEff"] == fields["CapPrm"] == fields["CapBnd"] == "0000000000000000", out
    assert fields["NoNewPrivs"] == "1", out  # setuid binaries give nothing
    obs = lenv.execute("unshare -Ur true && echo NESTED_USERNS")  # a child user namespace has all caps
    assert "NESTED_USERNS" not in obs.output, obs.output


def test_local_remount_rw_cannot_write_the_host(lenv):
    marker = f"swesrl-{uuid.uuid4().hex}"
    obs = lenv.execute(f"mount -o remount,bind,rw /opt 2>&1; mount -o remount,rw / 2>&1; touch /opt/{marker}")
    assert not Path(f"/opt/{marker}").exists(), obs.output
    assert obs.returncode != 0


def test_local_open_by_handle_at_is_refused(lenv):
    obs = lenv.execute(f"python3 -c {shlex.quote(OPEN_BY_HANDLE)}")
    assert "OPENED" not in obs.output and obs.returncode != 0, obs.output


@pytest.mark.skipif(not Path("/etc/shadow").exists(), reason="host has no /etc/shadow")
def test_local_host_secrets_are_not_readable(lenv):
    obs = lenv.execute(
        "cat /etc/shadow /etc/gshadow 2>/dev/null | grep -c : ; ls -A /etc/ssl/private 2>&1 | wc -l"
    )
    shadow_lines, private = obs.output.split()
    assert shadow_lines == "0" and private == "0", obs.output


def test_host_environment_is_not_visible(repo, monkeypatch):
    secret = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("SWESRL_TEST_SECRET_TOKEN", secret)
    with local_env(repo) as env:
        obs = env.execute("env; cat /proc/1/environ /proc/self/environ 2>/dev/null | tr '\\0' '\\n'")
    assert secret not in obs.output


def test_setsid_survivor_without_the_marker_is_killed(env):
    """A background process that drops the runner's environment marker and leaves its session."""
    obs = env.execute(
        "env -i /usr/bin/setsid /bin/sleep 1000 > /dev/null 2>&1 < /dev/null & sleep 0.5; echo started"
    )
    assert "started" in obs.output
    obs = env.execute("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done")
    assert "sleep 1000" not in obs.output, obs.output


def test_runner_cannot_be_ptraced(env):
    obs = env.execute(f"python3 -c {shlex.quote(PTRACE)}")
    assert "ATTACHED" not in obs.output and "Operation not permitted" in obs.output, obs.output


def test_forged_reply_on_the_runner_channel_is_impossible(env):
    """Writing a reply line into the runner's own stdout (the channel the trainer reads)."""
    forged = json.dumps({"head": "Rk9SR0VE", "tail": "", "dropped": 0, "returncode": 0, "timed_out": False})
    obs = env.execute(f"R=$(awk '{{print $4}}' /proc/$PPID/stat); echo '{forged}' > /proc/$PPID/fd/1; "
                      f"echo '{forged}' > /proc/$R/fd/1 2>/dev/null; echo real")  # fmt: skip
    assert obs.output.endswith("real\n"), obs.output
    assert "FORGED" not in env.execute("echo next").output


def test_runner_program_cannot_be_replaced(env):
    """Rewriting the runner's program, then killing it: the restarted runner must be ours."""
    evil = 'import sys\nfor l in sys.stdin: print(\'{"head": "Rk9SR0VE", "returncode": 0, "timed_out": false}\', flush=True)\n'
    env.execute(
        "for f in /run/swesrl/*.py; do printf %s " + json.dumps(evil) + " > $f 2>/dev/null; done; "
        "kill -9 $PPID"
    )
    obs = env.execute("echo honest")
    assert obs.output == "honest\n", obs.output
    assert "FORGED" not in env.execute("echo again").output


def test_only_the_sandbox_processes_are_visible_in_local(lenv):
    out = lenv.execute("ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\0' ' '").output
    n, init = out.split("\n", 1)
    assert int(n) <= 6, out
    assert os.getcwd() not in init


def test_local_commands_cannot_raise_their_cpu_priority_back(lenv):
    """Sandboxes run niced (sandbox.nice) so the trainer goes first; a command that lowers its own
    niceness (renice, setpriority) could take the cores back from the generation every episode
    waits on. Unprivileged and without CAP_SYS_NICE, it cannot."""
    base = os.nice(0)
    obs = lenv.execute(
        "nice; renice -n 0 -p $$ >/dev/null 2>&1 && echo RENICED; "
        "python3 -c 'import os; os.setpriority(os.PRIO_PROCESS, 0, 0); print(\"SETPRIORITY\")' 2>/dev/null; "
        "nice -n -5 true 2>/dev/null; ulimit -e; nice"
    )
    assert "RENICED" not in obs.output and "SETPRIORITY" not in obs.output, obs.output
    lines = obs.output.split()
    assert lines[0] == lines[-1] == str(min(base + 10, 19)), obs.output
    assert lines[-2] == "0", obs.output  # RLIMIT_NICE: no ceiling to renice up to
