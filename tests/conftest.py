"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os

import pytest


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def docker_client():
    """A live Docker client; in CI (CI=true) a missing daemon is a failure, elsewhere a skip."""
    if not docker_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Docker daemon is reachable")
        pytest.skip("no Docker daemon reachable")
    import docker

    return docker.from_env()


@pytest.fixture(scope="session")
def vllm_served(tmp_path_factory):
    """A vLLM server (CPU) serving the shipped checkpoint; skips where its environment is missing."""
    from tests.servers import vllm_server

    yield from vllm_server(tmp_path_factory)
