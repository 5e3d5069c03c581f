"""Intake audit: find the cases of a dataset, read and check each, record one row per case.

The audit never raises for a bad case: the case is quarantined with a one-line reason
and every other case is kept. Only a missing dataset folder or a malformed manifest
stops it (DatasetError), before any case is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hybridlabel.data_registry.frames import dumps, from_arrow, to_arrow
from hybridlabel.models.config import LabelMapConfig
from hybridlabel.models.geometry import compare_grids, orientation_code, orientation_mix
from hybridlabel.models.intake import (
    check_case_id,
    check_intensities,
    check_label_values,
    infer_role,
    label_range_problem,
    parse_annotated,
    resolve_annotated,
    voxel_counts,
)
from hybridlabel.tasks.files.imageio import (
    ImageHeaderError,
    ImageReadError,
    NonFiniteImageError,
    grid_of,
    image_suffix,
    read_image,
    resample_label_onto,
    sha256_path,
    strip_suffix,
    write_image,
)

MANIFEST_COLUMNS = ("case_id", "image", "label", "annotated", "role")


class DatasetError(ValueError):
    """The dataset folder or its manifest cannot be used at all."""


@dataclass(frozen=True)
class CaseInput:
    case_id: str
    image: Path | None
    label: Path | None
    annotated: tuple[int, ...] | None = None
    role: str | None = None
    duplicate_of: str | None = None  # where the same case id was first seen
    problem: str | None = None  # found before reading: an ambiguous or out-of-bounds file


def default_manifest(dataset_dir: Path) -> Path | None:
    candidate = Path(dataset_dir) / "manifest.csv"
    return candidate if candidate.is_file() else None


def discover_cases(dataset_dir: Path, manifest: Path | None = None, allow_outside: bool = False) -> list[CaseInput]:
    """The cases of a dataset. Manifest paths must lie inside the dataset folder or the
    manifest's folder (symlinks resolved) unless `allow_outside`: a manifest from elsewhere
    must not make the pipeline read, and copy into its outputs, any file on the machine."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"dataset folder {dataset_dir} not found; give an nnU-Net raw folder with imagesTr/")
    if manifest:
        cases = _from_manifest(Path(manifest))
        if not allow_outside:
            roots = (dataset_dir.resolve(), Path(manifest).resolve().parent)
            cases = [_bounded(case, roots) for case in cases]
    else:
        cases = _from_raw_layout(dataset_dir)
    first_seen: dict[str, str] = {}
    marked = []
    for i, case in enumerate(cases):
        where = f"manifest row {i + 2}" if manifest else str(case.image or case.label)
        if case.case_id in first_seen:
            case = CaseInput(**{**case.__dict__, "duplicate_of": first_seen[case.case_id]})
        else:
            first_seen[case.case_id] = where
        marked.append(case)
    return marked


def _bounded(case: CaseInput, roots: tuple[Path, ...]) -> CaseInput:
    for kind, path in (("image", case.image), ("label", case.label)):
        if path is not None and not any(path.resolve().is_relative_to(root) for root in roots):
            return CaseInput(
                **{
                    **case.__dict__,
                    "problem": (
                        f"{kind} {path} lies outside the dataset folder {roots[0]}; move it inside, or allow it with "
                        "`allow_paths_outside_dataset: true` in the config (audit: --allow-outside)"
                    ),
                }
            )
    return case


def _by_stem(paths: list[Path], kind: str) -> tuple[dict[str, Path], dict[str, str]]:
    """Files by case id; ids with two files (`a.mha` and `a.nii.gz`) are ambiguous."""
    found: dict[str, Path] = {}
    ambiguous: dict[str, str] = {}
    for p in paths:
        stem = strip_suffix(p)
        if stem in found:
            ambiguous[stem] = (
                f"two {kind} files for one case ({found[stem].name}, {p.name}); "
                "keep one and move the other out of the folder"
            )
        else:
            found[stem] = p
    return found, ambiguous


def _from_raw_layout(dataset_dir: Path) -> list[CaseInput]:
    images_dir, labels_dir = dataset_dir / "imagesTr", dataset_dir / "labelsTr"
    if not images_dir.is_dir():
        raise DatasetError(f"{dataset_dir} has no imagesTr/ folder; expected the nnU-Net raw layout or a manifest")
    first_channel = []
    for p in sorted(images_dir.iterdir()):
        if p.name.startswith(".") or not image_suffix(p):
            continue
        stem = strip_suffix(p)
        if stem[-5:-4] == "_" and stem[-4:].isdigit() and stem[-4:] != "0000":
            continue  # further channels of a multi-channel case
        first_channel.append(p)
    images, bad_images = _by_stem(first_channel, "image")
    images = {(s[:-5] if s[-5:] == "_0000" else s): p for s, p in images.items()}
    bad_images = {(s[:-5] if s[-5:] == "_0000" else s): why for s, why in bad_images.items()}
    label_files = (
        sorted(p for p in labels_dir.iterdir() if not p.name.startswith(".") and image_suffix(p))
        if labels_dir.is_dir()
        else []
    )
    labels, bad_labels = _by_stem(label_files, "label")
    cases = [
        CaseInput(cid, path, labels.get(cid), problem=bad_images.get(cid) or bad_labels.get(cid))
        for cid, path in images.items()
    ]
    cases += [
        CaseInput(cid, None, lab, problem=bad_labels.get(cid)) for cid, lab in labels.items() if cid not in images
    ]
    return cases


def _from_manifest(manifest: Path) -> list[CaseInput]:
    if not manifest.is_file():
        raise DatasetError(f"manifest {manifest} not found")
    try:
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"manifest {manifest} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in ("case_id", "image") if c not in table.columns]
    if missing:
        raise DatasetError(
            f"manifest {manifest} lacks column(s) {missing}; expected the header {','.join(MANIFEST_COLUMNS)}"
        )
    base = manifest.resolve().parent
    cases = []
    for i, row in enumerate(table.to_dict("records")):
        try:
            annotated = parse_annotated(row.get("annotated", ""))
        except ValueError as exc:
            raise DatasetError(f"manifest {manifest} row {i + 2}: {exc}") from None
        image = row["image"].strip()
        label = str(row.get("label", "") or "").strip()
        cases.append(
            CaseInput(
                case_id=row["case_id"],
                image=(base / image) if image else None,
                label=(base / label) if label else None,
                annotated=annotated,
                role=(str(row.get("role", "") or "").strip() or None),
            )
        )
    return cases


def _row(case: CaseInput) -> dict:
    return {
        "case_id": case.case_id,
        "round": 0,
        "role": "quarantined",
        "annotated_classes": [],
        "image_path": str(case.image) if case.image else None,
        "input_label_path": str(case.label) if case.label else None,
        "label_resampled": False,
        "quarantine_reason": None,
    }


def audit_case(case: CaseInput, label_map: LabelMapConfig, resample_dir: Path | None = None) -> dict:
    """One registry row (round 0) for a case; problems become `quarantine_reason`."""
    row = _row(case)
    reason = _audit_into(row, case, label_map, resample_dir)
    if reason:
        row.update(role="quarantined", quarantine_reason=reason)
    return row


def _audit_into(row: dict, case: CaseInput, label_map: LabelMapConfig, resample_dir: Path | None) -> str | None:
    if case.duplicate_of:
        return f"duplicate case id {case.case_id!r} (first at {case.duplicate_of}); give each case a unique id"
    if reason := check_case_id(case.case_id):
        return reason
    if case.problem:
        return case.problem
    if case.image is None:
        name = case.label.name if case.label else ""
        return f"label {name} has no image; add imagesTr/{case.case_id}_0000 or remove the label"
    try:
        image = read_image(case.image)
    except NonFiniteImageError as exc:
        return str(exc)
    except ImageHeaderError as exc:
        return f"image refused: {exc}"
    except ImageReadError as exc:
        return f"image unreadable: {exc}"
    row.update(
        spacing=list(image.GetSpacing()),
        shape=list(image.GetSize()),
        orientation=orientation_code(image.GetDirection()),
    )
    if reason := check_intensities(sitk.GetArrayViewFromImage(image)):
        return reason
    row["image_sha256"] = sha256_path(case.image)
    present: dict[int, int] = {}
    if case.label is not None:
        try:
            label = read_image(case.label)
        except ImageHeaderError as exc:
            return f"label refused: {exc}"
        except ImageReadError as exc:
            return f"label unreadable: {exc}"
        if label.GetNumberOfComponentsPerPixel() != 1:
            return "label has several components per voxel; write a single-channel label map"
        match, why = compare_grids(grid_of(image), grid_of(label))
        if match == "incompatible":
            return why
        array = sitk.GetArrayViewFromImage(label)
        if array.size and (why := label_range_problem(float(array.min()), float(array.max()), label_map.labels)):
            return why
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.equal(np.mod(array, 1), 0)):
            return "label holds non-integer values; write class ids as integers"
        present = voxel_counts(np.asarray(array, dtype=np.int64))
        if reason := check_label_values(present, label_map.labels):
            return reason
        row.update(input_label_sha256=sha256_path(case.label), label_path=str(case.label))
        if match == "resample":
            resampled = resample_label_onto(sitk.Cast(label, sitk.sitkUInt8), image)
            present = voxel_counts(sitk.GetArrayViewFromImage(resampled))
            row["label_resampled"] = True
            if resample_dir is not None:
                out = write_image(resampled, Path(resample_dir) / f"{case.case_id}.nii.gz")
                row["label_path"] = str(out)
    annotated, why = resolve_annotated(case.annotated, present, label_map.labels)
    row["voxel_counts"] = dumps(present)
    row["annotated_classes"] = list(annotated)
    if why:
        return why
    role, why = infer_role(annotated, case.label is not None, case.role, label_map.organ_ids, label_map.tumor_id)
    row["role"] = role
    return why


def audit_dataset(
    dataset_dir: Path,
    label_map: LabelMapConfig,
    manifest: Path | None = None,
    resample_dir: Path | None = None,
    on_case: Callable[[dict], None] | None = None,
    allow_outside: bool = False,
) -> pd.DataFrame:
    """Audit every case; returns a frame in the registry's `cases` schema (round 0)."""
    manifest = manifest or default_manifest(dataset_dir)
    rows = []
    for case in discover_cases(dataset_dir, manifest, allow_outside):
        row = audit_case(case, label_map, resample_dir)
        rows.append(row)
        if on_case:
            on_case(row)
    return from_arrow(to_arrow(pd.DataFrame(rows), "cases"))


def orientation_note(cases: pd.DataFrame) -> str | None:
    """One line when the usable cases' images come in more than one orientation."""
    usable = cases[cases["role"].ne("quarantined") & cases["orientation"].notna()]
    return orientation_mix(dict(zip(usable["case_id"], usable["orientation"])))


def summarize(cases: pd.DataFrame) -> dict:
    reasons = Counter(r for r in cases["quarantine_reason"] if isinstance(r, str))
    return {
        "cases": int(len(cases)),
        "roles": dict(Counter(cases["role"])),
        "quarantined": int(sum(reasons.values())),
        "resampled": int(cases["label_resampled"].fillna(False).sum()),
    }
