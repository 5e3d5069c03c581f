"""Evaluate label files against ground-truth files: read, put the prediction on the
ground truth's grid, call the pure metrics, return records; write tables atomically."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.config import PipelineConfig
from hybridlabel.models.geometry import compare_grids
from hybridlabel.models.metrics import MetricRules, score_case
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import (
    IMAGE_SUFFIXES,
    ImageReadError,
    grid_of,
    image_suffix,
    read_image,
    resample_label_onto,
    spacing_zyx,
    strip_suffix,
)

CSV_COLUMNS = ["case_id", "class_id", "class", "dsc", "nsd", "gt_present"]


class EvaluationInputError(ValueError):
    """Prediction and ground truth cannot be paired or compared; the message says why."""


def metric_rules(config: PipelineConfig) -> MetricRules:
    labels = config.label_map
    classes = {c: n for c, n in labels.labels.items() if c != 0}
    return MetricRules(classes, dict(labels.nsd_tolerance_mm), frozenset(config.evaluation.labeled_slices_only))


def complete_label_files(config: PipelineConfig, case_ids: list[str]) -> dict[str, str]:
    """Case id -> its complete label file, for the cases that have one: in the config's
    `evaluation.complete_labels`, else in `<dataset>/groundTruth` when that exists."""
    folder = Path(config.evaluation.complete_labels or Path(config.dataset) / "groundTruth")
    if not folder.is_dir():
        return {}
    found = _label_files(folder)
    return {c: str(found[c]) for c in case_ids if c in found}


def evaluate_files(pred_path: Path, gt_path: Path, rules: MetricRules, classes: list[int] | None = None) -> list[dict]:
    """Records {class_id, class_name, dsc, nsd} of one prediction against its ground truth."""
    gt_img = read_image(gt_path)
    pred_img = read_image(pred_path)
    match, why = compare_grids(grid_of(gt_img), grid_of(pred_img))
    if match == "incompatible":
        raise EvaluationInputError(f"{Path(pred_path).name} and its ground truth do not share a physical space: {why}")
    if match == "resample":  # same space, another grid: nearest neighbour onto the ground truth's
        pred_img = resample_label_onto(pred_img, gt_img)
    gt = sitk.GetArrayViewFromImage(gt_img)
    pred = sitk.GetArrayViewFromImage(pred_img)
    for what, array in (("ground truth", gt), ("prediction", pred)):
        if not np.issubdtype(array.dtype, np.integer):
            raise EvaluationInputError(
                f"{what} {Path(gt_path if what == 'ground truth' else pred_path).name} is not an integer label map"
            )
    return score_case(
        np.asarray(pred, dtype=np.uint8), np.asarray(gt, dtype=np.uint8), spacing_zyx(gt_img), rules, classes
    )


def _label_files(folder: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and image_suffix(path) and not path.name.startswith("."):
            found[strip_suffix(path)] = path
    return found


def pair_files(pred: Path, gt: Path) -> list[tuple[str, Path | None, Path]]:
    """(case id, prediction or None when missing, ground truth) for two files or two folders."""
    pred, gt = Path(pred), Path(gt)
    for what, path in (("--pred", pred), ("--gt", gt)):
        if not path.exists():
            raise EvaluationInputError(f"{what} {path} does not exist")
    if gt.is_file() != pred.is_file():
        raise EvaluationInputError("give --pred and --gt as two files or as two folders, not one of each")
    if gt.is_file():
        return [(strip_suffix(gt), pred, gt)]
    gts, preds = _label_files(gt), _label_files(pred)
    if not gts:
        raise EvaluationInputError(f"--gt folder {gt} holds no label files ({', '.join(IMAGE_SUFFIXES)})")
    if not set(gts) & set(preds):
        raise EvaluationInputError(
            f"no prediction in {pred} has the name of a ground truth in {gt} "
            f"(e.g. {next(iter(gts))}); name predictions after their case"
        )
    return [(case, preds.get(case), path) for case, path in gts.items()]


@dataclass
class Evaluation:
    records: list[dict]
    problems: dict[str, str]  # case id -> one-line reason it could not be scored


def evaluate_pairs(
    pairs: list[tuple[str, Path | None, Path]], rules: MetricRules, on_case: Callable[[str], None] | None = None
) -> Evaluation:
    """Every pair scored; a missing prediction scores as an empty one (FLARE counts it
    as a failure), an unreadable pair is reported and the rest go on."""
    records, problems = [], {}
    for case_id, pred, gt in pairs:
        try:
            if pred is None:
                problems[case_id] = "no prediction: scored as empty"
                gt_img = read_image(gt)
                gt_arr = np.asarray(sitk.GetArrayViewFromImage(gt_img), dtype=np.uint8)
                rows = score_case(np.zeros_like(gt_arr), gt_arr, spacing_zyx(gt_img), rules)
            else:
                rows = evaluate_files(pred, gt, rules)
            records += [{"case_id": case_id, **r} for r in rows]
        except (EvaluationInputError, ImageReadError) as exc:
            problems[case_id] = str(exc)
        if on_case:
            on_case(case_id)
    return Evaluation(records, problems)


def write_metrics_csv(records: list[dict], out: Path) -> Path:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow(
            [
                r["case_id"],
                r["class_id"],
                r["class_name"],
                f"{r['dsc']:.6f}",
                f"{r['nsd']:.6f}",
                int(bool(r.get("gt_present", True))),
            ]
        )
    return atomic_write_text(Path(out), buf.getvalue())
