"""Fixtures for sandbox tests: small real git repositories and real sandboxes of both backends."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swesrl.envs import SandboxConfig, make_env

BASE_IMAGE = "swesrl/base:latest"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path) -> tuple[Path, str, str]:
    """A repo with a package, a test and a binary file; returns (path, base commit, a later commit)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "pkg").mkdir()
    (path / "pkg" / "__init__.py").write_text("")
    (path / "pkg" / "mod.py").write_text(
        "def first(x):\n    return x[1:]\n\n\ndef twice(x):\n    return x + x\n"
    )
    (path / "tests").mkdir()
    (path / "tests" / "test_mod.py").write_text(
        "from pkg.mod import first\n\n\ndef test_first():\n    assert first([1, 2]) == [1]\n"
    )
    (path / "logo.bin").write_bytes(bytes(range(256)))
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    base = git(path, "rev-parse", "HEAD")
    (path / "SOLUTION.txt").write_text("the fix lives in a later commit\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "later")
    return path, base, git(path, "rev-parse", "HEAD")


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> tuple[Path, str, str]:
    return make_repo(tmp_path_factory.mktemp("src") / "repo")


@pytest.fixture(scope="session")
def base_image(docker_client):
    import docker

    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {BASE_IMAGE} is missing (docker/build_base_offline.sh builds it)")
        pytest.skip(f"{BASE_IMAGE} missing; build it with docker/build_base_offline.sh")
    return BASE_IMAGE


BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "docker":
        request.getfixturevalue("base_image")
    return request.param


_shared: dict[str, object] = {}


@pytest.fixture
def env(backend, repo):
    """A sandbox per backend shared by the module's tests (reset after each test; reset is under test too)."""
    key = backend
    if key not in _shared:
        _shared[key] = make_env(repo[0], repo[1], SandboxConfig(backend=backend, timeout=30))
    e = _shared[key]
    yield e
    e.reset()


@pytest.fixture(scope="session", autouse=True)
def _close_shared():
    yield
    for e in _shared.values():
        e.close()
    _shared.clear()
