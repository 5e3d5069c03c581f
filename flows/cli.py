"""The `hybridlabel` command line. Heavy libraries are imported inside the commands so
that `--help` stays instant and nothing happens at import time (nnU-Net's spawn pools
re-import `__main__`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def init(config: Path = typer.Argument(..., help="YAML file to write"),
         force: bool = typer.Option(False, "--force", help="overwrite an existing file")) -> None:
    """Write the default pipeline config, every field commented."""
    from models.config_yaml import render_config_yaml
    from tasks.files import atomic_write_text

    if config.exists() and not force:
        fail(f"{config} exists; pass --force to overwrite it")
    atomic_write_text(config, render_config_yaml())
    console.print(f"wrote {config}")


@app.command()
def phantom(out_dir: Path = typer.Argument(..., help="output folder (nnU-Net raw layout)"),
            cases: int = typer.Option(24, "--cases", min=5, help="number of cases"),
            seed: int = typer.Option(0, "--seed", help="random seed"),
            size: str = typer.Option("small", "--size", help="small (CPU-learnable) or flare (512x512xN)")) -> None:
    """Write a synthetic abdominal CT cohort with FLARE23-style partial labels."""
    from flows.progress import case_progress
    from models.phantom import SIZES
    from tasks.phantom import write_phantom_cohort

    if size not in SIZES:
        fail(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    with case_progress("phantom cases", cases) as advance:
        manifest = write_phantom_cohort(out_dir, cases, seed, size, on_case=lambda _: advance())
    console.print(f"wrote {cases} cases to {out_dir} (manifest {manifest})")


@app.command()
def audit(dataset_dir: Path = typer.Argument(..., help="nnU-Net raw folder (imagesTr/, labelsTr/)"),
          manifest: Optional[Path] = typer.Option(None, "--manifest", help="CSV: case_id,image,label,annotated,role (default: DATASET_DIR/manifest.csv if present)"),
          out: Optional[Path] = typer.Option(None, "--out", help="write the audit as Parquet"),
          resampled_dir: Optional[Path] = typer.Option(None, "--resampled-dir", help="write labels resampled onto their image grid here"),
          config: Optional[Path] = typer.Option(None, "--config", help="pipeline config (for the label map)")) -> None:
    """Check every case, infer roles, quarantine bad input with a one-line reason."""
    from flows.progress import case_progress
    from flows.views import audit_table
    from models.config import ConfigError, PipelineConfig, load_config
    from tasks.audit import DatasetError, audit_dataset, discover_cases, default_manifest
    from tasks.registry import write_audit_parquet

    try:
        cfg = load_config(config) if config else PipelineConfig()
        n = len(discover_cases(dataset_dir, manifest or default_manifest(dataset_dir)))
        with case_progress("auditing cases", n) as advance:
            cases = audit_dataset(dataset_dir, cfg.label_map, manifest, resampled_dir, on_case=lambda _: advance())
    except (ConfigError, DatasetError) as exc:
        fail(str(exc))
    console.print(audit_table(cases))
    if out:
        write_audit_parquet(cases, out)
        console.print(f"wrote {out}")


@app.command()
def status(workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="pipeline work folder"),
           as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Show the rounds recorded in a workdir's registry."""
    from flows.views import rounds_table, status_dict

    if not (workdir / "registry").is_dir():
        fail(f"{workdir} holds no registry; run `hybridlabel demo --workdir {workdir}` or `hybridlabel run`")
    info = status_dict(workdir)
    if as_json:
        print(json.dumps(info, indent=1, default=str))
    else:
        console.print(rounds_table(info))


@app.command()
def demo(workdir: Path = typer.Option(Path("hybridlabel-demo"), "--workdir", help="work folder (created)"),
         cases: int = typer.Option(24, "--cases", min=5, help="phantom cases"),
         seed: int = typer.Option(0, "--seed", help="phantom seed")) -> None:
    """Run the main job on the built-in phantom: cohort, intake audit into the registry, status."""
    from flows.demo import run_demo

    run_demo(workdir, cases, seed, console)
    status(workdir=workdir, as_json=False)
    console.print(f"registry: {workdir / 'registry'}  ·  config: {workdir / 'config.yaml'}  ·  "
                  f"cohort: {workdir / 'phantom'}")


if __name__ == "__main__":  # pragma: no cover
    app()
