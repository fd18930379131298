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

from swesrl import demo as demo_module
from swesrl.agent import cli as agent_cli
from swesrl.envs import cli as envs_cli
from swesrl.harness import cli as harness_cli
from swesrl.tasks import cli as tasks_cli
from swesrl.training import cli as training_cli
from swesrl.utils import UserError, choose_omp_wait_policy, setup_logging

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
app.command("demo")(demo_module.demo)


def quiet_frameworks() -> None:
    """Console output is ours: no download / weight-loading bars, no framework deprecation notices
    (metrics and logs of every run are in its output folder)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
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
