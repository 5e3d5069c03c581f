"""A trained model's identity, named once: nnU-Net root, dataset, plans, configuration,
trainer and fold, and from them the folders and checkpoints nnU-Net uses (pure paths)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hybridlabel.models.nnunet.spec import TRAINER_NAME

FOLD = "all"  # every model of the loop trains on all of its cases (no cross-validation)
FINAL = "checkpoint_final.pth"
LATEST = "checkpoint_latest.pth"


def checkpoint_path(model_folder: Path | str, name: str = FINAL) -> Path:
    """A checkpoint of a model folder (what the registry's `model_dir` holds)."""
    return Path(model_folder) / f"fold_{FOLD}" / name


@dataclass(frozen=True)
class NnunetDataset:
    """One nnU-Net dataset under a workdir's nnU-Net root, built once per round and handed
    to every task of it (nnU-Net's `DatasetNNN_name` rule lives here only)."""

    root: Path  # the workdir's nnU-Net root (raw/, preprocessed/, results/)
    id: int
    name: str  # without the DatasetNNN_ prefix

    @property
    def folder_name(self) -> str:
        return f"Dataset{self.id:03d}_{self.name}"

    @property
    def raw(self) -> Path:
        return Path(self.root) / "raw" / self.folder_name

    @property
    def preprocessed(self) -> Path:
        return Path(self.root) / "preprocessed" / self.folder_name


def round_dataset(root: Path, first_id: int, run_name: str, round_no: int) -> NnunetDataset:
    """Round `round_no`'s dataset: ids count up from the config's `nnunet_dataset_id`."""
    return NnunetDataset(Path(root), first_id + round_no, f"{run_name}_r{round_no}")


@dataclass(frozen=True)
class ModelIdentity:
    root: Path  # the workdir's nnU-Net root (raw/, preprocessed/, results/)
    dataset_id: int
    dataset: str  # DatasetNNN_name
    plans: str  # plans identifier (network variant)
    configuration: str  # 2d | 3d_fullres | 3d_lowres
    trainer: str = TRAINER_NAME

    @property
    def preprocessed(self) -> Path:
        return Path(self.root) / "preprocessed" / self.dataset

    @property
    def plans_file(self) -> Path:
        return self.preprocessed / f"{self.plans}.json"

    @property
    def folder(self) -> Path:
        return Path(self.root) / "results" / self.dataset / f"{self.trainer}__{self.plans}__{self.configuration}"

    def checkpoint(self, name: str = FINAL) -> Path:
        return checkpoint_path(self.folder, name)

    @classmethod
    def of(cls, dataset: NnunetDataset, plans: str, configuration: str) -> "ModelIdentity":
        return cls(Path(dataset.root), dataset.id, dataset.folder_name, plans, configuration)
