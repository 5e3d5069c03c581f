"""Commands that show results: `evaluate` (metrics of label files) and `report` (HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hybridlabel.cli.app import app, console, err_console, fail


def _config_or_default(config: Path | None):
    from hybridlabel.models.config import ConfigError, PipelineConfig, load_config

    if config is None:
        return PipelineConfig()
    try:
        return load_config(config)
    except ConfigError as exc:
        fail(str(exc))


@app.command()
def evaluate(
    pred: Path = typer.Option(..., "--pred", help="predicted label map, or a folder of them"),
    gt: Path = typer.Option(..., "--gt", help="ground-truth label map, or a folder (files named like the predictions)"),
    out: Optional[Path] = typer.Option(None, "--out", help="per case and class CSV (case_id,class_id,class,dsc,nsd)"),
    config: Optional[Path] = typer.Option(
        None, "--config", help="pipeline config whose label map and rules to use (default: FLARE23)"
    ),
    classes: Optional[str] = typer.Option(
        None,
        "--classes",
        help="classes the model can output, e.g. 1-13 for an organs-only model (default: every class of the label map)",
    ),
) -> None:
    """FLARE23 DSC and NSD per case and class, then the summary table (mean and SD per
    class, FLARE's organ mean, the organ mean over the classes present, tumour). Score
    only the classes the model can output: FLARE's rule gives an absent class 1 and a
    missed one 0, so a tumour class the model lacks would average to a meaningless 0.5."""
    import hybridlabel
    from hybridlabel.cli.progress import case_progress
    from hybridlabel.cli.views import summary_rich_table
    from hybridlabel.tasks.evaluate import EvaluationInputError, metric_rules, pair_files, write_metrics_csv

    wanted = _class_ranges(classes, set(metric_rules(_config_or_default(config)).classes)) if classes else None
    try:
        n = len(pair_files(pred, gt))
        with case_progress("cases evaluated", n) as advance:
            records, table, problems = hybridlabel.evaluate(pred, gt, config, wanted, on_case=lambda _: advance())
    except EvaluationInputError as exc:
        fail(str(exc))
    for case_id, why in problems.items():
        err_console.print(f"[yellow]warning:[/] {case_id}: {why}", highlight=False, soft_wrap=True)
    if not records:
        fail("no case could be scored (see the warnings above)")
    if out:
        write_metrics_csv(records, out)
    cases = len({r["case_id"] for r in records})
    console.print(summary_rich_table(table, f"{cases} case(s): DSC and NSD, mean ± SD"))
    if out:
        console.print(f"wrote {out}")


def _class_ranges(text: str, known: set[int]) -> set[int]:
    """`1-13,14` -> {1, ..., 14}; ids outside the label map are an error."""
    wanted: set[int] = set()
    try:
        for part in text.replace(" ", "").split(","):
            lo, _, hi = part.partition("-")
            wanted |= set(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        fail(f"--classes {text!r} must be ids and ranges, e.g. 1-13 or 1,2,14")
    if unknown := sorted(wanted - known):
        fail(f"--classes {text!r} names {unknown}, not classes of the label map")
    return wanted


@app.command()
def report(
    workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="pipeline work folder"),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file (default: WORKDIR/report.html)"),
    cases: int = typer.Option(3, "--cases", min=0, max=12, help="val cases drawn as axial slices per round"),
) -> None:
    """Write one self-contained HTML report: metrics across rounds, label sources,
    uncertainty and cut-offs, tumours per organ, times, slices, registry summary."""
    from hybridlabel.tasks.report.page import write_report

    if not (workdir / "registry").is_dir() and not (workdir / "ablation.parquet").is_file():
        fail(f"{workdir} holds no registry; run `hybridlabel demo --workdir {workdir}` or `hybridlabel run` first")
    out = out or workdir / "report.html"
    try:
        with console.status("drawing the report"):
            write_report(workdir, out, cases)
    except FileNotFoundError as exc:
        fail(str(exc))
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
