"""The Typer app and consoles shared by the command modules."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="hybridlabel: complete labels and a fast model from partially labeled abdominal CT, "
         "by iterative pseudo-labeling (nnU-Net v2 + Prefect).",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """One red line on stderr, then exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
