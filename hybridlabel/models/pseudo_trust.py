"""Which pseudo-labelled classes a student may learn from (pure).

A parent that cannot segment a class (a small organ seen in three strong cases) still
paints its pseudo label, mostly as background; a student trained on those labels as if
they were annotations learns to erase the class, and the rounds fall below their teacher
(measured on the demo: esophagus 0.27 -> 0, gallbladder 0.06 -> 0). The evidence is
in the registry, and it must be evidence the parent has not seen: its prediction of the
predicted cases it did *not* train on, against their annotated classes, and for a class
no such case annotates, the parent's own val Dice. (Scoring it on the cases it trained
on flatters it: on the converged phantom ablation the teacher's adrenal pseudo labels
scored 0.81-0.88 on its strong cases and 0.63 on val, and the students trained on them
fell to 0.48 and 0.34.) A class below a Dice threshold there, or without any evidence,
is left *unannotated* wherever it came from a pseudo label, so a partial-label loss pools
it with background instead of teaching either; the ground truth still teaches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from hybridlabel.models.components import foreground_box

Overlap = dict[int, list[int]]  # class -> [intersection, predicted voxels, annotated voxels]


def class_overlap(gt: np.ndarray, pred: np.ndarray, classes: Iterable[int]) -> Overlap:
    """Voxel overlap of `pred` with `gt` for each of `classes` (the annotated ones)."""
    classes = sorted(int(c) for c in classes if c)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth shape {gt.shape} differs from prediction shape {pred.shape}")
    box = foreground_box(gt, pred)
    if box is None or not classes:
        return {c: [0, 0, 0] for c in classes}
    pair = (gt[box].astype(np.uint16) << 8) | pred[box]  # (g, p) as one 16-bit code
    joint = np.bincount(pair.ravel(), minlength=256 * 256).reshape(256, 256)
    return {c: [int(joint[c, c]), int(joint[:, c].sum()), int(joint[c, :].sum())] for c in classes}


def class_dice(overlaps: Iterable[Mapping]) -> dict[int, float]:
    """Dice per class over all cases pooled (voxel sums, so large and small cases weigh by
    size); only classes some case annotates and that appear in a prediction or annotation."""
    sums: dict[int, np.ndarray] = {}
    for overlap in overlaps:
        for c, counts in (overlap or {}).items():
            sums[int(c)] = sums.get(int(c), np.zeros(3, dtype=np.int64)) + np.asarray(counts, dtype=np.int64)
    return {c: round(float(2 * s[0] / (s[1] + s[2])), 4) for c, s in sorted(sums.items()) if s[1] + s[2]}


def val_dice(metrics: pd.DataFrame) -> dict[int, float]:
    """A model's mean Dice per class on its val cases, over the cases whose ground truth
    holds the class (a `metrics` partition of the registry)."""
    if metrics is None or not len(metrics) or "reference" not in metrics:
        return {}
    rows = metrics[metrics["reference"] == "val_gt"]
    if "gt_present" in rows:
        rows = rows[rows["gt_present"].fillna(False).astype(bool)]
    return {int(c): round(float(d), 4) for c, d in rows.groupby("class_id")["dsc"].mean().items()}


def trust_evidence(
    merged: Iterable[Mapping], parent_trained: Iterable[str], parent_val: Mapping[int, float]
) -> dict[int, tuple[float, str]]:
    """class -> (Dice, where it was measured) for the parent's pseudo labels, from evidence
    the parent has not trained on: the merged cases it did not train on (voxels pooled,
    "unseen cases"), and for the classes none of them annotates, its val Dice ("val")."""
    seen = set(parent_trained)
    unseen = class_dice(m.get("overlap") for m in merged if m["case_id"] not in seen)
    evidence = {int(c): (float(d), "val") for c, d in parent_val.items()}
    evidence.update({c: (d, "unseen cases") for c, d in unseen.items()})
    return dict(sorted(evidence.items()))


def untrusted_classes(dice: Mapping[int, float], min_dice: float | None, classes: Iterable[int] = ()) -> list[int]:
    """Of `classes` and the classes with evidence (class -> Dice), those whose pseudo labels
    score below `min_dice` or that have no evidence (nothing unseen vouches for them)."""
    if min_dice is None:
        return []
    dice = {int(c): float(d) for c, d in dice.items()}
    return sorted(c for c in set(dice) | {int(c) for c in classes if c} if dice.get(c, -1.0) < min_dice)


def loss_annotated(sources: Mapping, untrusted: Iterable[int]) -> list[int]:
    """The classes a student's loss treats as annotated in one merged case: the ground
    truth's, and the pseudo-labelled ones that are trusted (sources: class -> gt | pseudo
    | ignore | none, as the merge records them)."""
    skip = {int(c) for c in untrusted}
    return sorted(
        int(c) for c, src in sources.items() if int(c) and (src == "gt" or (src == "pseudo" and int(c) not in skip))
    )
