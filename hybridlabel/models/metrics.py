"""FLARE23 metrics per case and class: DSC and NSD, with the challenge's rules.

- both masks empty: DSC = NSD = 1; exactly one empty: 0;
- NSD at the class's tolerance in mm, surface distances honouring the spacing;
- aorta, IVC and esophagus (configurable) are scored only on the axial slices the
  ground truth labels (FLARE's code slices z_min:z_max and so drops the last labelled
  slice; the design says "slices the ground truth labels", so both ends are kept);
- tumour is one binary class.
Each record says whether the class is present in the ground truth (`gt_present`): FLARE's
rule scores an absent class 1 for an empty prediction, so a mean over absent classes
flatters a model that predicts nothing (an all-background prediction scored 0.14 organ
mean on a cohort where few classes are present). Summaries give both means.

Every class is scored inside the union of its two bounding boxes, found for all classes
in one pass over each volume, so a 13-class case costs two passes plus small crops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from hybridlabel.models.surface import surface_dice, surface_distances


@dataclass(frozen=True)
class MetricRules:
    """Classes to score (id -> name), NSD tolerance per class (mm), and the classes
    scored only on the ground truth's labelled slices."""

    classes: dict[int, str]
    tolerances: dict[int, float]
    labeled_slices_only: frozenset[int] = field(default_factory=frozenset)


def _boxes(label: np.ndarray, top: int) -> list:
    return ndimage.find_objects(label, max_label=top)


def _union(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def score_class(gt: np.ndarray, pred: np.ndarray, spacing, tolerance_mm: float) -> tuple[float, float]:
    """DSC and NSD of two boolean masks (already cropped as the rules require)."""
    g, p = int(gt.sum()), int(pred.sum())
    if g == 0 and p == 0:
        return 1.0, 1.0
    if g == 0 or p == 0:
        return 0.0, 0.0
    dsc = 2.0 * int(np.count_nonzero(gt & pred)) / (g + p)
    return dsc, surface_dice(surface_distances(gt, pred, spacing), tolerance_mm)


def score_case(
    pred: np.ndarray, gt: np.ndarray, spacing, rules: MetricRules, classes: list[int] | None = None
) -> list[dict]:
    """Per class of `rules` (or of `classes`): {class_id, class_name, dsc, nsd, gt_present}.
    `pred` and `gt` are (z, y, x) label maps on one grid, `spacing` (z, y, x) mm."""
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction {pred.shape} and ground truth {gt.shape} are not on one grid; "
            "resample the prediction onto the ground truth first"
        )
    wanted = sorted(rules.classes if classes is None else classes)
    top = max(wanted, default=0)
    gt_boxes, pred_boxes = _boxes(gt, top), _boxes(pred, top)
    records = []
    for cls in wanted:
        gt_box = gt_boxes[cls - 1] if cls - 1 < len(gt_boxes) else None
        pred_box = pred_boxes[cls - 1] if cls - 1 < len(pred_boxes) else None
        if cls in rules.labeled_slices_only and gt_box is not None:
            z = gt_box[0]
            pred_box = None if pred_box is None else _clip_z(pred_box, z)
        box = _union(gt_box, pred_box)
        if box is None:
            dsc = nsd = 1.0
        else:
            dsc, nsd = score_class(gt[box] == cls, pred[box] == cls, spacing, rules.tolerances[cls])
        records.append(
            {
                "class_id": cls,
                "class_name": rules.classes.get(cls, str(cls)),
                "dsc": dsc,
                "nsd": nsd,
                "gt_present": gt_box is not None,
            }
        )
    return records


def _clip_z(box: tuple[slice, ...], z: slice) -> tuple[slice, ...] | None:
    start, stop = max(box[0].start, z.start), min(box[0].stop, z.stop)
    if start >= stop:
        return None
    return (slice(start, stop),) + tuple(box[1:])
