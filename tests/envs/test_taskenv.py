"""Tasks run with their own Python in the local sandbox, not the trainer's environment."""

from __future__ import annotations

import sys

from swesrl.envs import SandboxConfig, make_env
from swesrl.envs.taskenv import task_env


def test_task_python_has_pytest_but_not_the_trainer_packages(repo):
    prefix = task_env()
    assert prefix is not None and (prefix / "bin" / "python3").exists()
    with make_env(repo[0], repo[1], SandboxConfig()) as env:
        obs = env.execute("python3 -c 'import sys, pytest; print(sys.prefix)'; command -v pytest")
        assert obs.output.split() == [str(prefix), f"{prefix}/bin/pytest"], obs.output
        for mod in ("torch", "transformers", "swesrl"):
            assert env.execute(f"python3 -c 'import {mod}'").returncode != 0, mod
        assert "1 failed" in env.execute("python3 -m pytest -q tests").output  # the repo's test fails at base
        assert env.execute("pytest --version").returncode == 0
        # pytest is byte-compiled in the read-only environment (else every test run compiles it again)
        obs = env.execute(
            "python3 -B -c 'import os, _pytest.python as m; print(os.path.isfile(m.__cached__))'"
        )
        assert obs.output.strip() == "True", obs.output
        obs = env.execute(f"touch {prefix}/x 2>&1; pip --version 2>&1 | head -1")
        assert "Read-only file system" in obs.output, obs.output  # nothing a task does reaches the next
    with make_env(repo[0], repo[1], SandboxConfig(task_python="host")) as env:
        assert env.execute("python3 -c 'import sys; print(sys.prefix)'").output.strip() == sys.prefix
