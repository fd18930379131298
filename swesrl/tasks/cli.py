"""`swesrl tasks`: build the bundled task suite and run the scripted expert."""

import typer

app = typer.Typer(no_args_is_help=True, help="Bundled offline tasks and the scripted expert.")
