"""The `hybridlabel` command line. Heavy libraries are imported inside the commands so
that `--help` stays instant and nothing happens at import time (nnU-Net's spawn pools
re-import `__main__`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from hybridlabel.cli.app import app, console, err_console, fail, run_guarded  # noqa: F401  (the shared app, console and error line)


@app.command()
def init(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML file to write"),
    preset: Optional[str] = typer.Option(
        None,
        "--preset",
        help="cpu (learns in minutes on a few cores) or gpu (FLARE-scale budgets); default: the design's defaults",
    ),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write a pipeline config, every field commented."""
    from hybridlabel.models.config_yaml import render_config_yaml
    from hybridlabel.models.presets import PRESETS
    from hybridlabel.tasks.files.atomic import atomic_write_text

    if preset is not None and preset not in PRESETS:
        fail(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if config.exists() and not force:
        fail(f"{config} exists; pass --force to overwrite it")
    atomic_write_text(config, render_config_yaml(PRESETS[preset]() if preset else None))
    console.print(f"wrote {config}")


@app.command()
def phantom(
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR", help="output folder (nnU-Net raw layout)"),
    cases: int = typer.Option(24, "--cases", min=5, help="number of cases"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    size: str = typer.Option("small", "--size", help="small (CPU-learnable) or flare (512x512xN)"),
    sites: int = typer.Option(
        1,
        "--sites",
        min=1,
        max=64,
        help="scanning sites: strong cases from site 0, each partial pattern from its "
        "own sites, the last site seen by no labelled case (docs/phantom.md)",
    ),
) -> None:
    """Write a synthetic abdominal CT cohort with FLARE23-style partial labels."""
    from hybridlabel.cli.progress import case_progress
    from hybridlabel.models.phantom import SIZES
    from hybridlabel.tasks.intake.phantom import write_phantom_cohort

    if size not in SIZES:
        fail(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    with case_progress("phantom cases", cases) as advance:
        manifest = write_phantom_cohort(out_dir, cases, seed, size, on_case=lambda _: advance(), sites=sites)
    console.print(f"wrote {cases} cases from {sites} site(s) to {out_dir} (manifest {manifest}; sites in phantom.json)")


@app.command("simulate-partial")
def simulate_partial(
    full_dataset: Path = typer.Argument(
        ..., metavar="FULL_DATASET", help="fully labeled nnU-Net raw folder (imagesTr/, labelsTr/)"
    ),
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR", help="new dataset folder"),
    pattern: str = typer.Option("flare23", "--pattern", help="annotation pattern (flare23)"),
    seed: int = typer.Option(0, "--seed", help="which case gets which role"),
    config: Optional[Path] = typer.Option(None, "--config", help="pipeline config (for the label map)"),
) -> None:
    """Make a fully labeled dataset FLARE23-like: roles, partial labels, complete labels kept aside."""
    from hybridlabel.cli.progress import case_progress
    from hybridlabel.models.config import ConfigError, PipelineConfig, load_config
    from hybridlabel.tasks.intake.audit import DatasetError, discover_cases
    from hybridlabel.tasks.intake.simulate_partial import simulate_partial as simulate

    if pattern != "flare23":
        fail(f"--pattern must be flare23, got {pattern!r}")
    try:
        cfg = load_config(config) if config else PipelineConfig()
        n = len(discover_cases(full_dataset))
        with case_progress("cases", n) as advance:
            manifest = simulate(full_dataset, out_dir, seed, cfg.label_map, on_case=lambda _: advance())
    except (ConfigError, DatasetError) as exc:
        fail(str(exc))
    console.print(f"wrote {out_dir}: partial labels in labelsTr/, complete ones in groundTruth/, manifest {manifest}")


@app.command()
def audit(
    dataset_dir: Path = typer.Argument(..., metavar="DATASET_DIR", help="nnU-Net raw folder (imagesTr/, labelsTr/)"),
    manifest: Optional[Path] = typer.Option(
        None,
        "--manifest",
        help="CSV: case_id,image,label,annotated,role (default: DATASET_DIR/manifest.csv if present)",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="write the audit as Parquet"),
    resampled_dir: Optional[Path] = typer.Option(
        None, "--resampled-dir", help="write labels resampled onto their image grid here"
    ),
    config: Optional[Path] = typer.Option(None, "--config", help="pipeline config (for the label map)"),
    allow_outside: bool = typer.Option(
        False, "--allow-outside", help="accept manifest paths outside the dataset and manifest folders"
    ),
) -> None:
    """Check every case, infer roles, quarantine bad input with a one-line reason."""
    from hybridlabel.cli.progress import case_progress
    from hybridlabel.cli.views import audit_table
    from hybridlabel.models.config import ConfigError, PipelineConfig, load_config
    from hybridlabel.tasks.intake.audit import (
        DatasetError,
        audit_dataset,
        default_manifest,
        discover_cases,
        orientation_note,
    )
    from hybridlabel.tasks.registry import write_audit_parquet

    try:
        cfg = load_config(config) if config else PipelineConfig()
        allow = allow_outside or cfg.allow_paths_outside_dataset
        n = len(discover_cases(dataset_dir, manifest or default_manifest(dataset_dir), allow))
        with case_progress("auditing cases", n) as advance:
            cases = audit_dataset(
                dataset_dir, cfg.label_map, manifest, resampled_dir, on_case=lambda _: advance(), allow_outside=allow
            )
    except (ConfigError, DatasetError) as exc:
        fail(str(exc))
    console.print(audit_table(cases))
    if note := orientation_note(cases):
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if out:
        write_audit_parquet(cases, out)
        console.print(f"wrote {out}")


def _class_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return sorted({int(t) for t in text.replace(" ", ",").split(",") if t})
    except ValueError:
        fail(f"--annotated {text!r} must be class ids separated by commas, e.g. 1,2,14")


def _keep(text: str, option: str) -> int | float:
    try:
        value = float(text) if any(ch in text for ch in ".eE") else int(text)
    except ValueError:
        fail(f"{option} {text!r} must be a count (e.g. 1000) or a fraction (e.g. 0.55)")
    if (isinstance(value, float) and not 0 <= value <= 1) or value < 0:
        fail(f"{option} {text!r}: a fraction must lie in [0, 1], a count must be >= 0")
    return value


@app.command()
def merge(
    pred: Path = typer.Option(..., "--pred", help="the teacher's label map (argmax)"),
    out: Path = typer.Option(..., "--out", help="hybrid label to write (OUT.json gets the record)"),
    label: Optional[Path] = typer.Option(None, "--label", help="partial ground truth; omit for an unlabeled case"),
    probs: Optional[Path] = typer.Option(
        None, "--probs", help="class probabilities (.npz 'probabilities' (C,z,y,x), or .npy)"
    ),
    annotated: Optional[str] = typer.Option(
        None, "--annotated", help="annotated classes, e.g. 1,2,14 (default: classes present in --label)"
    ),
    tumor_selected: bool = typer.Option(
        True, "--tumor-selected/--tumor-not-selected", help="keep pseudo tumour (else the config's tumor_fallback)"
    ),
    config: Optional[Path] = typer.Option(None, "--config", help="pipeline config (merge rules, label map)"),
) -> None:
    """Merge ground truth and a pseudo label into a hybrid label (the design's merge rules)."""
    from hybridlabel.models.config import ConfigError, PipelineConfig, load_config
    from hybridlabel.tasks.files.imageio import ImageReadError
    from hybridlabel.tasks.merge import MergeInputError, merge_case_files

    try:
        cfg = load_config(config) if config else PipelineConfig()
        out_path, json_path, record = merge_case_files(
            pred, out, cfg.merge, cfg.label_map, label, probs, _class_list(annotated), tumor_selected
        )
    except (ConfigError, ImageReadError, MergeInputError, OSError) as exc:
        fail(str(exc))
    console.print(
        f"wrote {out_path} and {json_path}: {len(record['tumors'])} tumour component(s); sources "
        + ", ".join(f"{k}:{v}" for k, v in sorted(record["sources"].items(), key=lambda kv: int(kv[0])) if k != "0"),
        highlight=False,
    )


@app.command()
def select(
    scores: Path = typer.Argument(..., metavar="SCORES", help="Parquet (or CSV) with case_id and score columns"),
    organ_keep: str = typer.Option(
        ..., "--organ-keep", help="count (1000) or fraction (0.55) of cases kept for organs"
    ),
    tumor_keep: str = typer.Option(
        ..., "--tumor-keep", help="count or fraction of the organ-kept cases whose tumour is kept"
    ),
    scorer: str = typer.Option(
        "entropy", "--scorer", help="entropy or disagreement (columns organ_<scorer>, tumor_<scorer>)"
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="decisions file (default: SCORES stem + .selection.parquet)"
    ),
) -> None:
    """Rank unlabeled cases by uncertainty and keep the confident ones."""
    import pandas as pd

    from hybridlabel.cli.views import selection_table
    from hybridlabel.models.selection import select_confident_cases
    from hybridlabel.tasks.files.atomic import atomic_write_parquet

    if not scores.is_file():
        fail(f"scores file {scores} not found")
    try:
        frame = pd.read_csv(scores) if scores.suffix == ".csv" else pd.read_parquet(scores)
        decisions = select_confident_cases(
            frame,
            _keep(organ_keep, "--organ-keep"),
            _keep(tumor_keep, "--tumor-keep"),
            f"organ_{scorer}",
            f"tumor_{scorer}",
        )
    except (ValueError, OSError) as exc:
        fail(f"{scores}: {exc}")
    out = out or scores.with_name(scores.name.split(".")[0] + ".selection.parquet")
    atomic_write_parquet(out, decisions)
    console.print(selection_table(decisions))
    console.print(f"wrote {out}")


@app.command()
def status(
    workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="pipeline work folder"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    metrics: bool = typer.Option(
        False, "--metrics", help="also print rounds x classes: val DSC / NSD and pseudo-label quality"
    ),
) -> None:
    """Show the rounds recorded in a workdir's registry."""
    import hybridlabel
    from hybridlabel.cli.views import metrics_tables, rounds_table
    from hybridlabel.data_registry.store import RegistryError

    try:
        info = hybridlabel.status(workdir)
    except RegistryError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(info, indent=1, default=str))
        return
    console.print(rounds_table(info))
    if metrics:
        tables = metrics_tables(workdir)
        if not tables:
            console.print("no metrics recorded yet (rounds record them when they complete)")
        for table in tables:
            console.print(table)


@app.command()
def prune(
    workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="pipeline work folder"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would go, delete nothing"),
) -> None:
    """Delete what superseded rounds left behind (models trained anew, labels no round
    links to); the registry keeps every row and current rounds' files stay."""
    from hybridlabel.tasks.prune import delete, leftovers
    from hybridlabel.tasks.workdir import WorkdirBusy, WorkdirLock

    if not (workdir / "registry").is_dir():
        fail(f"{workdir} holds no pipeline registry; pass the work folder of a run with --workdir")
    try:
        with WorkdirLock(workdir):  # a running round may be linking to a stored label right now
            items = leftovers(workdir)
            total = sum(i.bytes for i in items)
            by_why: dict[str, list] = {}
            for item in items:
                by_why.setdefault(item.why, []).append(item)
            for why, group in by_why.items():
                console.print(f"{len(group)} x {why}: {sum(i.bytes for i in group) / 1e6:.1f} MB", highlight=False)
            if not items:
                console.print("nothing to prune")
            elif dry_run:
                console.print(f"would free {total / 1e6:.1f} MB (--dry-run: nothing deleted)", highlight=False)
            else:
                console.print(f"freed {delete(items) / 1e6:.1f} MB", highlight=False)
    except WorkdirBusy as exc:
        fail(str(exc))


def _summary(workdir: Path) -> None:
    """After a run: the rounds and the val DSC per class; the rest is one command away."""
    import hybridlabel
    from hybridlabel.cli.views import metrics_tables, rounds_table
    from hybridlabel.tasks.report.data import collect
    from hybridlabel.tasks.report.page import verdict_sentences

    console.print(rounds_table(hybridlabel.status(workdir)))
    tables = metrics_tables(workdir)
    if tables:
        console.print(tables[0])
    console.print(" ".join(verdict_sentences(collect(workdir))), highlight=False)
    console.print(
        f"more: `hybridlabel status --metrics --workdir {workdir}` (NSD, pseudo-label quality)", highlight=False
    )


@app.command()
def run(
    config: Path = typer.Argument(..., metavar="CONFIG", help="pipeline config (YAML)"),
    workdir: Path = typer.Option(..., "--workdir", help="work folder: registry, models, labels"),
    no_export: bool = typer.Option(False, "--no-export", help="stop after the last round"),
    verbose: bool = typer.Option(
        False, "--verbose", help="also show Prefect's and nnU-Net's full log here (it is always in W/logs/)"
    ),
) -> None:
    """Run every round of the config that is not complete yet, then export the model."""
    import hybridlabel

    if not config.is_file():  # before the workdir (and its log folder) is created
        fail(f"config file {config} not found; write one with `hybridlabel init {config}`")
    result = run_guarded(lambda: hybridlabel.run(config, workdir, export=not no_export), workdir, "run", verbose)
    _summary(workdir)
    console.print(f"export: {result['export']}  ·  report: {result['report']}")


@app.command()
def resume(
    round_no: int = typer.Option(..., "--round", help="first round to run again"),
    workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="work folder"),
    config: Optional[Path] = typer.Option(None, "--config", help="config (default: the workdir's config.yaml)"),
    verbose: bool = typer.Option(
        False, "--verbose", help="also show Prefect's and nnU-Net's full log here (it is always in W/logs/)"
    ),
) -> None:
    """Check round N-1, mark rounds >= N superseded (kept), and run from round N."""
    import hybridlabel

    if not (config or workdir / "config.yaml").is_file():  # a mistyped workdir gets no folder
        fail(f"{config or workdir / 'config.yaml'} not found; pass --config CONFIG.yaml")

    def superseded(moved: list[int]) -> None:
        console.print(f"rounds {moved} marked superseded (kept under {workdir / 'registry' / 'superseded'})")

    # once stopped, the rounds it superseded are gone from the active registry: go on with run
    hint = f"go on with `hybridlabel run {workdir / 'config.yaml'} --workdir {workdir}`"
    result = run_guarded(
        lambda: hybridlabel.resume(round_no, workdir, config, on_superseded=superseded),
        workdir,
        "resume",
        verbose,
        hint,
    )
    _summary(workdir)
    console.print(f"export: {result['export']}  ·  report: {result['report']}")


@app.command()
def demo(
    workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="work folder (created)"),
    cases: int = typer.Option(24, "--cases", min=5, help="phantom cases"),
    seed: int = typer.Option(0, "--seed", help="phantom seed"),
    sites: int = typer.Option(4, "--sites", min=1, max=64, help="phantom sites (`hybridlabel phantom --sites`)"),
    verbose: bool = typer.Option(
        False, "--verbose", help="also show Prefect's and nnU-Net's full log here (it is always in W/logs/)"
    ),
) -> None:
    """The main job on the built-in phantom: cohort, teacher, student rounds, export, status."""
    import hybridlabel
    from hybridlabel.cli.demo import prepare_demo

    config_path = prepare_demo(workdir, cases, seed, console, sites)
    result = run_guarded(lambda: hybridlabel.run(config_path, workdir), workdir, "demo", verbose)
    _summary(workdir)
    console.print(
        f"registry: {workdir / 'registry'}  ·  model: {result['export']}  ·  "
        f"config: {config_path}  ·  cohort: {workdir / 'phantom'}  ·  report: {result['report']}"
    )


@app.command()
def deploy(
    config: Optional[Path] = typer.Option(
        None, "--config", help="config the deployments run (default parameter: config.yaml)"
    ),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="workdir the deployments use"),
    prefect_file: Path = typer.Option(None, "--prefect-file", help="deployments file (default: deploy/prefect.yaml)"),
) -> None:
    """Register the pipeline and single-round deployments with the server in PREFECT_API_URL."""
    import os

    from hybridlabel.flows.deploy import PREFECT_FILE, register_deployments

    if not os.environ.get("PREFECT_API_URL"):
        fail(
            "PREFECT_API_URL is not set; start a server (`prefect server start --host 127.0.0.1`) "
            "and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    for name in register_deployments(config, workdir, prefect_file or PREFECT_FILE):
        console.print(f"registered {name}")


import hybridlabel.cli.ablate  # noqa: E402,F401  (registers ablate)
import hybridlabel.cli.predict  # noqa: E402,F401  (registers predict)
import hybridlabel.cli.results  # noqa: E402,F401  (registers evaluate and report)
import hybridlabel.cli.review  # noqa: E402,F401  (registers review and accept)

# `--help` lists the main job first, then the pipeline, then the tools for data and labels
ORDER = [
    "demo",
    "run",
    "resume",
    "status",
    "review",
    "accept",
    "report",
    "predict",
    "evaluate",
    "ablate",
    "deploy",
    "init",
    "phantom",
    "simulate-partial",
    "audit",
    "merge",
    "select",
]
app.registered_commands.sort(
    key=lambda c: (
        ORDER.index(name) if (name := c.name or c.callback.__name__.replace("_", "-")) in ORDER else len(ORDER)
    )
)  # a command not listed goes last

if __name__ == "__main__":  # pragma: no cover
    app()
