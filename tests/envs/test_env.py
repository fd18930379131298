"""Workspaces, diff/reset, instance lookup and the `swesrl sandbox` command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from swesrl.envs import SandboxConfig, env_for_instance, make_env
from swesrl.utils import UserError

from .conftest import git


def test_workspace_holds_base_commit_history_only(env, repo):
    _, base, later = repo
    out = env.execute(
        f"git rev-parse HEAD; git log --oneline | wc -l; git cat-file -e {later} || echo hidden"
    )
    assert out.output.split() == [base, "1", "hidden"]
    assert env.execute("ls SOLUTION.txt").returncode != 0


def test_diff_and_reset(env):
    env.execute(
        "echo 'def third(x):' >> pkg/mod.py && mkdir -p new && echo hi > new/file.txt && rm tests/test_mod.py"
        " && printf '\\x00\\x01' > new/blob.bin && printf '\\x00\\x02' > logo.bin && git add pkg && touch .hidden"
    )
    patch = env.diff()
    assert "+def third(x):" in patch
    assert "diff --git a/new/file.txt b/new/file.txt\nnew file mode 100644" in patch
    assert "deleted file mode 100644" in patch and "tests/test_mod.py" in patch
    assert "blob.bin" not in patch and "logo.bin" not in patch  # binary changes left out, as SWE-bench does
    assert "diff --git a/.hidden b/.hidden" in patch
    assert env.execute("git diff --cached --name-only").output == "pkg/mod.py\n"  # agent's index untouched
    t = time.monotonic()
    env.reset()
    assert time.monotonic() - t < 5
    assert env.diff() == ""
    assert env.execute("git status --porcelain; ls new 2>&1 | head -1").output.startswith("ls: cannot access")


def test_patch_applies_to_a_fresh_checkout(env, repo, tmp_path):
    env.execute("sed -i 's/x\\[1:\\]/x[:]/' pkg/mod.py && echo 'NEW = 1' > pkg/new.py")
    patch = env.diff()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo[0]), str(clone))
    git(clone, "checkout", "-q", repo[1])
    (tmp_path / "p.diff").write_text(patch)
    git(clone, "apply", "--check", str(tmp_path / "p.diff"))


def test_reset_recovers_a_destroyed_git_dir(env):
    env.execute("rm -rf .git pkg; echo junk > junk.txt")
    env.reset()
    assert env.execute("git status --porcelain && ls").output.split() == ["logo.bin", "pkg", "tests"]


def test_sources_bare_and_bundle(repo, tmp_path):
    src, base, _ = repo
    bare = tmp_path / "owner__name.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(bare))
    bundle = tmp_path / "b.bundle"
    git(src, "bundle", "create", str(bundle), "--all")
    for source in (bare, bundle):
        with make_env(source, base, SandboxConfig()) as e:
            assert e.execute("git rev-parse HEAD").output.strip() == base
    instance = {
        "instance_id": "owner__name-1",
        "repo": "owner/name",
        "base_commit": base,
        "problem_statement": "x",
    }
    with env_for_instance(instance, SandboxConfig(), mirror=tmp_path) as e:
        assert e.execute("cat pkg/mod.py").output.startswith("def first")
    with pytest.raises(UserError, match="no repository for other/repo"):
        env_for_instance({**instance, "repo": "other/repo"}, SandboxConfig(), mirror=tmp_path)
    with pytest.raises(UserError, match="cannot check out"):
        make_env(bare, "0" * 40, SandboxConfig())
    with pytest.raises(UserError, match="unknown sandbox backend"):
        make_env(bare, base, SandboxConfig(backend="nope"))


def swesrl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "swesrl", "sandbox", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_cli_exec_local(repo):
    out = swesrl("exec", "--repo", str(repo[0]), "--", "cat SOLUTION.txt; pwd; exit 7")
    assert out.returncode == 7
    assert out.stdout == "the fix lives in a later commit\n/testbed\n"


@pytest.mark.docker
def test_cli_exec_docker(repo, base_image):
    out = swesrl(
        "exec", "--backend", "docker", "--repo", str(repo[0]), "--diff", "--", "echo x >> pkg/mod.py"
    )
    assert out.returncode == 0, out.stderr
    assert "+x" in out.stdout


def _one_line_error(out: subprocess.CompletedProcess, text: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], out.stderr


def test_cli_bad_input(repo, tmp_path):
    _one_line_error(swesrl("exec", "--repo", str(tmp_path / "missing"), "--", "ls"), "repository not found")
    _one_line_error(swesrl("exec", "--repo", str(tmp_path), "--", "ls"), "not a git repository")
    _one_line_error(
        swesrl("exec", "-b", "podman", "--repo", str(repo[0]), "--", "ls"), "unknown sandbox backend"
    )
    dead = {"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    _one_line_error(
        swesrl("exec", "-b", "docker", "--repo", str(repo[0]), "--", "ls", env=dead),
        "cannot reach the Docker daemon",
    )
    _one_line_error(swesrl("gc", env=dead), "cannot reach the Docker daemon")


@pytest.mark.docker
def test_cli_missing_image(repo, docker_client):
    out = swesrl(
        "exec", "-b", "docker", "--image", "swesrl/no-such-image:0", "--repo", str(repo[0]), "--", "ls"
    )
    _one_line_error(out, "docker image not found: swesrl/no-such-image:0")


def test_without_bubblewrap_refuses_unless_unsafe_and_then_warns(repo, monkeypatch, caplog):
    import swesrl.envs.local as local
    from swesrl.utils import UserError

    monkeypatch.setattr(local, "_bwrap_ok", False)
    monkeypatch.setattr(local, "_warned_unsandboxed", False)
    with pytest.raises(UserError, match="--unsafe-no-sandbox"):
        make_env(repo[0], repo[1], SandboxConfig())
    unsafe = SandboxConfig(unsafe_no_sandbox=True)
    with make_env(repo[0], repo[1], unsafe) as e:
        assert e.execute("pwd; cat /testbed/pkg/__init__.py && echo ok").output == "/testbed\nok\n"
        # without a pid namespace only the command's own processes are cleaned up (and `ps` sees the
        # whole host: a duration no other process on it has)
        marker = f"sleep {os.getpid()}.{uuid.uuid4().int % 10**6}"
        e.execute(f"{marker} &")
        assert marker not in e.execute("ps -eo args").output
    with make_env(repo[0], repo[1], unsafe) as e:
        assert e.execute("echo again").output == "again\n"
    # loud, but once per process: a run opens a sandbox per task and must not flood the screen
    assert caplog.text.count("UNSANDBOXED") == 1


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_local_sandbox_is_reused_between_commands(repo):
    with make_env(repo[0], repo[1], SandboxConfig()) as env:
        env.execute("true")
        runner = env._proc.pid
        for _ in range(3):
            assert env.execute("echo $((1 + 1))").output == "2\n"
        assert env._proc.pid == runner
        # the runner is the sandbox's init: `kill -9 -1` kills everything but it
        env.execute("sleep 300 & kill -9 -1")
        assert env.execute("echo back").output == "back\n"
        assert env._proc.pid == runner
        assert "sleep 300" not in env.execute("ps -eo args").output


@pytest.mark.docker
def test_docker_image_with_the_repository_inside(repo, docker_client, base_image):
    """SWE-bench style: the image already holds /testbed; no source is copied in."""
    tag = f"swesrl/test-testbed:{os.getpid()}"
    with make_env(repo[0], repo[1], SandboxConfig(backend="docker")) as e:
        e.container.commit(repository=tag.split(":")[0], tag=tag.split(":")[1])
    try:
        instance = {
            "instance_id": "x",
            "repo": "o/n",
            "base_commit": repo[1],
            "problem_statement": "p",
            "image_name": tag,
        }
        with env_for_instance(instance, SandboxConfig(backend="docker"), mirror=None) as e:
            assert e.execute("git rev-parse HEAD").output.strip() == repo[1]
            e.execute("echo y >> pkg/mod.py")
            assert "+y" in e.diff()
            e.reset()
            assert e.diff() == ""
    finally:
        docker_client.images.remove(tag, force=True)


def test_same_size_edit_right_after_reset_is_in_the_diff(env):
    # Racy-git guard: an edit that keeps the file's size, in the same second as the checkout,
    # must still show (the throw-away index keeps the real index's mtime).
    for _ in range(15):
        env.reset()
        env.execute("sed -i 's/x\\[1:\\]/x[:1]/' pkg/mod.py")
        assert "+    return x[:1]" in env.diff()
