"""Red-team tests of the docker backend: what a hostile command inside the container must not manage.

Each test is an attack (or the check that an attack has nothing to find); see DESIGN.md "Threat model".
"""

from __future__ import annotations

import io
import re
import shlex
import tarfile
import uuid
from pathlib import Path

import pytest

from swesrl.envs import SandboxConfig
from swesrl.envs.common import RUNNER_DIED

from .conftest import git, make_repo

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


# -- repository history of images that carry the repository -----------------------------------
@pytest.fixture(scope="module")
def history_image(docker_client, base_image, tmp_path_factory):
    """An image like a SWE-bench one (/testbed checked out at the base commit, on main), whose
    repository also holds what the agent must not see: a later commit with the fix (reflog, ORIG_HEAD,
    FETCH_HEAD, a remote-tracking branch), an annotated tag, another branch, a stash, a dangling blob;
    refs packed. Untracked-but-excluded build output lies in the work tree, as `pip install -e .` leaves."""
    path, base, later = make_repo(tmp_path_factory.mktemp("hist") / "testbed")
    git(path, "tag", "-a", "v1", "-m", "release with the fix", later)
    git(path, "checkout", "-q", "-b", "feature", base)
    (path / "FEATURE.txt").write_text("a branch the agent must not see\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "feature")
    feature = git(path, "rev-parse", "HEAD")
    git(path, "checkout", "-q", "main")
    git(path, "remote", "add", "origin", "https://example.invalid/upstream.git")
    git(path, "update-ref", "refs/remotes/origin/main", later)
    git(path, "reset", "-q", "--hard", base)  # ORIG_HEAD = later; the reflog holds later
    (path / "pkg" / "mod.py").write_text("stashed = 'a stash the agent must not see'\n")
    git(path, "stash", "-q")
    stash = git(path, "rev-parse", "refs/stash")
    (path / ".git" / "FETCH_HEAD").write_text(
        f"{later}\t\tbranch 'main' of https://example.invalid/upstream\n"
    )
    (path.parent / "loose.txt").write_text("a dangling secret\n")
    dangling = git(path, "hash-object", "-w", str(path.parent / "loose.txt"))
    git(path, "pack-refs", "--all")
    (path / ".git" / "info" / "exclude").write_text("build/\n")
    (path / "build").mkdir()
    (path / "build" / "artifact.txt").write_text("compiled\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname="testbed")
    image = f"swesrltest/redteam-history:{uuid.uuid4().hex[:8]}"
    c = docker_client.containers.run(base_image, ["sleep", "60"], detach=True, network_mode="none")
    try:
        c.put_archive("/", buf.getvalue())
        name, tag = image.rsplit(":", 1)
        c.commit(repository=name, tag=tag)
    finally:
        c.remove(force=True)
    hidden = {"later": later, "feature": feature, "stash": stash, "dangling": dangling}
    hidden["solution_blob"] = git(path, "rev-parse", f"{later}:SOLUTION.txt")
    hidden["tag"] = git(path, "rev-parse", "refs/tags/v1")
    yield image, base, hidden
    docker_client.images.remove(image, force=True)


@pytest.fixture(scope="module")
def henv(history_image):
    from swesrl.envs.docker_env import DockerEnv

    image, base, _ = history_image
    e = DockerEnv(None, base, SandboxConfig(backend="docker", timeout=60), image=image)
    yield e
    e.close()


def test_image_repository_holds_only_the_base_commit_and_its_ancestors(henv, history_image):
    _, base, hidden = history_image

    def out(cmd: str) -> str:
        obs = henv.execute(f"cd /testbed && {cmd}")
        return obs.output

    assert out("git rev-parse HEAD").strip() == base
    assert out("git symbolic-ref HEAD").strip() == "refs/heads/main"
    assert out("git for-each-ref --format='%(refname)'").split() == ["refs/heads/main"]
    assert out("git log --all --format=%H").split() == [base]
    assert out("git tag") == "" and out("git stash list") == "" and out("git remote") == ""
    assert out("git branch -a").strip() == "* main"
    assert out("git reflog --all") == "" and out("git reflog") == ""
    for name, sha in hidden.items():
        assert henv.execute(f"cd /testbed && git cat-file -e {sha}").returncode != 0, name
        assert sha not in out("grep -rsI . .git; cat .git/packed-refs .git/*HEAD 2>/dev/null"), name
    fsck = out(
        "git fsck --unreachable --no-reflogs 2>&1; git fsck --lost-found 2>&1; git fsck --dangling 2>&1"
    )
    assert "unreachable" not in fsck and "dangling" not in fsck, fsck
    assert out("ls .git/lost-found 2>/dev/null") == ""
    extra = out(
        "git cat-file --batch-all-objects --batch-check='%(objectname)' | sort > /tmp/all; "
        "git rev-list --objects HEAD | cut -d' ' -f1 | sort > /tmp/reach; comm -23 /tmp/all /tmp/reach"
    )
    assert extra == "", extra
    assert "the fix lives" not in out("git log --all -p; git grep -h fix $(git rev-list --all)")
    # the work tree is the image's: clean at the base, excluded build output kept
    assert out("git status --porcelain") == ""
    assert out("cat build/artifact.txt") == "compiled\n"
    assert henv.diff() == ""


def test_image_repository_still_works_for_the_agent(henv):
    obs = henv.execute(
        "set -e; cd /testbed; git log --oneline | wc -l; echo y >> pkg/mod.py; git diff --stat; "
        "git stash -q; git stash pop -q; git -c user.name=a -c user.email=a@b commit -qam wip; "
        "git checkout -q -b side; git checkout -q main; git fsck --no-progress 2>&1 | grep -v dangling || true"
    )
    assert obs.returncode == 0, obs.output
    assert "pkg/mod.py" in obs.output, obs.output
    henv.reset()
    assert henv.diff() == ""


def test_history_isolation_can_be_turned_off(history_image):
    from swesrl.envs.docker_env import DockerEnv

    image, base, hidden = history_image
    with DockerEnv(None, base, SandboxConfig(backend="docker"), image=image, isolate_history=False) as e:
        assert e.execute(f"cd /testbed && git cat-file -e {hidden['later']}").returncode == 0
        assert "v1" in e.execute("cd /testbed && git tag").output
