"""Take a reviewer's corrected label back: check it as the intake audit checks a label,
and write the case's ground truth from now on."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.models.geometry import compare_grids
from hybridlabel.models.intake import check_label_values, label_range_problem, voxel_counts
from hybridlabel.models.reviewed_label import reviewed_label
from hybridlabel.tasks.files.imageio import (
    ImageHeaderError,
    ImageReadError,
    array_to_image,
    grid_of,
    read_image,
    resample_label_onto,
    sha256_path,
    write_image,
)


class ReviewError(ValueError):
    """A corrected label, a review folder or a worklist that cannot be taken; the message says why."""


def checked_classes(declared, labels: LabelMapConfig) -> list[int]:
    """The classes a reviewer declared as checked: ids of the label map (names are taken too)."""
    by_name = {name: c for c, name in labels.labels.items()}
    items = declared.split() if isinstance(declared, str) else list(declared or [])
    out = []
    for item in items:
        text = str(item).strip().strip(",")
        c = by_name.get(text, int(text) if text.lstrip("-").isdigit() else None)
        if c is None or c not in labels.labels or c == 0:
            raise ReviewError(
                f"checked class {text!r} is not a class of the label map (ids 1-{max(labels.labels)} or their names)"
            )
        out.append(int(c))
    if not out:
        raise ReviewError("no checked classes declared; list them in the worklist's classes column or the sidecar")
    return sorted(set(out))


def accept_correction(corrected: Path, case: dict, checked: list[int], labels: LabelMapConfig, out_dir: Path) -> dict:
    """Check one corrected label against its case; write the reviewed ground truth. Returns
    {label_path, label_sha256, corrected_sha256}; raises ReviewError with one line."""
    if case.get("role") in ("val", "quarantined") or case.get("quarantine_reason"):
        raise ReviewError(f"case {case['case_id']} is {case.get('role')}: only pseudo-labelled cases are reviewed")
    try:
        label = read_image(corrected)
    except ImageHeaderError as exc:
        raise ReviewError(f"refused: {exc}") from None
    except ImageReadError as exc:
        raise ReviewError(f"unreadable: {exc}") from None
    if label.GetNumberOfComponentsPerPixel() != 1:
        raise ReviewError("has several components per voxel; save a single-channel label map")
    reference = read_image(Path(case["hybrid_label_path"]))
    match, why = compare_grids(grid_of(reference), grid_of(label))
    if match == "incompatible":
        raise ReviewError(why)
    array = sitk.GetArrayViewFromImage(label)
    if array.size and (why := label_range_problem(float(array.min()), float(array.max()), labels.labels)):
        raise ReviewError(why)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.equal(np.mod(array, 1), 0)):
        raise ReviewError("holds non-integer values; save class ids as integers")
    if why := check_label_values(voxel_counts(np.asarray(array, dtype=np.int64)), labels.labels):
        raise ReviewError(why)
    if match == "resample":
        label = resample_label_onto(sitk.Cast(label, sitk.sitkUInt8), reference)
    corrected_array = sitk.GetArrayFromImage(label).astype(np.uint8)
    ground_truth = None
    if case.get("label_path"):
        ground_truth = sitk.GetArrayFromImage(read_image(Path(case["label_path"])))
    combined = reviewed_label(ground_truth, case.get("annotated_classes") or [], corrected_array, checked)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    out = write_image(array_to_image(combined, reference), Path(out_dir) / f"{case['case_id']}-{stamp}.nii.gz")
    return {"label_path": str(out), "label_sha256": sha256_path(out), "corrected_sha256": sha256_path(corrected)}
