"""A reviewer's correction taken as ground truth (pure)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def reviewed_label(
    ground_truth: np.ndarray | None, annotated: Iterable[int], corrected: np.ndarray, checked: Iterable[int]
) -> np.ndarray:
    """The case's ground truth from now on: its earlier ground truth (annotated classes only)
    with every checked class as the reviewer drew it. A checked class the reviewer left out
    is absent (that is a correction too); the reviewer wins where the two overlap, and
    nothing the reviewer did not check is taken from the corrected file."""
    checked = sorted(int(c) for c in checked)
    out = np.zeros(corrected.shape, dtype=np.uint8)
    if ground_truth is not None:
        keep = [int(c) for c in annotated if int(c) not in checked]
        out[np.isin(ground_truth, keep)] = ground_truth[np.isin(ground_truth, keep)]
    drawn = np.isin(corrected, checked)
    out[drawn] = corrected[drawn]
    return out
