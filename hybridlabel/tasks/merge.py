"""Merge one case from files: read G, P (and probabilities), call the pure merge, write
the hybrid label and its JSON record atomically, return the paths."""

from __future__ import annotations

import json
from pathlib import Path

import fastremap
import numpy as np
import SimpleITK as sitk

from hybridlabel.models.config import LabelMapConfig, MergeConfig
from hybridlabel.models.geometry import compare_grids
from hybridlabel.models.merge import merge_case
from hybridlabel.models.pseudo_trust import class_overlap
from hybridlabel.models.uncertainty import entropy_scores
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import (
    array_to_image,
    grid_of,
    read_image,
    resample_label_onto,
    spacing_zyx,
    write_image,
)


class MergeInputError(ValueError):
    """The inputs of a merge cannot be combined; the message says how to fix them."""


def _label_array(image: sitk.Image, what: str) -> np.ndarray:
    array = sitk.GetArrayViewFromImage(image)
    if array.ndim != 3:
        raise MergeInputError(f"{what} is {array.ndim}D; a label map must be 3D")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise MergeInputError(f"{what} holds values outside 0-255; it is not a label map")
        return np.asarray(array, dtype=np.uint8)
    return array


def load_probabilities(path: Path) -> np.ndarray:
    """(C, z, y, x) class probabilities from an .npz (nnU-Net's `probabilities` key) or .npy."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r")
    with np.load(path) as data:
        key = "probabilities" if "probabilities" in data.files else data.files[0]
        return data[key]


def merge_case_files(
    pred_path: Path,
    out_path: Path,
    merge: MergeConfig,
    labels: LabelMapConfig,
    label_path: Path | None = None,
    probs_path: Path | None = None,
    annotated: list[int] | None = None,
    tumor_selected: bool = True,
    withhold: list[int] | None = None,
    confidence_path: Path | None = None,
) -> tuple[Path, Path, dict]:
    """Merge one case's files: the hybrid label at `out_path`, its record beside it
    (`OUT.json`: annotated and withheld classes, sources, tumours, counts, overlap), and
    the record returned. `confidence_path`: the prediction's voxel confidence as the
    prediction step writes it (uint8, round(255 p) of the highest class probability, on
    the prediction's grid), what `merge.min_voxel_confidence` compares with where no
    probabilities are given."""
    pred_img = read_image(pred_path)
    confidence_img = read_image(confidence_path) if confidence_path is not None else None
    if confidence_img is not None and confidence_img.GetSize() != pred_img.GetSize():
        raise MergeInputError(
            f"{confidence_path}: voxel confidence of size {confidence_img.GetSize()} does not match the "
            f"prediction's {pred_img.GetSize()}; predict the case again"
        )
    reference = pred_img
    gt = None
    if label_path is not None:
        reference = read_image(label_path)
        match, why = compare_grids(grid_of(reference), grid_of(pred_img))
        if match == "incompatible":
            raise MergeInputError(f"prediction and label do not share a physical space: {why}")
        if match == "resample":
            pred_img = resample_label_onto(pred_img, reference)  # the output lives on G's grid
            if confidence_img is not None:
                confidence_img = resample_label_onto(confidence_img, reference)
        gt = _label_array(reference, "label")
    pred = _label_array(pred_img, "prediction")
    if annotated is None:
        annotated = [int(c) for c in fastremap.unique(gt) if c] if gt is not None else []
    if withhold and gt is not None:  # held-back classes: as if never annotated
        gt = np.where(np.isin(gt, withhold), 0, gt).astype(np.uint8)
        annotated = [c for c in annotated if c not in set(withhold)]
    probs = load_probabilities(probs_path) if probs_path else None
    if probs is not None and probs.shape[1:] != pred.shape:
        raise MergeInputError(
            f"probabilities have shape {probs.shape[1:]} but the prediction {pred.shape}; "
            "write them on the prediction's grid"
        )
    max_prob = None
    if merge.min_voxel_confidence is not None and probs is not None:
        max_prob = probs.max(axis=0)
    elif merge.min_voxel_confidence is not None and confidence_img is not None:
        max_prob = sitk.GetArrayFromImage(confidence_img).astype(np.float32) / 255.0
    result = merge_case(
        gt,
        annotated,
        pred,
        spacing_zyx(reference),
        merge,
        labels,
        max_prob=max_prob,
        tumor_selected=tumor_selected,
    )
    write_image(array_to_image(result.hybrid, reference), out_path)
    record = {
        "annotated": sorted(int(c) for c in annotated),
        "withheld": sorted(int(c) for c in withhold or []),
        "sources": {str(k): v for k, v in result.sources.items()},
        "tumors": result.tumors,
        "counts": result.counts,
        # how far the parent's prediction agrees with this case's annotations (pseudo_trust)
        "overlap": {str(c): v for c, v in class_overlap(gt, pred, annotated).items()} if gt is not None else {},
    }
    if probs is not None:
        record["scores"] = entropy_scores(probs, pred, labels)
    json_path = Path(str(out_path) + ".json")
    atomic_write_text(json_path, json.dumps(record, indent=1, sort_keys=True))
    return Path(out_path), json_path, record
