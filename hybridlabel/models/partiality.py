"""FLARE23-style partial annotation, simulated on complete labels (pure): who gets which
role, and the label an annotator covering only some classes would have drawn. Used by the
phantom cohort and by `hybridlabel simulate-partial` on a user's fully labeled data."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# annotation patterns of partially labeled cases (FLARE23: tumour-only dominates)
FLARE23_PATTERNS: tuple[tuple[int, ...], ...] = (
    (14,),
    (1, 14),
    (2, 13, 14),
    (14,),
    (4, 14),
    (14,),
)


def assign_roles(
    n_cases: int,
    patterns: tuple[tuple[int, ...], ...] = FLARE23_PATTERNS,
    organs: tuple[int, ...] = tuple(range(1, 14)),
    tumor_id: int = 14,
) -> list[tuple[str, tuple[int, ...] | None]]:
    """Intended (role, annotated classes) per case index; None = no label at all.
    12 % val (complete), 12 % strong (organs), 25 % unlabeled, the rest partial."""
    if n_cases < 5:
        raise ValueError(f"a cohort needs at least 5 cases (val, 2 strong, partial, unlabeled), got {n_cases}")
    n_val = max(1, round(0.12 * n_cases))
    n_strong = max(2, round(0.12 * n_cases))
    n_unlabeled = max(1, round(0.25 * n_cases))
    n_partial = n_cases - n_val - n_strong - n_unlabeled
    plan: list[tuple[str, tuple[int, ...] | None]] = []
    plan += [("val", organs + (tumor_id,))] * n_val
    plan += [("strong", organs)] * n_strong
    for i in range(n_partial):
        pattern = patterns[i % len(patterns)]
        plan.append(("tumor_only" if pattern == (tumor_id,) else "partial", pattern))
    plan += [("unlabeled", None)] * n_unlabeled
    return plan


def tumor_as_organ(label: np.ndarray, tumor_id: int) -> np.ndarray:
    """The label with every tumour voxel given the nearest organ's id: what an annotator
    who draws organs but not tumours (FLARE22 style) would have drawn."""
    tumor = label == tumor_id
    if not tumor.any():
        return label.copy()
    organ = (label > 0) & ~tumor
    if not organ.any():
        return np.where(tumor, 0, label).astype(label.dtype)
    _, nearest = ndimage.distance_transform_edt(~organ, return_indices=True)
    out = label.copy()
    out[tumor] = label[tuple(axis[tumor] for axis in nearest)]
    return out


def partial_label(
    label: np.ndarray, organ_label: np.ndarray, annotated: tuple[int, ...], tumor_id: int = 14
) -> np.ndarray:
    """The label an annotator covering only `annotated` would have drawn (`organ_label`:
    the same with tumours drawn as their organ, used when the tumour is not annotated)."""
    source = label if tumor_id in annotated else organ_label
    keep = np.zeros(max(256, int(source.max()) + 1), dtype=bool)
    keep[list(annotated)] = True
    return np.where(keep[source], source, 0).astype(np.uint8)
