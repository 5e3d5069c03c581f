"""The demo: the main job on the built-in phantom cohort."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from flows.progress import case_progress
from models.config import PipelineConfig, load_config
from models.config_yaml import render_config_yaml
from tasks.audit import audit_dataset
from tasks.files import atomic_write_text
from tasks.phantom import write_phantom_cohort
from tasks.registry import commit_intake


def run_demo(workdir: Path, n_cases: int, seed: int, console: Console) -> None:
    workdir = Path(workdir)
    cohort = workdir / "phantom"
    with case_progress("phantom cases", n_cases) as advance:
        write_phantom_cohort(cohort, n_cases, seed, "small", on_case=lambda _: advance())
    config_path = workdir / "config.yaml"
    if not config_path.exists():
        atomic_write_text(config_path, render_config_yaml(PipelineConfig(dataset=Path("phantom"))))
    config = load_config(config_path)
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    with case_progress("auditing cases", n_cases) as advance:
        cases = audit_dataset(config.dataset, config.label_map, config.manifest,
                              resample_dir=workdir / "intake" / "labels", on_case=lambda _: advance())
    commit_intake(workdir, cases, config, started, time.perf_counter() - t0)
    console.print(f"intake audit of {len(cases)} cases committed as round 0")
