"""Budgets that learn on the machine a user has (pure): `hybridlabel init --preset`.

- `cpu`: a laptop or a 2-core CI box. nnU-Net's `2d` configuration with AdamW and the
  tiny network reaches a useful teacher in minutes where 3d_fullres needs hours; on the
  phantom and on the real-CT cohort it reaches a Dice in about half the time of nnU-Net's
  own 2d network and ends level with it after 15 minutes (benchmarks/bench_learning.py,
  the README's table). Every model gets a wall-clock budget, so a round costs what the
  config says; the rounds train the export's network, so the export is the last model.
- `gpu`: one GPU, FLARE-scale: nnU-Net's 3d_fullres default network and SGD for the
  rounds, its full schedule for the teacher, students started from their teacher, and
  the lightweight network exported.
"""

from __future__ import annotations

from hybridlabel.models.config import ExportConfig, PipelineConfig, RoundSpec, TrainingConfig, default_rounds

CPU_MINUTES_PER_MODEL = {"teacher": 3.0, "student": 2.0}
ITERATIONS_PER_EPOCH = 25


def cpu_training(minutes: float | None = None, init_from_parent: bool = False, seed: int = 12345,
                 iterations: int | None = None) -> TrainingConfig:
    """The cpu preset's budget: 2d, the tiny network, AdamW 1e-3; a time limit of `minutes`,
    or else `iterations` counted (the same models on any CPU; only the minutes differ)."""
    if (minutes is None) == (iterations is None):
        raise ValueError("give the budget in minutes or in iterations, not both")
    epochs = 10_000 if iterations is None else max(1, iterations // ITERATIONS_PER_EPOCH)
    return TrainingConfig(configuration="2d", network="tiny", optimizer="adam", loss="target_adaptive",
                          epochs=epochs, iterations_per_epoch=ITERATIONS_PER_EPOCH, val_iterations=1,
                          device="auto", seed=seed, init_from_parent=init_from_parent,
                          max_train_seconds=None if minutes is None else minutes * 60)


def cpu_preset() -> PipelineConfig:
    rounds = []
    for spec in default_rounds():
        minutes = CPU_MINUTES_PER_MODEL["teacher" if spec.kind == "teacher" else "student"]
        rounds.append(spec.model_copy(update={"training": cpu_training(minutes, spec.kind != "teacher")}))
    return PipelineConfig(rounds=rounds, workers=2, predict_device="auto",
                          export=ExportConfig(network="tiny", fast=True))


def gpu_preset() -> PipelineConfig:
    teacher = TrainingConfig(configuration="3d_fullres", network="default", optimizer="sgd", epochs=1000,
                             iterations_per_epoch=250, device="cuda")
    student = teacher.model_copy(update={"epochs": 500, "init_from_parent": True})
    rounds: list[RoundSpec] = [spec.model_copy(update={"training": teacher if spec.kind == "teacher" else student})
                               for spec in default_rounds()]
    return PipelineConfig(rounds=rounds, predict_device="cuda", workers=4,
                          export=ExportConfig(network="lightweight", training=teacher, fast=True))


PRESETS = {"cpu": cpu_preset, "gpu": gpu_preset}
