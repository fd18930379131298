"""Sandboxes: the Environment protocol and its backends (local bubblewrap, Docker).

env = make_env(Path("repos/owner__name.git"), base_commit, SandboxConfig(backend="local"))
with env:
    obs = env.execute("python3 -m pytest -q")
    patch = env.diff()
"""

from __future__ import annotations

from pathlib import Path

from swesrl.core.instances import official_image, repo_source
from swesrl.envs.base import WORKDIR, Environment, Observation, SandboxConfig
from swesrl.utils import UserError

BACKENDS = {"local": "swesrl.envs.local:LocalEnv", "docker": "swesrl.envs.docker_env:DockerEnv"}

__all__ = [
    "BACKENDS",
    "WORKDIR",
    "Environment",
    "Observation",
    "SandboxConfig",
    "env_for_instance",
    "make_env",
]


def _backend(name: str):
    if name not in BACKENDS:
        raise UserError(f"unknown sandbox backend {name!r} (choose from {', '.join(BACKENDS)})")
    import importlib

    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_env(
    source: Path | None, base_commit: str, config: SandboxConfig, image: str | None = None
) -> Environment:
    """A sandbox holding `source` (git repo, bare repo or bundle) at `base_commit`, shown at /testbed.

    With the docker backend, `source=None` uses the repository already at /testbed in `image`
    (SWE-bench images)."""
    backend = _backend(config.backend)
    if source is None and config.backend != "docker":
        raise UserError("the local backend needs a repository (source)")
    return backend(None if source is None else Path(source), base_commit, config, image=image)


def env_for_instance(instance, config: SandboxConfig, mirror: str | Path | None = None) -> Environment:
    """The sandbox for one SWE-bench-schema instance; its repository comes from the mirror folder,
    or, with the docker backend and no mirror repository, from the instance's image: `image_name`,
    else SWE-bench's official image (`config.image_namespace`), the image its grading uses."""

    source = repo_source(instance, mirror)
    if (
        source is None
        and config.backend == "docker"
        and (instance.get("image_name") or not instance.get("test_cmd"))
    ):
        image = instance.get("image_name") or official_image(instance["instance_id"], config.image_namespace)
        return make_env(None, instance["base_commit"], config, image=image)  # repo is in the image
    if source is None:
        raise UserError(
            f"{instance['instance_id']}: no repository for {instance['repo']} in mirror {mirror} "
            "(expected <mirror>/<owner>__<name>.git, a folder, or a .bundle)"
        )
    return make_env(source, instance["base_commit"], config, image=instance.get("image_name"))
