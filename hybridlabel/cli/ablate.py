"""`hybridlabel ablate`: teacher-only vs naive vs partial-label losses vs the rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hybridlabel.cli.app import app, console, fail, run_guarded


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"{what} {text!r} must be integers separated by commas, e.g. 1,2")


def _phantom_config(workdir: Path, iterations: int, sites: int) -> Path:
    from hybridlabel.cli.demo import ablation_config
    from hybridlabel.models.config_yaml import render_config_yaml
    from hybridlabel.tasks.files.atomic import atomic_write_text
    from hybridlabel.tasks.intake.phantom import write_phantom_cohort

    cohort = workdir / "phantom"
    if not (cohort / "manifest.csv").exists():
        write_phantom_cohort(cohort, 24, 0, "small", sites=sites)
    return atomic_write_text(
        workdir / "ablation.yaml",
        render_config_yaml(ablation_config(iterations).model_copy(update={"dataset": cohort.resolve()})),
    )


@app.command()
def ablate(
    config: Optional[Path] = typer.Argument(
        None, metavar="CONFIG", help="pipeline config (YAML): dataset, val cases, budgets"
    ),
    workdir: Path = typer.Option(..., "--workdir", help="ablation folder: one workdir per arm and seed"),
    arms: str = typer.Option(
        "teacher,teacher_long,naive,target_adaptive,merge_max,rounds",
        "--arms",
        help=(
            "arms, comma-separated: teacher, teacher_long, naive, target_adaptive, merge_max, rounds, "
            "oracle (needs complete labels), cutmix"
        ),
    ),
    seeds: str = typer.Option("1", "--seeds", help="training seeds, comma-separated"),
    phantom: bool = typer.Option(
        False, "--phantom", help="no CONFIG: write the phantom cohort and its ablation config into WORKDIR"
    ),
    iterations: int = typer.Option(1000, "--iterations", min=1, help="with --phantom: training iterations per model"),
    sites: int = typer.Option(
        4, "--sites", min=1, max=64, help="with --phantom: scanning sites of the cohort (as the demo's)"
    ),
    verbose: bool = typer.Option(
        False, "--verbose", help="also show Prefect's and nnU-Net's full log here (it is always in W/logs/)"
    ),
) -> None:
    """Train and evaluate each arm on the same data, val cases and budget; print and
    record the table (rows: arms and rounds; mean and SD over seeds)."""
    from hybridlabel.cli.views import ablation_rich_table
    from hybridlabel.models.verdict import equal_compute_verdict
    from hybridlabel.tasks.ablation_results import ablation_table, read_ablation

    arm_list = [a.strip() for a in arms.split(",") if a.strip()]
    seed_list = _int_list(seeds, "--seeds")

    def action():
        from hybridlabel.flows.ablation import AblationError, ablation, plan_arms, teacher_arms_ran

        try:  # the arms asked for, or an arm folder that cannot take the teacher's plans
            plan_arms(arm_list, seed_list, bool(teacher_arms_ran(workdir)))
            return ablation(str(config.resolve()), str(workdir.resolve()), arm_list, seed_list)
        except AblationError as exc:
            fail(str(exc))

    if phantom:
        config = _phantom_config(workdir, iterations, sites)
    if config is None or not config.is_file():
        fail(f"config file {config} not found; pass a CONFIG.yaml, or --phantom for the built-in phantom")
    run_guarded(action, workdir, "ablate", verbose)
    rows = read_ablation(workdir)
    if rows is None or rows.empty:
        fail(f"no arm completed; see the log in {workdir / 'logs'}")
    table = ablation_table(rows)
    console.print(ablation_rich_table(table, f"ablation in {workdir} (val cases; mean ± SD over seeds)"))
    if answer := equal_compute_verdict(table):
        console.print(answer, highlight=False)
    console.print(f"rows per arm and seed: {workdir / 'ablation.parquet'}")
