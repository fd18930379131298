"""SWE-bench's image cache policy for docker runs, and removing cached images.

SWE-bench names its images by level: `sweb.base.*` (OS and toolchain), `sweb.env.*` (one
repository version's environment) and `sweb.eval.*` (one instance: the repository at base_commit,
installed), on Docker Hub under a `namespace/`. A cache level says which levels stay after a run,
as swebench's `run_evaluation --cache_level`: `none`, `base`, `env` (its default: instance images
go) or `instance` (all stay). An image the run found already present stays unless `clean`.
Removal never forces: an image a container (running or stopped) still uses stays.
"""

from __future__ import annotations

import logging

from swesrl.envs.docker_env import docker_client

log = logging.getLogger(__name__)

CACHE_LEVELS = ("none", "base", "env", "instance")
DEFAULT_CACHE_LEVEL = "env"
_PREFIXES = {"sweb.base.": "base", "sweb.env.": "env", "sweb.eval.": "instance"}


def image_level(name: str) -> str | None:
    """ "base", "env" or "instance" for a SWE-bench image name (any namespace), else None.

    >>> image_level("swebench/sweb.eval.x86_64.django_1776_django-11099:latest")
    'instance'
    >>> image_level("swesrl/base:latest") is None
    True
    """
    last = name.rsplit("/", 1)[-1]
    return next((lvl for p, lvl in _PREFIXES.items() if last.startswith(p)), None)


def check_cache_level(cache_level: str) -> str:
    if cache_level not in CACHE_LEVELS:
        raise ValueError(f"cache level must be one of {', '.join(CACHE_LEVELS)}, got {cache_level!r}")
    return cache_level


def should_remove(name: str, cache_level: str, existed_before: bool, clean: bool = False) -> bool:
    """swebench's rule: a SWE-bench image above the cache level goes, if this run brought it (or `clean`).

    >>> should_remove("ns/sweb.eval.x86_64.a_1776_b-1:latest", "env", existed_before=False)
    True
    >>> should_remove("ns/sweb.eval.x86_64.a_1776_b-1:latest", "env", existed_before=True)
    False
    >>> should_remove("sweb.env.py.x86_64.abc:latest", "env", existed_before=False)
    False
    """
    level = image_level(name)
    if level is None:
        return False
    keep = CACHE_LEVELS.index(check_cache_level(cache_level)) >= CACHE_LEVELS.index(level)
    return not keep and (clean or not existed_before)


def normalise(name: str) -> str:
    """`repo:tag` as docker lists it (`:latest` when no tag is given)."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def local_images(client) -> set[str]:
    """Every `repo:tag` the daemon holds."""
    return {t for img in client.images.list() for t in img.tags}


def images_in_use(client) -> set[str]:
    """Ids of the images some container (running or stopped) was made from."""
    return {c.attrs.get("Image", "") for c in client.containers.list(all=True)}


def remove_image(client, name: str, in_use: set[str] | None = None) -> bool:
    """Remove one tag (the image too when it was its last) unless a container uses the image (docker
    itself only refuses for the last tag); False when kept or already gone."""
    import docker

    try:
        if client.images.get(normalise(name)).id in (images_in_use(client) if in_use is None else in_use):
            log.debug("keeping image %s: a container uses it", name)
            return False
        client.images.remove(normalise(name))
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as e:  # 409: a container still uses it
        log.debug("keeping image %s: %s", name, e.explanation or e)
        return False


def gc_images(cache_level: str = DEFAULT_CACHE_LEVEL, namespace: str | None = None, client=None) -> list[str]:
    """Remove the SWE-bench images above `cache_level` (present ones too: this is a clean), only
    those under `namespace/` when given, that no container uses. Returns the removed tags."""

    check_cache_level(cache_level)
    client = client or docker_client()
    removed = []
    in_use = images_in_use(client)
    for tag in sorted(local_images(client)):
        if namespace is not None and not tag.startswith(namespace.rstrip("/") + "/"):
            continue
        if should_remove(tag, cache_level, existed_before=True, clean=True) and remove_image(
            client, tag, in_use
        ):
            removed.append(tag)
    return removed
