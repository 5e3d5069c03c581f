"""The training spec a round hands to nnU-Net's training subprocess (pure data).

nnU-Net constructs trainers itself, by class name, so budgets cannot be constructor
arguments; the spec travels as a JSON file named by one environment variable that is
set for the training subprocess only and read when the trainer is constructed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

SPEC_ENV = "HYBRIDLABEL_TRAINING_SPEC"
TRAINER_NAME = "HybridLabelTrainer"


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int
    iterations_per_epoch: int
    val_iterations: int
    seed: int
    loss: str = "naive"  # naive | target_adaptive | merge_max
    annotated: dict[str, list[int]] = field(default_factory=dict)  # case id -> annotated classes
    final_validation: bool = False  # nnU-Net's own sliding-window validation at the end
    optimizer: str = "sgd"  # sgd | adam
    learning_rate: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainingSpec":
        return cls(**json.loads(text))


def spec_from_environment() -> TrainingSpec | None:
    """Called at trainer construction inside the training subprocess, never at import."""
    path = os.environ.get(SPEC_ENV)
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:
        return TrainingSpec.from_json(fh.read())
