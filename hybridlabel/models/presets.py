"""Budgets that learn on the machine a user has (pure): `hybridlabel init --preset`.

- `cpu`: a laptop or a 2-core CI box. nnU-Net's `2d` configuration with AdamW and the
  tiny network reaches a useful teacher in minutes where 3d_fullres needs hours; on the
  phantom and on the real-CT cohort it reaches a Dice in about half the time of nnU-Net's
  own 2d network and ends level with it (benchmarks/bench_learning.py, docs/benchmarks.md).
  Budgets are iterations, not seconds: a wall-clock budget trains 2-7x fewer iterations on
  a slower or busier CPU (issue 28: 170 teacher iterations in the old 3 minutes on one
  2-core machine, where the real-CT benchmark needed ~950 to reach 0.5), so every machine
  gets the same models and only the minutes differ; each training's line says its seconds
  per iteration. The rounds train the export's network, so the export is the last model.
- `gpu`: one GPU, FLARE-scale: nnU-Net's 3d_fullres default network and SGD for the
  rounds, its full schedule for the teacher, students started from their teacher, and
  the lightweight network exported.
"""

from __future__ import annotations

from hybridlabel.models.config import ExportConfig, PipelineConfig, RoundSpec, TrainingConfig, default_rounds

# the real-CT learning benchmark's teacher reached liver, spleen and kidneys >= 0.8 after
# ~500 iterations and organ Dice 0.8 after ~1,700 (docs/benchmarks.md: learning speed on real CT)
CPU_ITERATIONS = {"teacher": 1500, "student": 500}
ITERATIONS_PER_EPOCH = 25


def cpu_training(iterations: int, init_from_parent: bool = False, seed: int = 12345) -> TrainingConfig:
    """The cpu preset's budget: 2d, the tiny network, AdamW 1e-3, `iterations` counted (the
    same models on any CPU; only the minutes differ)."""
    return TrainingConfig(
        configuration="2d",
        network="tiny",
        optimizer="adam",
        loss="target_adaptive",
        epochs=max(1, iterations // ITERATIONS_PER_EPOCH),
        iterations_per_epoch=ITERATIONS_PER_EPOCH,
        val_iterations=1,
        device="auto",
        seed=seed,
        init_from_parent=init_from_parent,
    )


def cpu_preset() -> PipelineConfig:
    rounds = [
        spec.model_copy(update={"training": cpu_training(CPU_ITERATIONS[spec.kind], spec.kind != "teacher")})
        for spec in default_rounds()
    ]
    return PipelineConfig(
        rounds=rounds, workers=2, predict_device="auto", export=ExportConfig(network="tiny", fast=True)
    )


def gpu_preset() -> PipelineConfig:
    teacher = TrainingConfig(
        configuration="3d_fullres",
        network="default",
        optimizer="sgd",
        epochs=1000,
        iterations_per_epoch=250,
        device="cuda",
    )
    student = teacher.model_copy(update={"epochs": 500, "init_from_parent": True})
    rounds: list[RoundSpec] = [
        spec.model_copy(update={"training": teacher if spec.kind == "teacher" else student})
        for spec in default_rounds()
    ]
    return PipelineConfig(
        rounds=rounds,
        predict_device="cuda",
        workers=4,
        export=ExportConfig(network="lightweight", training=teacher, fast=True),
    )


PRESETS = {"cpu": cpu_preset, "gpu": gpu_preset}
