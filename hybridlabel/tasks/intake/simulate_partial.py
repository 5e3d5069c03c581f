"""`hybridlabel simulate-partial`: a fully labeled dataset made FLARE23-like (roles and
partial labels by `models/partiality.py`), its complete labels kept aside in
`groundTruth/`, so the loop can be measured on real labels."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.models.partiality import assign_roles, partial_label, tumor_as_organ
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import ImageReadError, array_to_image, image_suffix, read_image, write_image
from hybridlabel.tasks.intake.audit import DatasetError, discover_cases
from hybridlabel.tasks.intake.cohort_manifest import manifest_row, write_manifest


def _place(source: Path, target: Path) -> None:
    """The image in the new dataset: a hard link where the file system allows, else a copy
    (never a symlink: the audit refuses paths that resolve outside the dataset)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(Path(source).resolve(), target)
    except OSError:
        shutil.copyfile(Path(source).resolve(), target)


def simulate_partial(
    full: Path, out: Path, seed: int, labels: LabelMapConfig, on_case: Callable[[str], None] | None = None
) -> Path:
    """Write OUT/{imagesTr,labelsTr,groundTruth}, manifest.csv and simulation.json."""
    cases = [c for c in discover_cases(Path(full)) if c.image is not None and c.label is not None]
    if len(cases) < 5:
        raise DatasetError(f"{full} holds {len(cases)} image+label pairs; simulating FLARE23 roles needs at least 5")
    if any(c.image.is_dir() for c in cases):
        raise DatasetError("simulate-partial takes image files (convert DICOM series to NIfTI first)")
    plan = assign_roles(len(cases), organs=labels.organ_ids, tumor_id=labels.tumor_id)
    order = np.random.default_rng(seed).permutation(len(cases))
    out = Path(out)
    rows, record = [], {}
    for i, case in enumerate(cases):
        role, annotated = plan[order[i]]
        suffix = image_suffix(case.image) or ".nii.gz"
        image_rel = f"imagesTr/{case.case_id}_0000{suffix}"
        _place(case.image, out / image_rel)
        try:
            truth = read_image(case.label)
        except ImageReadError as exc:
            raise DatasetError(f"case {case.case_id}: {exc}") from None
        full_label = sitk.GetArrayFromImage(truth).astype(np.uint8)
        write_image(truth, out / "groundTruth" / f"{case.case_id}.nii.gz")
        label_rel = ""
        if annotated is not None:
            organs = tumor_as_organ(full_label, labels.tumor_id)
            label_rel = f"labelsTr/{case.case_id}.nii.gz"
            write_image(
                array_to_image(partial_label(full_label, organs, annotated, labels.tumor_id), truth), out / label_rel
            )
        rows.append(manifest_row(case.case_id, image_rel, label_rel, role, annotated))
        record[case.case_id] = {"role": role, "annotated": list(annotated or [])}
        if on_case:
            on_case(case.case_id)
    manifest = write_manifest(out / "manifest.csv", rows)
    atomic_write_text(
        out / "simulation.json",
        json.dumps(
            {"source": str(Path(full).resolve()), "seed": seed, "pattern": "flare23", "cases": record}, indent=1
        ),
    )
    return manifest
