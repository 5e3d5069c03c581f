"""The training spec a round hands to nnU-Net's training subprocess (pure data).

nnU-Net constructs trainers itself, by class name, so budgets cannot be constructor
arguments; the spec travels as a JSON file named by one environment variable that is
set for the training subprocess only and read when the trainer is constructed. The
budget inside it is the config's own `TrainingConfig`, never copied field by field: a new
training option reaches the trainer by being a field of that schema.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from hybridlabel.models.config import TrainingConfig

SPEC_ENV = "HYBRIDLABEL_TRAINING_SPEC"
TRAINER_NAME = "HybridLabelTrainer"


@dataclass(frozen=True)
class TrainingSpec:
    training: TrainingConfig
    annotated: dict[str, list[int]] = field(default_factory=dict)  # case id -> annotated classes
    final_validation: bool = False  # nnU-Net's own sliding-window validation at the end
    parent_checkpoint: str | None = None  # a student's first weights (models.nnunet.warm_start)
    cutmix_pool: str | None = None  # the round's tumour objects (models.cutmix), when training.cutmix is set
    hidden_tumor: list | None = None  # [tumour id, [host organs]] (models/nnunet/losses.py); None = not hidden

    def to_json(self) -> str:
        return json.dumps(
            {
                "training": self.training.model_dump(mode="json"),
                "annotated": self.annotated,
                "final_validation": self.final_validation,
                "parent_checkpoint": self.parent_checkpoint,
                "cutmix_pool": self.cutmix_pool,
                "hidden_tumor": self.hidden_tumor,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> "TrainingSpec":
        data = json.loads(text)
        return cls(
            TrainingConfig.model_validate(data["training"]),
            data.get("annotated", {}),
            data.get("final_validation", False),
            data.get("parent_checkpoint"),
            data.get("cutmix_pool"),
            data.get("hidden_tumor"),
        )


def spec_from_environment() -> TrainingSpec | None:
    """Called at trainer construction inside the training subprocess, never at import."""
    path = os.environ.get(SPEC_ENV)
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:
        return TrainingSpec.from_json(fh.read())
