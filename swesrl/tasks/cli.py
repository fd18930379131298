"""`swesrl tasks`: build the bundled task suite and run the scripted expert."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import typer

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
    from swesrl.tasks.instances import load_instances

    t0 = time.monotonic()
    path = build_suite(out, n=n, seed=seed, progress=True)
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
