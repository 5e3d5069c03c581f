"""One Prefect flow per round kind: the teacher (round 0) and a student round.

Flows only orchestrate: every step is a task that takes and returns paths and small
records. A round ends by committing its registry partitions; only then is it complete.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from prefect import flow, unmapped
from prefect.context import FlowRunContext

from data_registry.frames import dumps
from data_registry.ops import apply_updates, next_round_cases, usable
from data_registry.store import Registry
from flows.evaluation import evaluate_round
from flows.dashboard import Progress, publish_round, round_summary, wait_all as _wait
from models.config import PipelineConfig, load_config
from models.holdout import held_out_classes
from models.nnunet.identity import checkpoint_path
from models.pseudo_trust import class_dice, loss_annotated, untrusted_classes
from models.selection import select_confident_cases
from tasks.audit import audit_dataset, summarize
from tasks.imageio import sha256_path
from tasks.registry import code_version, config_record
from tasks.round_tasks import build_dataset_task, merge_case_task, predict_case_task, train_task
from tasks.workdir import Layout


class RoundError(RuntimeError):
    """A round cannot start: its parent is missing or incomplete, or its input is gone."""


def _flow_run_id() -> str | None:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def _dataset(config: PipelineConfig, round_no: int) -> tuple[int, str]:
    dataset_id = config.nnunet_dataset_id + round_no
    return dataset_id, f"Dataset{dataset_id:03d}_{config.name}_r{round_no}"


def _round_row(config: PipelineConfig, round_no: int, kind: str, started: datetime, **fields) -> dict:
    return {"name": config.rounds[round_no].name, "kind": kind, "parent_round": round_no - 1 if round_no else None,
            **config_record(config), "code_version": code_version(), "flow_run_id": _flow_run_id(),
            "started_at": started, **fields}


@flow(name="teacher-round", flow_run_name="round-0-teacher")
def teacher_round(config_path: str, workdir: str) -> dict:
    """Round 0: intake audit, then the teacher trained on the strong cases."""
    config, layout, reg = load_config(Path(config_path)), Layout(Path(workdir)), Registry(Path(workdir))
    spec, started, stages = config.rounds[0], datetime.now(timezone.utc), {}
    reg.set_round_status(0, "running", **_round_row(config, 0, "teacher", started))
    t = time.perf_counter()
    cases = audit_dataset(config.dataset, config.label_map, config.manifest,
                          resample_dir=layout.workdir / "intake" / "labels",
                          allow_outside=config.allow_paths_outside_dataset)
    stages["audit"] = time.perf_counter() - t
    train = [{"case_id": r["case_id"], "image_path": r["image_path"], "train_label": r["label_path"]}
             for r in usable(cases, spec.train_roles).to_dict("records") if r.get("label_path")]
    if not train:
        raise RoundError(f"round 0 has no {'/'.join(spec.train_roles)} cases to train the teacher on; "
                         f"check the dataset's labels and manifest ({summarize(cases)['roles']})")
    # partial-label losses need each case's annotated classes (the ablation's loss arms)
    annotated = ({r["case_id"]: [int(c) for c in r.get("annotated_classes") or []]
                  for r in usable(cases, spec.train_roles).to_dict("records")}
                 if spec.training.loss != "naive" else None)
    model_dir = _train(config, layout, 0, train, with_ignore=False, stages=stages, annotated=annotated)
    trained = {c["case_id"] for c in train}
    cases["trained"] = cases["case_id"].isin(trained)
    cases["held_out_classes"] = _held_out(config, cases)
    t = time.perf_counter()
    metrics, means = evaluate_round(config, layout, 0, cases, model_dir, [])
    stages["evaluate"] = time.perf_counter() - t
    row = _round_row(config, 0, "teacher", started, status="completed", model_dir=model_dir,
                     stage_seconds=dumps(stages), counts=dumps({**summarize(cases), "trained": len(trained)}),
                     mean_metrics=dumps(means), finished_at=datetime.now(timezone.utc))
    reg.commit_round(0, cases, row, metrics=metrics)
    publish_round(0, round_summary(0, spec.name, cases, stages, config.label_map.labels, None, [], metrics),
                  None, metrics)
    return {"round": 0, "model_dir": model_dir}


def _held_out(config: PipelineConfig, cases: pd.DataFrame) -> list:
    """Per case, the annotated classes held back for unbiased pseudo-label scoring
    (partial cases only; fixed for the whole pipeline)."""
    ev = config.evaluation
    return [held_out_classes(r["case_id"], r.get("annotated_classes"), ev.holdout_fraction, ev.holdout_seed)
            if r["role"] in ("partial", "tumor_only") else [] for r in cases.to_dict("records")]


def _train(config: PipelineConfig, layout: Layout, round_no: int, train: list[dict], with_ignore: bool,
           stages: dict, annotated: dict | None = None, parent_model: str | None = None) -> str:
    spec = config.rounds[round_no]
    dataset_id, dataset = _dataset(config, round_no)
    t = time.perf_counter()
    build_dataset_task(str(layout.nnunet), dataset_id, dataset.split("_", 1)[1], train, config.label_map,
                       with_ignore, spec.targets == "organs+tumor",
                       None if round_no == 0 else config.nnunet_dataset_id, spec.training.configuration)
    stages["preprocess"] = time.perf_counter() - t
    t = time.perf_counter()
    model_dir = train_task(str(layout.nnunet), dataset_id, dataset, spec.training, annotated, parent_model)
    stages["train"] = time.perf_counter() - t
    return model_dir


def _case_record(row: dict) -> dict:
    keep = ("case_id", "role", "image_path", "image_sha256", "label_path", "input_label_sha256", "annotated_classes",
            "held_out_classes")
    return {k: row.get(k) for k in keep}


@flow(name="student-round", flow_run_name="round-{round_no}-student")
def student_round(config_path: str, workdir: str, round_no: int) -> dict:
    """Round r >= 1: the parent predicts, labels are merged, unlabeled cases selected,
    and the student trains on the result."""
    config, layout, reg = load_config(Path(config_path)), Layout(Path(workdir)), Registry(Path(workdir))
    spec, started, stages = config.rounds[round_no], datetime.now(timezone.utc), {}
    parent = reg.round_row(round_no - 1)
    if not reg.is_complete(round_no - 1) or not parent or not parent.get("model_dir"):
        raise RoundError(f"round {round_no} needs round {round_no - 1} completed with a model; "
                         f"run `hybridlabel resume --round {round_no - 1}` first")
    model_dir = parent["model_dir"]
    checkpoint = checkpoint_path(model_dir)
    if not checkpoint.exists():
        raise RoundError(f"round {round_no - 1}'s model {checkpoint} is missing; resume from round {round_no - 1}")
    reg.set_round_status(round_no, "running", **_round_row(config, round_no, "student", started))
    cases = next_round_cases(reg.read("cases", round_no - 1), round_no)
    todo = [_case_record(r) for r in usable(cases, spec.predict_roles).sort_values("case_id").to_dict("records")]

    t = time.perf_counter()
    progress = Progress(f"round-{round_no:03d}-predict", len(todo), f"round {round_no}: pseudo labels predicted")
    preds = _wait(predict_case_task.map(unmapped(model_dir), todo, unmapped(str(layout.step_dir(round_no, "predict"))),
                                        unmapped(config.label_map), unmapped(config.predict_device),
                                        unmapped(spec.tta), unmapped(sha256_path(checkpoint))), progress)
    stages["predict"] = time.perf_counter() - t
    by_case = {p["case_id"]: p for p in preds}

    selection = _select(config, todo, by_case)
    decisions = dict(zip(selection["case_id"], selection["decision"])) if len(selection) else {}
    t = time.perf_counter()
    selected = [c["role"] != "unlabeled" or decisions.get(c["case_id"]) == "tumor_kept" for c in todo]
    merged = _wait(merge_case_task.map(todo, [by_case[c["case_id"]] for c in todo],
                                       unmapped(str(layout.step_dir(round_no, "merge"))), unmapped(config),
                                       selected, unmapped(spec.targets)))
    stages["merge"] = time.perf_counter() - t
    merged_by_case = {m["case_id"]: m for m in merged}

    pseudo_dice = class_dice(m["overlap"] for m in merged)
    untrusted = untrusted_classes(pseudo_dice, config.merge.min_pseudo_dice)
    train, annotated = [], {}
    for row in usable(cases, spec.train_roles).sort_values("case_id").to_dict("records"):
        m = merged_by_case.get(row["case_id"])
        if m and not (row["role"] == "unlabeled" and decisions.get(row["case_id"]) == "sits_out"):
            train.append({"case_id": row["case_id"], "image_path": row["image_path"], "train_label": m["train_label"]})
            annotated[row["case_id"]] = loss_annotated(m["sources"], untrusted)
        elif not m and row["role"] == "strong" and row.get("label_path"):
            train.append({"case_id": row["case_id"], "image_path": row["image_path"], "train_label": row["label_path"]})
            annotated[row["case_id"]] = [int(c) for c in row.get("annotated_classes") or []]
    with_ignore = any(m["uses_ignore"] or (spec.targets == "organs" and str(config.label_map.tumor_id) in m["counts"])
                      for m in merged)
    # only a partial-label loss can leave a class unannotated; the naive loss trains on the labels as they are
    partial_loss = spec.training.loss != "naive"
    new_model = _train(config, layout, round_no, train, with_ignore, stages,
                       annotated=annotated if partial_loss else None, parent_model=model_dir)

    updates = {}
    for c in todo:
        p, m = by_case[c["case_id"]], merged_by_case[c["case_id"]]
        updates[c["case_id"]] = {"hybrid_label_path": m["path"], "hybrid_label_sha256": m["sha256"],
                                 "label_sources": dumps(m["sources"]), "tumors": dumps(m["tumors"]),
                                 "scores": dumps(p["scores"])}
    for r in selection.to_dict("records"):
        updates[r["case_id"]].update(selection=r["decision"], selection_reason=r["reason"])
    for c in train:
        updates.setdefault(c["case_id"], {})["trained"] = True
    cases = apply_updates(cases, updates)
    t = time.perf_counter()
    metrics, means = evaluate_round(config, layout, round_no, cases, new_model,
                                    [(c, by_case[c["case_id"]]["path"]) for c in todo])
    stages["evaluate"] = time.perf_counter() - t
    tumors = [t for m in merged for t in m["tumors"] if t.get("kept", True)]
    counts = {**summarize(cases), "predicted": len(todo), "trained": len(train),
              "pseudo_dice": {str(c): d for c, d in pseudo_dice.items()},
              "untrusted_classes": untrusted if partial_loss else [],
              "selection": {k: int(v) for k, v in selection["decision"].value_counts().items()} if len(selection) else {}}
    row = _round_row(config, round_no, "student", started, status="completed", model_dir=new_model,
                     stage_seconds=dumps(stages), counts=dumps(counts), mean_metrics=dumps(means),
                     finished_at=datetime.now(timezone.utc))
    reg.commit_round(round_no, cases, row, metrics=metrics)
    publish_round(round_no, round_summary(round_no, spec.name, cases, stages, config.label_map.labels,
                                          selection, tumors, metrics, pseudo_dice, counts["untrusted_classes"]),
                  selection, metrics)
    return {"round": round_no, "model_dir": new_model}


def _select(config: PipelineConfig, todo: list[dict], by_case: dict) -> pd.DataFrame:
    unlabeled = [c for c in todo if c["role"] == "unlabeled"]
    if not unlabeled:
        return pd.DataFrame(columns=["case_id", "organ_score", "tumor_score", "organ_rank", "decision", "reason"])
    scores = pd.DataFrame([{"case_id": c["case_id"], **by_case[c["case_id"]]["scores"]} for c in unlabeled])
    scorer = config.selection.scorer
    if f"organ_{scorer}" not in scores.columns:
        raise RoundError(f"selection scorer {scorer!r} has no scores this round; use scorer: entropy")
    return select_confident_cases(scores, config.selection.organ_keep, config.selection.tumor_keep,
                                  f"organ_{scorer}", f"tumor_{scorer}")
