"""The Environment protocol (duck-typed; backends do not inherit) and shared sandbox settings.

Every backend presents the task repository at `/testbed` (SWE-bench's convention), so the same
commands and tool calls give the same observations in every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import Field

from swesrl.config import StrictModel

WORKDIR = "/testbed"


@dataclass
class Observation:
    output: str
    """stdout and stderr interleaved, decoded as UTF-8 with replacement, bounded (head + tail)."""
    returncode: int
    """The command's exit status; -1 when it was killed for its timeout."""
    timed_out: bool = False
    report: bytes | None = None
    """What the command wrote to its report pipe ($SWESRL_REPORT_FD), for `execute_reported` only."""


@runtime_checkable
class Environment(Protocol):
    def execute(self, command: str, timeout: float | None = None) -> Observation: ...

    def diff(self) -> str: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Environment: ...

    def __exit__(self, *exc) -> None: ...


class SandboxConfig(StrictModel):
    backend: str = "local"
    """Which backend: `local` (bubblewrap, the embedded default) or `docker`."""
    timeout: float = 120.0
    """Default per-command timeout in seconds; the whole process tree is killed when it passes."""
    max_output_bytes: int = 64_000
    """Output kept per command: the head and tail halves, the middle replaced by a marker."""
    network: bool = False
    """Allow network access from inside the sandbox (off by default)."""
    image: str = "swesrl/base:latest"
    """Docker image for tasks that name none and are not SWE-bench tasks (bundled tasks)."""
    image_namespace: str = "swebench"
    """Docker backend: namespace of SWE-bench's official images (`sweb.eval.x86_64.<id>`), the
    sandbox of a SWE-bench instance that names no image and has no repository in the mirror."""
    memory: str = "4g"
    """Docker memory limit; the local backend applies it as an address-space limit per command."""
    pids: int = 512
    """Maximum processes inside the sandbox."""
    cpus: float = 2.0
    """Docker CPU quota."""
    nice: int = Field(10, ge=0, le=19)
    """Local backend: the CPU priority (`nice`) the sandbox's processes run at. Above 0 the trainer,
    whose generation every episode waits on, runs first when the cores are busy (RLVR on 2 cores:
    decode steps ~8% faster measured at 15). Docker: not applied (containers are scheduled by their
    own cgroup)."""
    env: dict[str, str] = {}
    """Extra environment variables for commands inside the sandbox."""
    task_python: str = "env"
    """Local backend: the Python a task's code runs with. `env`: a task environment with pytest, made
    once and mounted read-only (`envs/taskenv.py`); `host`: the trainer's own interpreter and
    packages; or the path of another Python prefix (a venv or conda env) to mount and put on PATH."""
    unsafe_no_sandbox: bool = False
    """Local backend only: where bubblewrap cannot isolate commands, run them as plain host
    processes anyway (no isolation at all; never for RL on untrusted policies). Off: refuse."""
