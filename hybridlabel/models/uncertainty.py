"""Per-case uncertainty for organs and tumour, separately (pure).

`entropy`: mean normalised entropy of the softmax over the voxels predicted as the group.
`disagreement`: 1 - Dice between two predictions of the group (class-aware: a voxel
agrees when both predictions give it the same class): the model against its mirrored
pass, or against the previous round's prediction of the case (FLARE22's winner dropped
cases whose pseudo labels changed between rounds). Empty groups never divide by zero.

`SCORERS` names them; `case_scores` computes the ones a round asks for, where the
probabilities are (in memory, while the case is predicted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from hybridlabel.models.config import LabelMapConfig


def _group_luts(labels: LabelMapConfig) -> dict[str, np.ndarray]:
    organ = np.zeros(256, dtype=bool)
    organ[list(labels.organ_ids)] = True
    tumor = np.zeros(256, dtype=bool)
    tumor[labels.tumor_id] = True
    return {"organ": organ, "tumor": tumor}


def entropy_scores(probs: np.ndarray, pred: np.ndarray, labels: LabelMapConfig) -> dict[str, float]:
    """Mean normalised entropy (0..1) over the voxels predicted as organs / as tumour.

    `probs` is (C, z, y, x). Only the predicted-foreground voxels are gathered, and the
    entropy is accumulated class by class, so besides the per-voxel sum no array bigger
    than one class's foreground values exists at a time. A group with no voxels scores 0.
    """
    n_classes = probs.shape[0]
    fg = pred > 0
    n_fg = int(np.count_nonzero(fg))
    result = {"organ_entropy": 0.0, "tumor_entropy": 0.0}
    if n_fg == 0 or n_classes < 2:
        return result
    h = np.zeros(n_fg, dtype=np.float64)
    for c in range(n_classes):
        p = probs[c][fg].astype(np.float64)
        np.clip(p, 1e-12, 1.0, out=p)
        h -= p * np.log(p)
    h /= np.log(n_classes)
    fg_classes = pred[fg]
    for group, lut in _group_luts(labels).items():
        member = lut[fg_classes]
        if member.any():
            result[f"{group}_entropy"] = float(h[member].mean())
    return result


def disagreement_scores(pred: np.ndarray, other: np.ndarray, labels: LabelMapConfig) -> dict[str, float]:
    """1 - Dice of each group between two predictions: both empty 0, one empty 1."""
    if pred.shape != other.shape:
        raise ValueError(f"predictions differ in shape: {pred.shape} vs {other.shape}")
    result = {}
    for group, lut in _group_luts(labels).items():
        a, b = lut[pred], lut[other]
        na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
        if na + nb == 0:
            result[f"{group}_disagreement"] = 0.0
            continue
        agree = int(np.count_nonzero(a & b & (pred == other)))
        result[f"{group}_disagreement"] = 1.0 - 2.0 * agree / (na + nb)
    return result


@dataclass(frozen=True)
class ScoreInputs:
    """What the scorers see of one predicted case."""

    pred: np.ndarray  # (z, y, x) label map
    probs: np.ndarray  # (C, z, y, x) class probabilities
    other: np.ndarray | None = None  # a second prediction of the case (mirrored pass or previous round)


SCORERS: dict[str, Callable[[ScoreInputs, LabelMapConfig], dict[str, float]]] = {
    "entropy": lambda x, labels: entropy_scores(x.probs, x.pred, labels),
    "disagreement": lambda x, labels: disagreement_scores(x.pred, x.other, labels),
}
NEEDS_SECOND_PREDICTION = frozenset({"disagreement"})


def case_scores(inputs: ScoreInputs, labels: LabelMapConfig, scorers: Iterable[str]) -> dict[str, float]:
    """Every asked-for score of one case: {organ_<scorer>, tumor_<scorer>, ...}."""
    out: dict[str, float] = {}
    for name in sorted(set(scorers)):
        if name not in SCORERS:
            raise ValueError(f"unknown uncertainty scorer {name!r}; scorers are {', '.join(SCORERS)}")
        if name in NEEDS_SECOND_PREDICTION and inputs.other is None:
            raise ValueError(f"scorer {name!r} needs a second prediction of the case")
        out.update(SCORERS[name](inputs, labels))
    return out
