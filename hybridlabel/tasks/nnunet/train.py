"""Train a round's model with nnU-Net in a subprocess (GPU memory is released with it,
the `nnUNet_*` environment stays scoped to it), streaming its output to a logger."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from hybridlabel.models.config import TrainingConfig
from hybridlabel.models.nnunet.commands import nnunet_env, train_command
from hybridlabel.models.nnunet.identity import LATEST, ModelIdentity, NnunetDataset, checkpoint_path
from hybridlabel.models.nnunet.plans import BASE_PLANS, plans_name, plans_variant
from hybridlabel.models.nnunet.spec import TrainingSpec
from hybridlabel.tasks.events import emit
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.nnunet.preprocess import run_logged


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def write_plans_variant(preprocessed: Path, training: TrainingConfig) -> str:
    """The round's plans file for its network size and batch size; returns its name."""
    base = json.loads((Path(preprocessed) / f"{BASE_PLANS}.json").read_text())
    name = plans_name(training.network)
    if training.batch_size is not None and training.network == "default":
        name = f"{BASE_PLANS}_bs{training.batch_size}"
    variant = plans_variant(base, training.network, training.batch_size, configuration=training.configuration)
    variant["plans_name"] = name
    atomic_write_text(Path(preprocessed) / f"{name}.json", json.dumps(variant, indent=1))
    return name


def model_identity(dataset: NnunetDataset, training: TrainingConfig) -> ModelIdentity:
    """The identity of the model this budget trains on this dataset (writes its plans variant)."""
    return ModelIdentity.of(dataset, write_plans_variant(dataset.preprocessed, training), training.configuration)


def train_model(
    dataset: NnunetDataset,
    training: TrainingConfig,
    annotated: dict[str, list[int]] | None = None,
    log: Callable[[str], None] = print,
    n_proc: int = 2,
    parent_model: Path | None = None,
    cutmix_pool: Path | None = None,
    hidden_tumor: list | None = None,
) -> Path:
    """Train (or finish training) the round's model; returns its model folder."""
    from hybridlabel.models.nnunet.network import count_parameters

    model = model_identity(dataset, training)
    out = model.folder
    n_params = count_parameters(
        json.loads(model.plans_file.read_text()),
        json.loads((model.preprocessed / "dataset.json").read_text()),
        model.configuration,
    )
    log(
        f"network {training.network} ({model.plans}, {model.configuration}): {n_params:,} parameters; budget "
        f"{training.epochs} epochs x {training.iterations_per_epoch} iterations"
    )
    pretrained = None
    if training.init_from_parent and parent_model is not None:
        pretrained = checkpoint_path(parent_model)
    spec = TrainingSpec(
        training,
        annotated=annotated or {},
        parent_checkpoint=str(pretrained) if pretrained else None,
        cutmix_pool=str(cutmix_pool) if cutmix_pool else None,
        hidden_tumor=hidden_tumor,
    )
    inputs = _training_inputs(model, spec)
    stamp = out / "training_inputs.json"
    if out.exists() and (not stamp.exists() or stamp.read_text() != inputs):
        aside = out.with_name(f"{out.name}.superseded-{time.strftime('%Y%m%dT%H%M%S')}")
        os.rename(out, aside)  # trained on other data or budget: kept, not reused
        log(f"model folder {out} was trained on other inputs; moved to {aside.name}")
    if model.checkpoint().exists():
        log(f"model {out} is already trained on these inputs; reusing it")
        return out
    spec_path = atomic_write_text(
        model.preprocessed / f"training_spec_{model.plans}_{model.configuration}.json", spec.to_json()
    )
    device = resolve_device(training.device)
    env = nnunet_env(
        dataset.root,
        dict(os.environ),
        n_proc=n_proc,
        n_proc_da=0 if device == "cpu" else max(2, n_proc),
        spec_path=spec_path,
    )
    resume = model.checkpoint(LATEST).exists()
    run_logged(train_command(model, device, continue_training=resume), env, _with_epoch_events(log, training))
    if not model.checkpoint().exists():
        raise RuntimeError(f"nnU-Net training ended without {model.checkpoint()}")
    atomic_write_text(stamp, inputs)
    return out


def _with_epoch_events(log: Callable[[str], None], training: TrainingConfig) -> Callable[[str], None]:
    """`log`, plus a progress event per epoch nnU-Net reports: its iterations (its seconds
    under a time budget) and the epoch's training loss."""
    loss = {"last": ""}

    def on_line(line: str) -> None:
        log(line)
        if "train_loss" in line:
            loss["last"] = f"loss {float(line.rsplit(' ', 1)[-1]):.3f}"
        elif "Epoch time:" in line:
            seconds = float(line.split("Epoch time:")[1].split()[0])
            emit(
                "advance",
                stage="train",
                info=loss["last"],
                n=seconds if training.max_train_seconds is not None else training.iterations_per_epoch,
            )

    return on_line


def label_array_sha256(path: Path) -> str:
    """sha256 of a preprocessed label's values and shape: blosc2 files of the same array are
    not byte-identical from one preprocessing run to the next (hashing the file made every
    resume retrain models whose inputs had not changed)."""
    import hashlib

    import blosc2
    import numpy as np

    array = np.ascontiguousarray(blosc2.open(str(path), mode="r")[:])
    digest = hashlib.sha256(f"{array.dtype}|{array.shape}|".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _training_inputs(model: ModelIdentity, spec: TrainingSpec) -> str:
    """What a model depends on: plans, budget, loss, the label set (dataset.json: a round
    that turns the tumour (14) into the ignore label (14) leaves every label array equal
    but changes the classes the network outputs), and every case's preprocessed label."""
    plans = model.plans_file.read_text()
    data = model.preprocessed / json.loads(plans)["configurations"][model.configuration]["data_identifier"]
    labels = {p.name: label_array_sha256(p) for p in sorted(data.glob("*_seg.b2nd"))}
    label_set = json.loads((model.preprocessed / "dataset.json").read_text()).get("labels")
    return json.dumps(
        {"plans": plans, "spec": spec.to_json(), "label_set": label_set, "labels": labels}, sort_keys=True
    )
