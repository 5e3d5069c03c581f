"""The Typer app and consoles shared by the command modules."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperOption

_option_type = TyperOption.display_type_rich


def _flag_takes_no_value(self, ctx):
    # typer 0.29's help gives a flag a "<bool>" type, as if it took a value
    return None if self.is_flag else _option_type(self, ctx)


TyperOption.display_type_rich = _flag_takes_no_value

app = typer.Typer(
    help="hybridlabel: complete labels and a fast model from partially labeled abdominal CT, "
    "by iterative pseudo-labeling (nnU-Net v2 + Prefect).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """One red line on stderr, then exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run_guarded(action, workdir: Path, command: str = "run", verbose: bool = False, resume_hint: str | None = None):
    """Run a pipeline action under the live display (its full log in `W/logs/`, on the
    terminal too when `verbose`); known failures become one clear line and a non-zero exit.
    Ctrl-C or SIGTERM ends it and every process it started (flows/stopping.py), printing
    `resume_hint` (default: the same command, which goes on where it stopped)."""
    import shlex
    import sys

    from hybridlabel.flows.runner import EnvironmentError_, guard_local_server, prefect_environment
    from hybridlabel.flows.stopping import run_stoppable

    try:
        prefect_environment(workdir)  # before the first Prefect import: it reads settings once
    except EnvironmentError_ as exc:
        fail(str(exc))
    from hybridlabel.cli.live import live_run
    from hybridlabel.data_registry.store import RegistryError
    from hybridlabel.models.config import ConfigError
    from hybridlabel.tasks.files.disk import DiskFullError
    from hybridlabel.tasks.intake.audit import DatasetError
    from hybridlabel.tasks.nnunet.preprocess import NnunetError
    from hybridlabel.tasks.round_inputs import RoundError
    from hybridlabel.tasks.workdir import WorkdirBusy

    hint = resume_hint or f"run the same command again to go on: {shlex.join(['hybridlabel', *sys.argv[1:]])}"
    guard_local_server()  # Prefect's temporary server ends with this process, however it ends
    with live_run(console, workdir, command, verbose) as log_path:
        try:
            result = run_stoppable(action, hint)
        except (
            ConfigError,
            DatasetError,
            RoundError,
            RegistryError,
            WorkdirBusy,
            EnvironmentError_,
            DiskFullError,
            NnunetError,
        ) as exc:
            fail(f"{exc} (full log: {log_path})")
    console.print(f"full log: {log_path}", style="dim", highlight=False)
    return result
