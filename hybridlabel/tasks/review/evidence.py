"""Read what the review ranking weighs: per case, its hybrid label's classes and contacts,
and its parent's prediction against the case's own ground truth; per cohort, what the
ground-truth labels look like."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.label_qc import label_stats
from hybridlabel.models.review_rank import gt_evidence, review_reference, touching_pairs
from hybridlabel.tasks.files.imageio import read_image, spacing_zyx


def _array(path: Path):
    image = read_image(Path(path))
    return sitk.GetArrayFromImage(image), spacing_zyx(image)


def case_evidence(case: dict, prediction: Path | None, ignore_id: int, predictable: list[int]) -> dict:
    """One pseudo-labelled case: its hybrid label's pseudo classes, their sizes and pieces,
    the class pairs that touch, and where its ground truth is, the parent's conflicts with it
    (on the `predictable` classes only: the parent's model was trained on those)."""
    hybrid, spacing = _array(Path(case["hybrid_label_path"]))
    hybrid[hybrid == ignore_id] = 0
    sources = case["label_sources"] or {}
    pseudo = [int(c) for c, src in sources.items() if src == "pseudo" and int(c) not in (0, ignore_id)]
    conflict, disagreement = {}, None
    annotated = [int(c) for c in case.get("annotated_classes") or [] if int(c) in predictable]
    if prediction is not None and prediction.is_file() and case.get("label_path") and annotated:
        pred, _ = _array(prediction)
        gt, _ = _array(Path(case["label_path"]))
        if gt.shape == pred.shape:
            conflict, disagreement = gt_evidence(pred, gt, annotated)
    return {
        "case_id": case["case_id"],
        "pseudo": pseudo,
        "stats": label_stats(hybrid, spacing),
        "pairs": touching_pairs(hybrid),
        "scores": case.get("scores") or {},
        "conflict": conflict,
        "disagreement": disagreement,
    }


def ground_truth_reference(labelled: list[dict]) -> dict:
    """Volume ranges, pieces and contacts of the cohort's ground-truth labels (each case's
    annotated classes only: an unannotated class is unknown there, not absent)."""
    stats, pairs, annotated = [], [], []
    for case in labelled:
        label, spacing = _array(Path(case["label_path"]))
        covered = [int(c) for c in case["annotated_classes"]]
        keep = label.copy()
        keep[~np.isin(label, covered)] = 0
        stats.append(label_stats(keep, spacing))
        pairs.append(touching_pairs(keep))
        annotated.append(covered)
    return review_reference(stats, pairs, annotated)
