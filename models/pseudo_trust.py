"""Which pseudo-labelled classes a student may learn from (pure).

A parent that cannot segment a class (a small organ seen in three strong cases) still
paints its pseudo label, mostly as background; a student trained on those labels as if
they were annotations learns to erase the class, and the rounds fall below their teacher
(measured on the demo: esophagus 0.27 -> 0, gallbladder 0.06 -> 0). The evidence is
already in the round: the parent's prediction of every predicted case against that
case's annotated classes. A class whose pseudo labels score below a Dice threshold there
is left *unannotated* wherever it came from a pseudo label, so a partial-label loss pools
it with background instead of teaching either; the ground truth still teaches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

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


def untrusted_classes(dice: Mapping[int, float], min_dice: float | None) -> list[int]:
    """Classes whose pseudo labels score below `min_dice`. A class with no evidence (no
    predicted case annotates it) is trusted: nothing says otherwise."""
    if min_dice is None:
        return []
    return sorted(int(c) for c, d in dice.items() if d < min_dice)


def loss_annotated(sources: Mapping, untrusted: Iterable[int]) -> list[int]:
    """The classes a student's loss treats as annotated in one merged case: the ground
    truth's, and the pseudo-labelled ones that are trusted (sources: class -> gt | pseudo
    | ignore | none, as the merge records them)."""
    skip = {int(c) for c in untrusted}
    return sorted(int(c) for c, src in sources.items()
                  if int(c) and (src == "gt" or (src == "pseudo" and int(c) not in skip)))
