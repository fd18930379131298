"""Red-team tests of the docker backend: what a hostile command inside the container must not manage.

Each test is an attack (or the check that an attack has nothing to find); see DESIGN.md "Threat model".
"""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import pytest

from swesrl.envs import SandboxConfig
from swesrl.envs.common import RUNNER_DIED

pytestmark = pytest.mark.docker

# capability bit numbers (linux/capability.h) that no sandboxed command may hold
FORBIDDEN_CAPS = {
    "DAC_READ_SEARCH": 2,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "NET_BIND_SERVICE": 10,
    "NET_ADMIN": 12,
    "NET_RAW": 13,
    "SYS_MODULE": 16,
    "SYS_CHROOT": 18,
    "SYS_PTRACE": 19,
    "SYS_ADMIN": 21,
    "MKNOD": 27,
    "AUDIT_WRITE": 29,
    "SETFCAP": 31,
}
# name_to_handle_at works unprivileged; open_by_handle_at needs CAP_DAC_READ_SEARCH ("shocker")
OPEN_BY_HANDLE = r"""
import ctypes, ctypes.util, errno, os
libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
class Handle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]
h = Handle(); h.handle_bytes = 128
mount_id = ctypes.c_int()
if libc.name_to_handle_at(-100, b"/etc", ctypes.byref(h), ctypes.byref(mount_id), 0) != 0:
    print("name_to_handle_at", errno.errorcode[ctypes.get_errno()])
mfd = os.open("/", os.O_RDONLY)
fd = libc.open_by_handle_at(mfd, ctypes.byref(h), os.O_RDONLY)
print("OPENED" if fd >= 0 else "open_by_handle_at " + errno.errorcode[ctypes.get_errno()])
"""
SCAN = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | head -c 60; echo; done"


@pytest.fixture(scope="module")
def denv(base_image, repo):
    from swesrl.envs.docker_env import DockerEnv

    e = DockerEnv(repo[0], repo[1], SandboxConfig(backend="docker", timeout=60))
    yield e
    e.close()


def _caps(status: str, field: str) -> set[str]:
    value = int(re.search(rf"^{field}:\s*([0-9a-f]+)$", status, re.MULTILINE).group(1), 16)
    return {name for name, bit in FORBIDDEN_CAPS.items() if value >> bit & 1}


# -- capabilities ---------------------------------------------------------------------------------
def test_commands_hold_no_dangerous_capability_and_cannot_regain_one(denv):
    status = denv.execute("cat /proc/self/status").output
    for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
        assert _caps(status, field) == set(), (field, status)
    assert re.search(r"^NoNewPrivs:\s*1$", status, re.MULTILINE), status


def test_mounts_fail(denv):
    for cmd in ("mount -t tmpfs x /mnt", "mount -o remount,rw /", "mount -o remount,ro /",
                "mount --bind /testbed /mnt", "umount /etc/hosts"):  # fmt: skip
        obs = denv.execute(cmd)
        assert obs.returncode != 0, (cmd, obs.output)
    assert "tmpfs /mnt" not in denv.execute("cat /proc/self/mounts").output


def test_no_new_namespaces_to_regain_capabilities(denv):
    """A user namespace would hand the command a full capability set (then mount, ...)."""
    for cmd in ("unshare -Ur true", "unshare -m true", "unshare -p -f true"):
        obs = denv.execute(cmd)
        assert obs.returncode != 0, (cmd, obs.output)


def test_open_by_handle_at_is_refused(denv):
    obs = denv.execute(f"python3 -c {shlex.quote(OPEN_BY_HANDLE)}")
    assert "OPENED" not in obs.output and "open_by_handle_at EPERM" in obs.output, obs.output


def test_setuid_root_binaries_give_nothing(denv):
    """no-new-privileges: a set-uid program (or file capabilities) cannot raise what a command holds."""
    obs = denv.execute(
        "cp /bin/cat /tmp/suidcat && chmod 4755 /tmp/suidcat && /tmp/suidcat /proc/self/status | grep CapEff"
    )
    assert obs.returncode == 0, obs.output
    assert _caps(obs.output, "CapEff") == set(), obs.output


def test_ordinary_root_commands_still_work(denv):
    """What SWE-bench's setup and eval scripts do as root: git, pip, pytest, tar, chown, chmod."""
    script = (
        "set -e; cd /testbed; git status --short; git log --oneline -1; "
        "pip --version; python3 -m pytest -q -p no:cacheprovider tests || true; "
        "mkdir -p /tmp/own && touch /tmp/own/f && chown 1000:1000 /tmp/own/f && chmod 600 /tmp/own/f && "
        "cat /tmp/own/f && tar -C /tmp -cf /tmp/own.tar own && rm -rf /tmp/own && tar -C /tmp -xf /tmp/own.tar && "
        "stat -c '%u %a' /tmp/own/f; rm -rf /tmp/own /tmp/own.tar"
    )
    obs = denv.execute(script)
    assert obs.returncode == 0, obs.output
    assert (
        "1 failed" in obs.output
        and "test_first" in obs.output
        and "pip " in obs.output
        and "1000 600" in obs.output
    ), obs.output
    # the repository itself: commit, branch, back to the base (then the env is reset)
    obs = denv.execute(
        "set -e; cd /testbed; echo x > new.txt; git add new.txt; "
        "git -c user.name=a -c user.email=a@b commit -qm x; git checkout -q -b tmp; git checkout -q main"
    )
    assert obs.returncode == 0, obs.output
    denv.reset()
    assert denv.diff() == ""


# -- a command that kills the runner leaves nothing running -----------------------------------
@pytest.mark.parametrize("kill", ["kill -9 $PPID", "kill -9 -1"])
def test_survivor_of_a_killed_runner_does_not_outlive_it(denv, kill):
    """A survivor that drops every marker (empty environment, own session) and then kills the runner:
    the next runner must not take it into its baseline of processes to spare."""
    obs = denv.execute(
        "env -i /usr/bin/setsid /usr/bin/nohup /bin/sleep 1000 > /dev/null 2>&1 < /dev/null & "
        f"sleep 0.5; {kill}; sleep 5"
    )
    assert obs.output == RUNNER_DIED and obs.returncode == -1, obs
    assert denv.execute("echo alive").output == "alive\n"
    obs = denv.execute(SCAN)
    assert "sleep 1000" not in obs.output and "sleep 5" not in obs.output, obs.output
    obs = denv.execute("env -i /usr/bin/setsid /bin/sleep 1000 > /dev/null 2>&1 < /dev/null & echo started")
    assert "started" in obs.output
    assert "sleep 1000" not in denv.execute(SCAN).output


# -- host secrets -------------------------------------------------------------------------------
def test_host_environment_and_paths_are_not_visible(base_image, repo, monkeypatch, docker_client):
    from swesrl.envs.docker_env import DockerEnv

    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("SWESRL_SECRET_TOKEN", token)
    with DockerEnv(repo[0], repo[1], SandboxConfig(backend="docker")) as e:
        out = e.execute(
            "env; echo; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; grep -rs SWESRL_SECRET /run /tmp /etc"
        ).output
        assert token not in out and "SWESRL_SECRET_TOKEN" not in out, out
        assert not any(
            token in kv for kv in docker_client.api.inspect_container(e.container.id)["Config"]["Env"]
        )
        mountinfo = e.execute("cat /proc/self/mountinfo").output
        host_paths = ("/root", "/home", "/work", "/tmp", "/var/run/docker.sock", "/run/docker.sock",
                      str(Path(repo[0]).parent))  # fmt: skip
        for line in mountinfo.splitlines():
            root, point = line.split()[3:5]
            for p in host_paths:
                assert not (root == p or root.startswith(p + "/")), line
                assert not (point == p or point.startswith(p + "/")), line
        assert e.execute("test -e /var/run/docker.sock || test -e /run/docker.sock").returncode != 0
