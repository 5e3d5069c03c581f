"""The demo: a phantom cohort and a config with CPU-sized budgets (the README's main job)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from flows.progress import case_progress
from models.config import PipelineConfig, RoundSpec, TrainingConfig
from models.config_yaml import render_config_yaml
from tasks.files import atomic_write_text
from tasks.phantom import write_phantom_cohort


def demo_config() -> PipelineConfig:
    """Teacher -> organ student -> organ+tumour student with selected unlabeled cases.
    Sized for the README's 10 minutes on 2 CPU cores (~2 s per iteration there): 125
    teacher iterations, 50 per student; students start from their teacher's weights."""
    def budget(epochs: int, parent: bool) -> TrainingConfig:
        return TrainingConfig(network="tiny", epochs=epochs, iterations_per_epoch=25, val_iterations=1,
                              loss="naive", device="auto", seed=12345, init_from_parent=parent, optimizer="adam")

    return PipelineConfig(
        name="demo", dataset=Path("phantom"),
        selection={"organ_keep": 0.67, "tumor_keep": 0.5},
        # the rounds already train the tiny network: the export takes the last model as is
        export={"network": "tiny"},
        rounds=[
            RoundSpec(name="teacher", kind="teacher", predict_roles=[], train_roles=["strong"],
                      training=budget(5, False)),
            RoundSpec(name="organ_student", predict_roles=["partial", "tumor_only"],
                      train_roles=["strong", "partial", "tumor_only"], training=budget(2, True)),
            RoundSpec(name="tumor_student", predict_roles=["strong", "partial", "tumor_only", "unlabeled"],
                      train_roles=["strong", "partial", "tumor_only", "unlabeled"], targets="organs+tumor",
                      training=budget(2, True)),
        ])


def ablation_config(iterations: int = 100) -> PipelineConfig:
    """The phantom ablation (`hybridlabel ablate --phantom`): every model gets the same
    budget (`iterations`, Adam, tiny network, trained from scratch so that arms compare),
    teacher + organ student + organ+tumour student with selected unlabeled cases."""
    budget = TrainingConfig(network="tiny", epochs=max(1, iterations // 25), iterations_per_epoch=25,
                            val_iterations=1, loss="naive", device="auto", seed=1, optimizer="adam")
    base = demo_config()
    return base.model_copy(update={
        "name": "ablation",
        "rounds": [r.model_copy(update={"training": budget}) for r in base.rounds]})


def prepare_demo(workdir: Path, n_cases: int, seed: int, console: Console) -> Path:
    """Write the cohort (once) and the demo config; returns the config path."""
    workdir = Path(workdir)
    cohort = workdir / "phantom"
    if not (cohort / "manifest.csv").exists():
        with case_progress("phantom cases", n_cases) as advance:
            write_phantom_cohort(cohort, n_cases, seed, "small", on_case=lambda _: advance())
    config_path = workdir / "demo.yaml"
    if not config_path.exists():
        atomic_write_text(config_path, render_config_yaml(demo_config()))
    console.print(f"demo cohort {cohort}, config {config_path}")
    return config_path
