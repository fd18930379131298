"""SWE-bench's image cache policy and `swesrl sandbox gc --images` (real Docker daemon for the latter)."""

from __future__ import annotations

import doctest
import io
import secrets
import subprocess
import sys

import pytest

from swesrl.envs import images


def test_doctests_and_swebench_rule():
    assert doctest.testmod(images).failed == 0
    eval_, env, base = (
        "ns/sweb.eval.x86_64.a_1776_b-1:latest",
        "sweb.env.py.x86_64.abc:latest",
        "sweb.base.py.x86_64:latest",
    )
    removed = {
        level: [n for n in (eval_, env, base) if images.should_remove(n, level, existed_before=False)]
        for level in images.CACHE_LEVELS
    }  # as swebench's run_evaluation.should_remove
    assert removed == {"none": [eval_, env, base], "base": [eval_, env], "env": [eval_], "instance": []}
    assert not images.should_remove(eval_, "none", existed_before=True)
    assert images.should_remove(eval_, "none", existed_before=True, clean=True)
    assert not images.should_remove("swesrl/base:latest", "none", existed_before=False, clean=True)
    assert (
        images.normalise("a/b") == "a/b:latest" and images.normalise("host:5000/a/b:1") == "host:5000/a/b:1"
    )
    with pytest.raises(ValueError, match="cache level must be one of"):
        images.should_remove(eval_, "all", existed_before=False)


@pytest.mark.docker
def test_gc_images_removes_unused_swebench_images_only(docker_client):
    ns = f"swesrltest-gc-{secrets.token_hex(4)}"
    free, used, other = (
        f"{ns}/sweb.eval.x86_64.a_1776_free-1:latest",
        f"{ns}/sweb.eval.x86_64.a_1776_used-1:latest",
        f"{ns}/not-swebench:latest",
    )
    for name in (free, used, other):  # distinct images (a label each), no new layers
        dockerfile = io.BytesIO(f"FROM swesrl/base:latest\nLABEL swesrltest={name}\n".encode())
        docker_client.images.build(fileobj=dockerfile, tag=name, rm=True)
    c = docker_client.containers.create(used, ["true"])  # a stopped container still uses its image
    try:
        r = subprocess.run(
            [sys.executable, "-m", "swesrl", "sandbox", "gc", "--images", "--namespace", ns],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        assert f"removed 1 image(s): {free}" in r.stdout
        tags = images.local_images(docker_client)
        assert free not in tags and used in tags and other in tags and "swesrl/base:latest" in tags
        bad = subprocess.run([sys.executable, "-m", "swesrl", "sandbox", "gc", "--images", "--cache-level", "all"],
                             capture_output=True, text=True)  # fmt: skip
        assert bad.returncode == 2 and "--cache-level must be one of" in bad.stderr
    finally:
        c.remove(force=True)
        for name in (used, other):
            docker_client.images.remove(name)
