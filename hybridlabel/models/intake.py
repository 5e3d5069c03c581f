"""Intake rules of the audit: case ids, intensities, label values, roles (pure).

Each check returns None when the input is fine, or a one-line reason that says what
is wrong and how to fix it; the audit quarantines the case with that reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from hybridlabel.models.labels import ROLES


def check_case_id(case_id: str) -> str | None:
    if not case_id or not case_id.strip():
        return "empty case id; give every case a non-empty id"
    if "/" in case_id or "\\" in case_id or ".." in case_id:
        return f"case id {case_id!r} contains a path separator or '..'; use letters, digits, '-', '_' and '.'"
    if case_id != case_id.strip():
        return f"case id {case_id!r} has leading or trailing spaces; strip them"
    return None


# CT values after the rescale (HU): DICOM stores 16-bit values, so every scanner's image,
# its padding (-1024, -2048, -3024, -32768) and extended-scale metal (to ~30,700 HU)
# included, lies in this range. A value outside it comes from a broken conversion; a
# handful is tolerated (interpolated padding edges), more is not, and any beyond
# HU_ABSURD is refused outright: a few voxels of 1e30 make nnU-Net's intensity
# fingerprint infinite and every normalised image of the data set zero.
HU_RANGE = (-32768.0, 32767.0)
HU_OUTSIDE_TOLERATED = 10
HU_ABSURD = 1e5
# a scan holds at least a few voxels along each axis (a 1x1x2 image crashed prediction)
MIN_AXIS_VOXELS = 4


def check_intensities(array: np.ndarray) -> str | None:
    """The image array must be 3D, finite, not constant and within HU_RANGE."""
    if array.ndim != 3:
        return f"image is {array.ndim}D with shape {array.shape}; a CT must be a 3D volume"
    if array.size == 0:
        return "image has no voxels"
    if min(array.shape) < MIN_AXIS_VOXELS:
        return (
            f"image is {'x'.join(map(str, array.shape[::-1]))} voxels, too small to be a scan (at least "
            f"{MIN_AXIS_VOXELS} along each axis)"
        )
    if np.issubdtype(array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            return f"image has {bad} NaN or infinite voxels; fix the conversion that wrote it"
    lo, hi = array.min(), array.max()
    if lo == hi:
        return f"image is constant ({float(lo):g} everywhere); the file holds no scan"
    return hu_problem(array, float(lo), float(hi))


def hu_problem(array: np.ndarray, lo: float, hi: float) -> str | None:
    low, high = HU_RANGE
    if lo >= low and hi <= high:
        return None
    outside = int(np.count_nonzero((array < low) | (array > high)))
    if outside > HU_OUTSIDE_TOLERATED or max(-lo, hi) > HU_ABSURD:
        return (
            f"image has {outside} voxel(s) outside {low:g}..{high:g} HU (from {lo:g} to {hi:g}); no CT holds "
            "such values: fix the conversion (rescale slope and intercept) that wrote it"
        )
    return None


def check_label_values(values: Iterable[int], label_ids: Iterable[int], ignore_id: int | None = None) -> str | None:
    allowed = set(int(v) for v in label_ids)
    if ignore_id is not None:
        allowed.add(ignore_id)
    bad = sorted(int(v) for v in values if int(v) not in allowed)
    if bad:
        shown = ", ".join(str(v) for v in bad[:8]) + (" ..." if len(bad) > 8 else "")
        return f"label holds values outside the label map: {shown}; map them to label ids {min(allowed)}-{max(allowed)}"
    return None


def fingerprint_problem(properties: Mapping) -> str | None:
    """Why nnU-Net's intensity fingerprint (`foreground_intensity_properties_per_channel`)
    cannot normalise CT, or None: every statistic finite and within HU_ABSURD, std > 0."""
    for channel, stats in sorted(properties.items()):
        values = {k: stats.get(k) for k in ("mean", "std", "min", "max", "percentile_00_5", "percentile_99_5")}
        bad = [
            k for k, v in values.items() if not isinstance(v, (int, float)) or not np.isfinite(v) or abs(v) > HU_ABSURD
        ]
        if bad or not values["std"] > 0:
            shown = ", ".join(f"{k} {values[k]}" for k in (bad or ["std"]))
            return f"intensity fingerprint of channel {channel} is unusable ({shown})"
    return None


def label_range_problem(lo: float, hi: float, label_ids: Iterable[int]) -> str | None:
    """Values outside 0..max id, found from the extremes alone (before anything counts
    voxels per value: a label of 1e12 would ask bincount for terabytes)."""
    top = max(int(v) for v in label_ids)
    if lo < 0:
        return f"label holds negative values ({lo:g}); class ids start at 0"
    if hi > top:
        return f"label holds values outside the label map: {hi:g} (the highest); map them to label ids 0-{top}"
    return None


def voxel_counts(label: np.ndarray) -> dict[int, int]:
    counts = np.bincount(label.ravel().astype(np.int64, copy=False)) if label.size else np.zeros(0, int)
    return {int(c): int(n) for c, n in enumerate(counts) if n}


def parse_annotated(text: object) -> tuple[int, ...] | None:
    """Manifest `annotated` cell: class ids separated by spaces (or commas); empty = None."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    s = str(text).replace(",", " ").strip()
    if not s:
        return None
    try:
        return tuple(sorted({int(tok) for tok in s.split()}))
    except ValueError:
        raise ValueError(f"annotated classes {text!r} must be integers separated by spaces, e.g. '1 14'") from None


def infer_role(
    annotated: tuple[int, ...],
    has_label: bool,
    declared_role: str | None,
    organ_ids: Iterable[int],
    tumor_id: int,
) -> tuple[str, str | None]:
    """The design's roles: (role, quarantine reason or None)."""
    organs = set(organ_ids)
    ann = set(annotated)
    if declared_role:
        if declared_role not in ROLES or declared_role == "quarantined":
            return "quarantined", f"role {declared_role!r} is not one of {', '.join(ROLES[:-1])}"
        if declared_role == "val" and not (has_label and organs <= ann):
            return "quarantined", "role 'val' needs a label with all organs annotated; fix the label or drop the role"
        if declared_role == "unlabeled" or declared_role == "val":
            return declared_role, None
        if not has_label:
            return "quarantined", f"role {declared_role!r} needs a label but the case has none"
        return declared_role, None
    if not has_label or not ann:
        return "unlabeled", None
    if organs <= ann:
        return "strong", None
    if ann == {tumor_id}:
        return "tumor_only", None
    return "partial", None


def resolve_annotated(
    declared: tuple[int, ...] | None, present: Mapping[int, int], label_ids: Iterable[int]
) -> tuple[tuple[int, ...], str | None]:
    """Declared classes win (annotated-but-absent is allowed); else the classes present."""
    ids = set(label_ids) - {0}
    if declared is None:
        return tuple(sorted(c for c in present if c != 0 and c in ids)), None
    unknown = sorted(set(declared) - ids)
    if unknown:
        return tuple(declared), f"annotated classes {unknown} are not in the label map; use ids {min(ids)}-{max(ids)}"
    undeclared = sorted(c for c in present if c != 0 and c not in declared)
    if undeclared:
        return tuple(declared), (
            f"label holds classes {undeclared} that the manifest does not declare annotated; "
            f"add them to 'annotated' or remove them from the label"
        )
    return tuple(declared), None
