"""`swesrl tasks`: build the bundled task suite and run the scripted expert."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import typer

from swesrl.core.instances import default_mirror, load_instances
from swesrl.utils import UserError, progress_bars

app = typer.Typer(no_args_is_help=True, help="Bundled offline tasks and the scripted expert.")


@app.command("build")
def build(
    out: Path = typer.Option(
        ..., "--out", help="Suite folder to write (instances.jsonl, repos/, splits.json)."
    ),
    n: int = typer.Option(60, "--n", help="Number of tasks (1 to 2000)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same suite."),
) -> None:
    """Generate the offline task suite: small Python repositories, each task one injected bug."""
    from rich.console import Console
    from rich.table import Table

    from swesrl.tasks.generate import build_suite

    t0 = time.monotonic()
    with progress_bars(transient=True) as on_progress:
        path = build_suite(out, n=n, seed=seed, on_progress=on_progress)
    secs = time.monotonic() - t0
    insts = load_instances(path)
    fams = Counter(i["family"] for i in insts)
    splits = Counter(i["split"] for i in insts)
    table = Table(title=f"{len(insts)} tasks, {len({i['repo'] for i in insts})} repositories, {secs:.1f}s")
    table.add_column("family")
    table.add_column("tasks", justify="right")
    table.add_column("test", justify="right")
    for fam, k in sorted(fams.items()):
        table.add_row(fam, str(k), str(sum(1 for i in insts if i["family"] == fam and i["split"] == "test")))
    console = Console()
    console.print(table)
    console.print(f"train {splits['train']}, test {splits['test']} -> {path}")


@app.command("expert")
def expert(
    instances: Path = typer.Option(..., "--instances", "-i", help="Suite instances file (instances.jsonl)."),
    out: Path = typer.Option(..., "--out", "-o", help="Trajectories file to write (JSONL, one per task)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Tasks run in parallel."),
    backend: str = typer.Option("local", "--backend", help="Sandbox backend: local or docker."),
    seed: int = typer.Option(0, "--seed", help="Seed of the expert's choices (varies the action sequences)."),
    split: str = typer.Option("", "--split", help="Only tasks of this split (train or test); default all."),
    limit: int = typer.Option(0, "--limit", help="Only the first N tasks (0: all)."),
    grade: bool = typer.Option(True, "--grade/--no-grade", help="Check every final patch with the harness."),
    mirror: Path = typer.Option(
        None, "--mirror", help="Repository folder; default: repos/ beside the instances."
    ),
    config: list[str] = typer.Option([], "--config", "-c", help="Agent config YAML or key=value overrides."),
) -> None:
    """Solve tasks with the scripted expert through the real agent loop and sandbox; write trajectories."""
    from statistics import median

    from swesrl.tasks.expert import solve

    insts = load_instances(instances)
    if split:
        insts = [i for i in insts if i.get("split") == split]
    if limit > 0:
        insts = insts[:limit]
    if not insts:
        raise UserError(f"no tasks selected from {instances}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.with_name(out.name + ".write-test")
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write trajectories to {out}: {e.strerror or e}") from None
    t0 = time.monotonic()
    with progress_bars(transient=True) as on_progress:
        trajs = solve(
            insts,
            out,
            mirror=mirror or default_mirror(instances),
            backend=backend,
            workers=workers,
            seed=seed,
            grade=grade,
            overrides=config,
            on_progress=on_progress,
        )
    steps = [t["info"]["n_steps"] for t in trajs]
    submitted = sum(1 for t in trajs if t["info"]["exit_status"] == "submitted")
    line = (
        f"{len(trajs)} trajectories in {time.monotonic() - t0:.1f}s -> {out}; submitted {submitted}; "
        f"steps min {min(steps)} / median {median(steps):g} / max {max(steps)}"
    )
    if grade:
        resolved = sum(1 for t in trajs if t["info"].get("resolved"))
        line += f"; resolved {resolved}/{len(trajs)}"
    typer.echo(line)
    if grade and resolved < len(trajs):
        raise UserError(f"{len(trajs) - resolved} expert trajectories do not resolve their task (see {out})")
