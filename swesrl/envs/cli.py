"""`swesrl sandbox`: one-off commands in a sandbox and garbage collection of leftovers."""

import typer

app = typer.Typer(no_args_is_help=True, help="Sandboxes: run a command, reap leftovers.")
