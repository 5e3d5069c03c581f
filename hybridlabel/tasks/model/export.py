"""Write a trained model as one self-contained archive: slim weights (no optimiser
state), plans, dataset.json (the label map), the pipeline config, the code version and
a manifest with the sha256 of every member; and the same model as a plain nnU-Net model
folder, for nnU-Net's own predictor without hybridlabel."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path

from hybridlabel.models.archive_manifest import ARCHIVE_FORMAT, MANIFEST
from hybridlabel.models.config import PipelineConfig
from hybridlabel.models.geometry import MODEL_ORIENTATION
from hybridlabel.tasks.files.disk import named_disk_full
from hybridlabel.tasks.registry import code_version


def _preprocessing(plans: dict, configuration: str) -> dict:
    """What inference must do to an image before the network sees it (from the plans)."""
    conf = plans["configurations"][configuration]
    return {
        "target_spacing_zyx": conf["spacing"],
        "transpose_forward": plans["transpose_forward"],
        "normalization_schemes": conf["normalization_schemes"],
        "patch_size": conf["patch_size"],
        "intensity_properties": plans.get("foreground_intensity_properties_per_channel", {}),
    }


def _slim_checkpoint(ckpt: dict, trainer_name: str) -> dict:
    """Weights and what inference needs, as plain types (no optimiser state, no logs)."""
    from hybridlabel.tasks.model.archive import checkpoint_configuration

    return {
        "network_weights": ckpt["network_weights"],
        "init_args": {"configuration": checkpoint_configuration(ckpt)},
        "trainer_name": trainer_name,
        "inference_allowed_mirroring_axes": [int(a) for a in ckpt.get("inference_allowed_mirroring_axes") or ()],
    }


def _weight_bytes(ckpt: dict) -> int:
    return sum(t.numel() * t.element_size() for t in ckpt["network_weights"].values())


def write_nnunet_folder(model_dir: Path, out_folder: Path) -> Path:
    """The model as a plain nnU-Net model folder (dataset.json, plans.json,
    fold_all/checkpoint_final.pth), runnable by `nnUNetv2_predict_from_modelfolder -f all`
    where hybridlabel is not installed. Its checkpoint names nnU-Net's own `nnUNetTrainer`:
    hybridlabel's trainer changes how a model learns, not the network (the plans build it),
    so nnU-Net's trainer class builds the same network. Replaced whole, atomically."""
    import torch

    from hybridlabel.models.nnunet.identity import checkpoint_path
    from hybridlabel.tasks.model.archive import load_weights

    model_dir, out_folder = Path(model_dir), Path(out_folder)
    ckpt = load_weights(checkpoint_path(model_dir), f"model {model_dir}")
    tmp = out_folder.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{out_folder.name}")
    old = out_folder.with_name(f".old-{uuid.uuid4().hex[:8]}-{out_folder.name}")
    try:
        (tmp / "fold_all").mkdir(parents=True)
        for name in ("dataset.json", "plans.json"):
            shutil.copyfile(model_dir / name, tmp / name)
        slim = _slim_checkpoint(ckpt, "nnUNetTrainer")
        with named_disk_full(out_folder, _weight_bytes(slim)):
            torch.save(slim, tmp / "fold_all" / "checkpoint_final.pth")
        if out_folder.exists():
            os.replace(out_folder, old)
        os.replace(tmp, out_folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out_folder


def write_model_archive(
    model_dir: Path,
    out_dir: Path,
    config: PipelineConfig,
    round_no: int,
    network: str,
    val_metrics: dict | None = None,
    source: str = "",
    label_qc: dict | None = None,
) -> tuple[Path, dict]:
    """The model of `model_dir` (trained with `network`) as one archive, atomically;
    `label_qc`: the training labels' ranges that `predict` checks outputs against."""
    import torch

    from hybridlabel.models.nnunet.identity import checkpoint_path
    from hybridlabel.models.nnunet.network import count_parameters

    model_dir = Path(model_dir)
    from hybridlabel.tasks.model.archive import checkpoint_configuration, load_weights

    ckpt = load_weights(checkpoint_path(model_dir), f"model {model_dir}")
    configuration = checkpoint_configuration(ckpt)
    buf = io.BytesIO()
    torch.save(_slim_checkpoint(ckpt, str(ckpt.get("trainer_name", ""))), buf)
    plans = json.loads((model_dir / "plans.json").read_text())
    dataset = json.loads((model_dir / "dataset.json").read_text())
    members = {
        "weights.pth": buf.getvalue(),
        "plans.json": json.dumps(plans, indent=1).encode(),
        "dataset.json": json.dumps(dataset, indent=1).encode(),
        "config.json": config.model_dump_json(indent=1).encode(),
    }
    info = {
        "format": ARCHIVE_FORMAT,
        "code_version": code_version(),
        "round": round_no,
        "source": source,
        "configuration": configuration,
        "network": network,
        "parameters": count_parameters(plans, dataset, configuration),
        "labels": dataset["labels"],
        "fast": config.export.fast,
        "orientation": MODEL_ORIENTATION,
        "tumor_filter": None
        if config.min_tumor_peak is None
        else {"tumor_id": config.label_map.tumor_id, "min_peak": config.min_tumor_peak},
        "preprocessing": _preprocessing(plans, configuration),
        "val_metrics": val_metrics or {},
        "label_qc": label_qc or {},
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{config.name}_round{round_no}.hlmodel.zip"
    tmp = out_dir / f".tmp-{uuid.uuid4().hex[:8]}-{archive.name}"
    try:
        with (
            named_disk_full(archive, sum(map(len, members.values()))),
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        ):
            zf.writestr(MANIFEST, json.dumps(info, indent=1))
            for name, data in members.items():
                zf.writestr(name, data)
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)
    info["size_bytes"] = archive.stat().st_size
    return archive, {
        "parameters": info["parameters"],
        "size_bytes": info["size_bytes"],
        "archive": str(archive),
        "network": info["network"],
    }
