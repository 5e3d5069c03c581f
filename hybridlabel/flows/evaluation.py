"""Evaluation step of a round: this round's model on the val cases, and this round's
pseudo labels against whatever ground truth the training cases have.

Only orchestration: predictions and metrics are per-case tasks that return paths and
small records; the result is the round's metrics partition and its mean metrics.
"""

from __future__ import annotations

import pandas as pd

from hybridlabel.flows.fanout import Progress, map_chunks
from hybridlabel.models.config import PipelineConfig
from hybridlabel.models.metric_summary import mean_metrics
from hybridlabel.models.nnunet.identity import checkpoint_path
from hybridlabel.models.round_rules import usable
from hybridlabel.tasks.evaluate import complete_label_files, metric_rules
from hybridlabel.tasks.files.imageio import sha256_path
from hybridlabel.tasks.round_tasks import evaluate_cases_task, predict_cases_task
from hybridlabel.tasks.workdir import Layout


def model_classes(config: PipelineConfig, round_no: int, targets: str | None = None) -> list[int]:
    """Classes the model of a round (or of the given targets) predicts."""
    labels = config.label_map
    targets = targets or config.rounds[round_no].targets
    tumor = [labels.tumor_id] if targets == "organs+tumor" else []
    return list(labels.organ_ids) + tumor


def evaluate_round(
    config: PipelineConfig,
    layout: Layout,
    round_no: int,
    cases: pd.DataFrame,
    model_dir: str,
    pseudo: list[tuple[dict, str]],
    targets: str | None = None,
    complete: list[tuple[dict, str, str]] = (),
) -> tuple[pd.DataFrame, dict]:
    """Metrics rows of the round (val_gt, train_gt, holdout_gt, complete_hybrid, complete_raw)
    and their means by reference. `pseudo` pairs a predicted training case's record with its
    pseudo-label file; `complete` gives a case's hybrid label and its raw prediction, scored
    against the case's complete label where `config.evaluation` has one."""
    rules = metric_rules(config)
    jobs: list[tuple[str, str, str, list[int], dict[int, str]]] = []

    val = [r for r in usable(cases, ["val"]).sort_values("case_id").to_dict("records") if r.get("label_path")]
    if val:
        checkpoint = checkpoint_path(model_dir)
        records = [{k: r.get(k) for k in ("case_id", "image_path", "image_sha256")} for r in val]
        progress = Progress(
            f"round-{round_no:03d}-val", len(records), f"round {round_no}: val cases predicted", "evaluate"
        )
        preds = map_chunks(
            predict_cases_task,
            config.workers,
            progress,
            [r["case_id"] for r in records],
            {"cases": records, "scorers": [("entropy",)] * len(records)},
            model_dir=model_dir,
            out_dir=str(layout.step_dir(round_no, "val")),
            labels=config.label_map,
            device=config.predict_device,
            tta="none",
            model_sha=sha256_path(checkpoint),
            reference_dir=None,
            store=str(layout.store),
            min_tumor_peak=config.min_tumor_peak,
        )
        ours = model_classes(config, round_no, targets)
        for row, pred in zip(val, preds):
            if pred.get("error"):  # logged by the task; the other val cases are scored
                continue
            classes = [c for c in ours if c in set(row.get("annotated_classes") or [])]
            jobs.append((row["case_id"], pred["path"], row["label_path"], classes, {c: "val_gt" for c in classes}))

    parent_classes = set(model_classes(config, round_no - 1)) if round_no else set()
    for case, pred_path in pseudo:
        annotated = set(case.get("annotated_classes") or []) if case.get("label_path") else set()
        held = set(case.get("held_out_classes") or [])
        classes = sorted(c for c in annotated if c in parent_classes)
        if classes:
            jobs.append(
                (
                    case["case_id"],
                    pred_path,
                    case["label_path"],
                    classes,
                    {c: "holdout_gt" if c in held else "train_gt" for c in classes},
                )
            )
    truths = complete_label_files(config, [case["case_id"] for case, _, _ in complete])
    for case, hybrid, raw in complete:
        if gt := truths.get(case["case_id"]):  # the classes the round's labels hold; the parent's raw prediction's
            ours = model_classes(config, round_no, targets)
            jobs.append((case["case_id"], hybrid, gt, ours, {c: "complete_hybrid" for c in ours}))
            jobs.append((case["case_id"], raw, gt, sorted(parent_classes), {c: "complete_raw" for c in parent_classes}))
    if not jobs:
        return pd.DataFrame(columns=["case_id", "round", "class_id", "class_name", "dsc", "nsd", "reference"]), {}

    results = map_chunks(
        evaluate_cases_task, config.workers, None, [j[0] for j in jobs], {"jobs": [j[:4] for j in jobs]}, rules=rules
    )
    rows = []
    for job, records in zip(jobs, results):
        references = job[4]
        rows += [{**r, "round": round_no, "reference": references[r["class_id"]]} for r in records]
    metrics = pd.DataFrame(rows)
    means = (
        {
            ref: mean_metrics(group, config.label_map.organ_ids, config.label_map.tumor_id)
            for ref, group in metrics.groupby("reference")
        }
        if len(metrics)
        else {}
    )
    return metrics, means
