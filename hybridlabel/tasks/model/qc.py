"""The training labels' ranges that `predict` checks its outputs against (read labels,
call the pure statistics of models/label_qc.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import SimpleITK as sitk

from hybridlabel.models.label_qc import label_stats, qc_reference
from hybridlabel.tasks.files.imageio import read_image, spacing_zyx


def training_label_reference(label_paths: Sequence[str | Path], max_cases: int = 200) -> dict[str, dict]:
    """Per class: volume range, most components, cases holding it, over at most `max_cases`
    training labels spread evenly over the list (FLARE-size labels take ~1 s each)."""
    paths = list(label_paths)
    step = max(1, -(-len(paths) // max_cases))
    stats = []
    for path in paths[::step]:
        image = read_image(Path(path))
        stats.append(label_stats(sitk.GetArrayViewFromImage(image), spacing_zyx(image)))
    return qc_reference(stats)
