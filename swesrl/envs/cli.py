"""`swesrl sandbox`: one-off commands in a sandbox and garbage collection of leftovers."""

from __future__ import annotations

from pathlib import Path

import typer

from swesrl.utils import UserError

app = typer.Typer(no_args_is_help=True, help="Sandboxes: run a command, reap leftovers.")


@app.command(
    "exec",
    context_settings={"allow_interspersed_args": False},
    help="Run one command in a fresh sandbox holding a copy of REPO at its HEAD (at /testbed), "
    "print its output and exit with its status. Example: swesrl sandbox exec --repo . -- git log -1",
)
def exec_cmd(
    command: list[str] = typer.Argument(
        ..., help="The command (after `--`); several words are joined by spaces."
    ),
    repo: Path = typer.Option(..., "--repo", help="A git repository (working tree, bare or bundle)."),
    backend: str = typer.Option("local", "--backend", "-b", help="local (bubblewrap) or docker."),
    image: str | None = typer.Option(None, "--image", help="Docker image (default: swesrl/base:latest)."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds before the command is killed."),
    network: bool = typer.Option(False, "--network", help="Allow network access inside the sandbox."),
    diff: bool = typer.Option(False, "--diff", help="Also print the patch the command left (git diff)."),
    unsafe: bool = typer.Option(
        False, "--unsafe-no-sandbox", help="Without a working bubblewrap, run unsandboxed: no isolation."
    ),
) -> None:
    from swesrl.envs import BACKENDS, SandboxConfig, make_env
    from swesrl.envs.common import source_from_dir

    if backend not in BACKENDS:
        raise UserError(f"unknown sandbox backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if timeout <= 0:
        raise UserError("--timeout must be positive")
    source, commit = source_from_dir(repo)
    config = SandboxConfig(
        backend=backend,
        timeout=timeout,
        network=network,
        unsafe_no_sandbox=unsafe,
        **({"image": image} if image else {}),
    )
    with make_env(source, commit, config, image=image) as env:
        obs = env.execute(" ".join(command))
        patch = env.diff() if diff else ""
    typer.echo(obs.output, nl=False)
    if patch:
        typer.echo(patch, nl=False)
    if obs.timed_out:
        typer.echo(f"[timed out after {timeout:g} s]", err=True)
    raise typer.Exit(124 if obs.timed_out else obs.returncode)


@app.command(
    "gc",
    help="Remove leftover Docker sandbox containers (label swesrl.sandbox=1) whose owner process is gone; "
    "with --images also the cached SWE-bench images above --cache-level that no container uses.",
)
def gc_cmd(
    all_: bool = typer.Option(
        False, "--all", help="Remove every sandbox container, also those of live processes."
    ),
    images: bool = typer.Option(
        False, "--images", help="Also remove SWE-bench images (sweb.eval.*, ...) above --cache-level."
    ),
    cache_level: str = typer.Option(
        "env",
        "--cache-level",
        help="With --images: levels that stay: none, base, env (instance images go), instance.",
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="With --images: only images under this namespace (e.g. swebench)."
    ),
) -> None:
    from swesrl.envs.docker_env import gc
    from swesrl.envs.images import CACHE_LEVELS, gc_images
    from swesrl.envs.local import gc_local

    if cache_level not in CACHE_LEVELS:
        raise UserError(f"--cache-level must be one of {', '.join(CACHE_LEVELS)}, got {cache_level!r}")
    stale = gc_local()
    if stale:
        typer.echo(f"removed {len(stale)} leftover local sandbox folder(s) / cgroup(s)")
    removed = gc(all_containers=all_)
    typer.echo(f"removed {len(removed)} sandbox container(s)" + (f": {' '.join(removed)}" if removed else ""))
    if images:
        gone = gc_images(cache_level, namespace)
        typer.echo(f"removed {len(gone)} image(s)" + (f": {' '.join(gone)}" if gone else ""))
