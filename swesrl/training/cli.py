"""`swesrl data`, `swesrl train`, `swesrl export` and `swesrl demo`."""

import typer

data_app = typer.Typer(no_args_is_help=True, help="Build SRL / SFT datasets from expert trajectories.")
train_app = typer.Typer(no_args_is_help=True, help="Train: SFT, SRL (GRPO + dynamic sampling), RLVR.")
export_app = typer.Typer(no_args_is_help=True, help="Export datasets for other engines (verl).")
COMMANDS: dict = {}
