"""`hybridlabel review` and `hybridlabel accept`: the review queue from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hybridlabel.cli.app import app, console, fail


@app.command()
def review(
    round_no: int = typer.Option(..., "--round", min=1, help="a completed student round"),
    workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="pipeline work folder"),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="queue the K worst cases"),
    fraction: Optional[float] = typer.Option(
        None,
        "--fraction",
        min=0.0,
        max=1.0,
        help="queue this share of the ranked cases (default: the config's review.fraction)",
    ),
    classes: Optional[str] = typer.Option(
        None, "--classes", help="rank only these classes (ids or names, comma-separated)"
    ),
) -> None:
    """Rank a round's pseudo labels by how likely they are wrong; write the reviewer's folder."""
    from rich.table import Table

    from hybridlabel.cli.progress import case_progress
    from hybridlabel.data_registry.store import RegistryError
    from hybridlabel.flows.review import review_round
    from hybridlabel.models.config import ConfigError
    from hybridlabel.tasks.review.accept import ReviewError

    if top is not None and fraction is not None:
        fail("give --top or --fraction, not both")
    try:
        with case_progress("cases weighed", None) as advance:
            result = review_round(
                workdir, round_no, top, fraction, classes.replace(",", " ") if classes else None, on_case=advance
            )
    except (ReviewError, ConfigError, RegistryError) as exc:
        fail(str(exc))
    table = Table(title=f"review queue of round {round_no}: {len(result['queue'])} of {len(result['ranked'])} cases")
    for col in ("rank", "case", "score", "check", "why"):
        table.add_column(col)
    for r in result["queue"]:
        table.add_row(str(r["rank"]), r["case_id"], f"{r['score']:.2f}", ", ".join(r["class_names"]), r["why"])
    console.print(table)
    for finding in result["findings"]:
        console.print(f"round-wide: {finding}", style="yellow", highlight=False)
    console.print(
        f"worklist: {result['worklist']}  ·  corrected labels go to {result['folder'] / 'corrected'}, "
        f"then `hybridlabel accept --round {round_no} --workdir {workdir}`"
    )


@app.command()
def accept(
    round_no: int = typer.Option(..., "--round", min=1, help="the round whose queue was reviewed"),
    workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="pipeline work folder"),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="who reviewed (a sidecar's reviewer wins)"),
) -> None:
    """Take corrected labels back: ground truth for the checked classes from the next round on."""
    from hybridlabel.data_registry.store import RegistryError
    from hybridlabel.flows.review import accept_round
    from hybridlabel.models.config import ConfigError
    from hybridlabel.tasks.review.accept import ReviewError
    from hybridlabel.tasks.workdir import WorkdirBusy

    try:
        result = accept_round(workdir, round_no, reviewer)
    except (ReviewError, ConfigError, RegistryError, WorkdirBusy) as exc:
        fail(str(exc))
    for case_id, why in result["refused"]:
        console.print(f"[red]refused[/] {why}", highlight=False, soft_wrap=True)
    console.print(
        f"accepted {len(result['accepted'])} corrected label(s)"
        + (f", {len(result['unchanged'])} already taken" if result["unchanged"] else "")
        + (f", refused {len(result['refused'])}" if result["refused"] else "")
        + (
            f": ground truth from round {round_no + 1} on (or `hybridlabel resume --round {round_no}`)"
            if result["accepted"]
            else ""
        ),
        highlight=False,
    )
    if result["refused"]:
        raise typer.Exit(1)
