"""`swesrl run` (batch agent runs) and `swesrl step` (interactive stepping)."""

from __future__ import annotations

from pathlib import Path

import typer

from swesrl.core.instances import default_mirror, load_instances, select
from swesrl.utils import UserError, progress_bars

_CONFIG_HELP = "Agent config: YAML files or bundled names, and key=value overrides (repeatable)."
_MIRROR_HELP = "Folder of <owner>__<name>.git repositories (default: repos/ beside the instances file)."


UNSAFE_HELP = (
    "Where bubblewrap cannot isolate commands (local backend), run them as plain host processes "
    "anyway: NO isolation (never with an untrusted policy)."
)


def _config(config: list[str] | None, backend: str | None, unsafe: bool = False):
    from swesrl.agent.prompts import load_agent_config

    cfg = load_agent_config(config or [])
    if unsafe:
        cfg.sandbox.unsafe_no_sandbox = True
    if backend:
        if backend not in ("local", "docker"):
            raise UserError(f"unknown backend {backend!r}; use local or docker")
        cfg.sandbox.backend = backend
    return cfg


def _model(spec: str, **kw):
    from swesrl.agent.models import get_model

    model = get_model(spec, **kw)
    ping = getattr(model, "ping", None)
    if ping:
        ping()
    return model


def run(
    instances: Path = typer.Option(..., "--instances", "-i", help="Instances file (JSON, JSONL or parquet)."),
    model: str = typer.Option(..., "--model", "-m", help="hf:PATH, openai:BASE_URL#MODEL or replay:TRAJ."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: <id>/traj.json and preds.jsonl."),
    backend: str = typer.Option(
        None, "--backend", "-b", help="Sandbox backend: local or docker (default: config)."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        "-w",
        min=1,
        help="Instances run in parallel (threads; an hf: model is shared and batches concurrent queries).",
    ),
    limit: int = typer.Option(0, "--limit", "-n", min=0, help="Run only the first N instances (0: all)."),
    ids: list[str] = typer.Option(None, "--id", help="Run only these instance ids (repeatable)."),
    config: list[str] = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    repo_mirror: Path = typer.Option(None, "--repo-mirror", help=_MIRROR_HELP),
    redo: bool = typer.Option(
        False, "--redo", help="Rerun instances that already have a finished trajectory."
    ),
    unsafe: bool = typer.Option(False, "--unsafe-no-sandbox", help=UNSAFE_HELP),
) -> None:
    """Run the agent on many instances: DIR/<instance_id>/traj.json and SWE-bench DIR/preds.jsonl.

    Finished instances (a trajectory with an exit status other than `error`) are skipped, so an
    interrupted run resumes; a crash in one instance is recorded in its trajectory and never stops
    the batch."""
    from rich.console import Console
    from rich.table import Table

    from swesrl.agent.batch import run_batch

    cfg = _config(config, backend, unsafe)
    insts = select(load_instances(instances), ids)
    if limit:
        insts = insts[:limit]
    m = _model(model)
    with progress_bars() as on_progress:
        summary = run_batch(
            insts,
            m,
            cfg,
            out,
            workers=workers,
            mirror=repo_mirror,
            instances_path=instances,
            redo=redo,
            on_progress=on_progress,
        )
    table = Table(title=f"swesrl run: {len(insts)} instances -> {out}")
    table.add_column("exit status")
    table.add_column("count", justify="right")
    for status, n in sorted(summary.items()):
        table.add_row(status, str(n))
    Console().print(table)


def step(
    instances: Path = typer.Option(..., "--instances", "-i", help="Instances file (JSON, JSONL or parquet)."),
    instance: str = typer.Option(..., "--instance", help="The instance id to step through."),
    model: str = typer.Option(None, "--model", "-m", help="Model spec (needed for confirm and auto modes)."),
    mode: str = typer.Option(
        "confirm",
        "--mode",
        help="human: you type actions; confirm: accept / edit / replace "
        "each proposed action; auto: the model acts alone, step by step.",
    ),
    save: Path = typer.Option(
        None, "--save", "-s", help="Write the stepped episode as a trajectory (after every step)."
    ),
    backend: str = typer.Option(
        None, "--backend", "-b", help="Sandbox backend: local or docker (default: config)."
    ),
    config: list[str] = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    repo_mirror: Path = typer.Option(None, "--repo-mirror", help=_MIRROR_HELP),
) -> None:
    """Step an agent through one task in a sandbox, with panels for thought, action and observation.

    Type a plain shell command (bash shorthand) or an XML reply starting with `<` (it ends at
    `</function>`); press Enter on an empty line to start a multi-line block and end it with a line
    holding only `.`. Commands: `:submit` submits the current diff, `:quit` stops, `:help`."""
    from swesrl.agent.interactive import step_episode

    if mode not in ("human", "confirm", "auto"):
        raise UserError(f"unknown mode {mode!r}; use human, confirm or auto")
    if mode != "human" and not model:
        raise UserError(f"--mode {mode} needs --model")
    cfg = _config(config, backend)
    (inst,) = select(load_instances(instances), [instance])
    m = _model(model) if model else None
    step_episode(inst, m, cfg, mode=mode, save=save, mirror=repo_mirror or default_mirror(instances))


COMMANDS = {"run": run, "step": step}
