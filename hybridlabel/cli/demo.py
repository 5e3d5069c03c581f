"""The demo: a phantom cohort and a config with CPU-sized budgets (the README's main job)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from hybridlabel.cli.progress import case_progress
from hybridlabel.models.config import PipelineConfig, RoundSpec, TrainingConfig
from hybridlabel.models.config_yaml import render_config_yaml
from hybridlabel.models.presets import CPU_ITERATIONS, cpu_training
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.intake.phantom import write_phantom_cohort

# FLARE's premise: strong cases from one site, partial patterns from two others, and a
# fourth site that only unlabeled and val cases come from (models/phantom_sites.py)
DEMO_SITES = 4


def demo_config() -> PipelineConfig:
    """Teacher -> organ student -> organ+tumour student with selected unlabeled cases, on
    the cpu preset's network (nnU-Net's 2d configuration, the tiny network, AdamW) with
    iteration budgets that fit the README's 10 minutes on 2 CPU cores; students start from
    their parent's weights."""

    def budget(kind: str) -> TrainingConfig:
        return cpu_training(CPU_ITERATIONS[kind], init_from_parent=kind == "student")

    return PipelineConfig(
        name="demo",
        dataset=Path("phantom"),
        selection={"organ_keep": 0.67, "tumor_keep": 0.5},
        # the rounds already train the export's network: the export takes the last model as is
        export={"network": "tiny"},
        rounds=[
            RoundSpec(
                name="teacher", kind="teacher", predict_roles=[], train_roles=["strong"], training=budget("teacher")
            ),
            # strong cases predicted too: the teacher's pseudo labels are then scored on every class
            RoundSpec(
                name="organ_student",
                predict_roles=["strong", "partial", "tumor_only"],
                train_roles=["strong", "partial", "tumor_only"],
                training=budget("student"),
            ),
            RoundSpec(
                name="tumor_student",
                predict_roles=["strong", "partial", "tumor_only", "unlabeled"],
                train_roles=["strong", "partial", "tumor_only", "unlabeled"],
                targets="organs+tumor",
                training=budget("student"),
            ),
        ],
    )


def ablation_config(iterations: int = 1000) -> PipelineConfig:
    """The phantom ablation (`hybridlabel ablate --phantom`): the demo's rounds, every model
    with the same budget of `iterations` (and the seed 1; `ablate --seeds` sets it per run);
    students start from their parent as the demo's do, so the `teacher_long` arm is the
    control at equal compute."""
    base = demo_config()
    return base.model_copy(
        update={
            "name": "ablation",
            "rounds": [
                r.model_copy(
                    update={
                        "training": cpu_training(
                            iterations=iterations, init_from_parent=r.training.init_from_parent, seed=1
                        )
                    }
                )
                for r in base.rounds
            ],
        }
    )


def prepare_demo(workdir: Path, n_cases: int, seed: int, console: Console, sites: int = DEMO_SITES) -> Path:
    """Write the cohort (once) and the demo config; returns the config path."""
    workdir = Path(workdir)
    cohort = workdir / "phantom"
    if not (cohort / "manifest.csv").exists():
        with case_progress("phantom cases", n_cases) as advance:
            write_phantom_cohort(cohort, n_cases, seed, "small", on_case=lambda _: advance(), sites=sites)
    config_path = workdir / "demo.yaml"
    if not config_path.exists():
        atomic_write_text(config_path, render_config_yaml(demo_config()))
    console.print(f"demo cohort {cohort}, config {config_path}")
    return config_path
