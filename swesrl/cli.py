"""The `swesrl` command line. Each area keeps its commands in its own `cli.py`; this wires them.

Sub-command modules import heavy libraries (torch, transformers, docker) inside the command
functions, so `swesrl --help` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import typer
from rich.console import Console

from swesrl.agent import cli as agent_cli
from swesrl.envs import cli as envs_cli
from swesrl.harness import cli as harness_cli
from swesrl.tasks import cli as tasks_cli
from swesrl.training import cli as training_cli
from swesrl.utils import UserError, choose_omp_wait_policy, progress_bars, setup_logging

app = typer.Typer(
    name="swesrl",
    help="Train software-engineering agents with Supervised Reinforcement Learning (SRL).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    setup_logging(logging.DEBUG if verbose else logging.INFO)


app.add_typer(envs_cli.app, name="sandbox")
app.add_typer(tasks_cli.app, name="tasks")
app.add_typer(training_cli.data_app, name="data")
app.add_typer(training_cli.train_app, name="train")
app.add_typer(training_cli.export_app, name="export")
for _module in (agent_cli, harness_cli, training_cli):
    for _name, _fn in getattr(_module, "COMMANDS", {}).items():
        app.command(_name)(_fn)


@app.command("demo")
def demo(
    out: str = typer.Option(
        "demo-out", "--out", "-o", help="Output folder (a rerun resumes finished stages)."
    ),
    minutes: float = typer.Option(
        15.0, "--minutes", "-m", help="Time budget; budgets scale with it (CI: 2)."
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="Training seed (the task suite is fixed by demo.yaml)."),
    config: list[str] = typer.Option(None, "--config", "-c", help="Overrides: demo YAML files or key=value."),
) -> None:
    """The main job: tasks, expert trajectories, SRL/SFT data, a tiny model, SFT warm-up, SRL, held-out evaluation."""
    import time

    from rich.table import Table

    from swesrl.demo import run_demo
    from swesrl.training.report import LABELS, STAGES

    t0 = time.monotonic()
    with progress_bars() as on_progress:
        report = run_demo(out, minutes, seed, config, on_progress)
    table = Table(title=f"swesrl demo: held-out tasks ({out}/report.md)")
    for col in ("stage", "resolve rate", "unseen repo", "unseen family", "step similarity", "exact actions"):
        table.add_column(col)
    for st in STAGES:
        e = report["evaluations"][st]
        table.add_row(
            LABELS[st],
            f"{e['all']['resolve_rate']:.3f} ({e['all']['resolved']}/{e['all']['tasks']})",
            f"{e['heldout_repo']['resolve_rate']:.3f}",
            f"{e['heldout_family']['resolve_rate']:.3f}",
            f"{e['all']['step_similarity']:.3f}",
            f"{e['all']['exact_actions']:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"wall time {time.monotonic() - t0:.0f}s; report: {out}/report.md, {out}/report.json, {out}/plots/"
    )


def quiet_frameworks() -> None:
    """Console output is ours: no download / weight-loading bars, no framework deprecation notices
    (metrics and logs of every run are in its output folder)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # TRL's dataset preparation
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for category in (FutureWarning, DeprecationWarning):
        for module in ("transformers", "trl", "torch", "accelerate", "datasets", "peft"):
            warnings.filterwarnings("ignore", category=category, module=rf"{module}(\.|$)")
    warnings.filterwarnings("ignore", message=r".*'pin_memory' argument is set as true.*")


def main() -> None:
    choose_omp_wait_policy()
    quiet_frameworks()
    console = Console(stderr=True)
    try:
        app()
    except UserError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
