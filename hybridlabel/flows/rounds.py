"""One Prefect flow per round kind: the teacher (round 0) and a student round.

Flows only orchestrate: every step is a task that takes and returns paths and small
records, every rule is a pure function of `models.round_rules`. A round ends by
committing its registry partitions; only then is it complete.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from prefect import flow
from prefect.context import FlowRunContext

from hybridlabel.data_registry.frames import dumps
from hybridlabel.data_registry.ops import apply_updates, next_round_cases
from hybridlabel.data_registry.store import Registry, RegistryError
from hybridlabel.flows.dashboard import round_line, round_summary
from hybridlabel.flows.evaluation import evaluate_round
from hybridlabel.flows.fanout import Progress, map_chunks
from hybridlabel.flows.round_end import finish_round, round_means
from hybridlabel.flows.timing import timed, training_size
from hybridlabel.models.config import PipelineConfig
from hybridlabel.models.holdout import held_out_classes
from hybridlabel.models.nnunet.identity import checkpoint_path, round_dataset
from hybridlabel.models.pseudo_trust import trust_evidence, untrusted_classes, val_dice
from hybridlabel.models.round_rules import (
    apply_reviews,
    case_scorers,
    case_updates,
    complete_label_jobs,
    hidden_tumor,
    loss_classes,
    needs_ignore,
    prediction_set,
    reviewed_count,
    select_unlabeled,
    trained_rows,
    training_set,
    tumor_donors,
    tumor_kept,
    without_failed_predictions,
)
from hybridlabel.tasks.files.imageio import sha256_path
from hybridlabel.tasks.intake.audit import audit_dataset, summarize
from hybridlabel.tasks.registry import code_version, config_record
from hybridlabel.tasks.round_inputs import RoundError, parent_model
from hybridlabel.tasks.round_tasks import (
    build_dataset_task,
    cutmix_pool_task,
    merge_cases_task,
    predict_cases_task,
    train_task,
)
from hybridlabel.tasks.workdir import Layout


def _flow_run_id() -> str | None:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def _round_row(config: PipelineConfig, round_no: int, kind: str, started: datetime, **fields) -> dict:
    return {
        "name": config.rounds[round_no].name,
        "kind": kind,
        "parent_round": round_no - 1 if round_no else None,
        **config_record(config),
        "code_version": code_version(),
        "flow_run_id": _flow_run_id(),
        "started_at": started,
        **fields,
    }


@flow(name="teacher-round", flow_run_name="round-0-teacher")
def teacher_round(config: PipelineConfig, workdir: str) -> dict:
    """Round 0: intake audit, then the teacher trained on the strong cases."""
    layout, reg = Layout(Path(workdir)), Registry(Path(workdir))
    spec, started, stages = config.rounds[0], datetime.now(timezone.utc), {}
    reg.set_round_status(0, "running", **_round_row(config, 0, "teacher", started))
    with timed(stages, "audit"):
        cases = audit_dataset(
            config.dataset,
            config.label_map,
            config.manifest,
            resample_dir=layout.workdir / "intake" / "labels",
            allow_outside=config.allow_paths_outside_dataset,
        )
    train, annotated = training_set(cases, spec.train_roles, {}, {})
    if not train:
        raise RoundError(
            f"round 0 has no {'/'.join(spec.train_roles)} cases to train the teacher on; "
            f"check the dataset's labels and manifest ({summarize(cases)['roles']})"
        )
    model_dir, objects = _train(
        config,
        layout,
        0,
        train,
        False,
        stages,
        loss_classes(annotated, spec.training.loss),
        tumor_donors(cases, train, {}, config.label_map.tumor_id),
    )
    trained = {c["case_id"] for c in train}
    cases["trained"] = trained_rows(cases, train)
    cases = apply_updates(cases, _cutmix_updates(objects))
    cases["held_out_classes"] = _held_out(config, cases)
    with timed(stages, "evaluate"):
        metrics, means = evaluate_round(config, layout, 0, cases, model_dir, [])
    row = _round_row(
        config,
        0,
        "teacher",
        started,
        status="completed",
        model_dir=model_dir,
        stage_seconds=dumps(stages),
        counts=dumps({**summarize(cases), "trained": len(trained), **_cutmix_counts(objects)}),
        mean_metrics=dumps(means),
        finished_at=datetime.now(timezone.utc),
    )
    finish_round(
        reg,
        0,
        cases,
        row,
        metrics,
        round_line(0, spec.name, {"trained": len(trained)}, means, None, stages, config.evaluation.learned_floor),
        round_summary(0, spec.name, cases, stages, config.label_map.labels, None, [], metrics),
    )
    return {"round": 0, "model_dir": model_dir}


def _held_out(config: PipelineConfig, cases: pd.DataFrame) -> list:
    """Per case, the annotated classes held back for unbiased pseudo-label scoring
    (partial cases only; fixed for the whole pipeline)."""
    ev = config.evaluation
    return [
        held_out_classes(r["case_id"], r.get("annotated_classes"), ev.holdout_fraction, ev.holdout_seed)
        if r["role"] in ("partial", "tumor_only")
        else []
        for r in cases.to_dict("records")
    ]


def _train(
    config: PipelineConfig,
    layout: Layout,
    round_no: int,
    train: list[dict],
    with_ignore: bool,
    stages: dict,
    annotated: dict | None,
    donors: list[dict],
    parent_model: str | None = None,
    hidden: list | None = None,
) -> tuple[str, dict[str, list[dict]]]:
    """Preprocess, cut the CutMix pool when the budget asks for one, train. Returns the
    model folder and the tumour objects cut per donor case."""
    spec = config.rounds[round_no]
    dataset = round_dataset(layout.nnunet, config.nnunet_dataset_id, config.name, round_no)
    with timed(stages, "preprocess"):
        build_dataset_task(
            dataset,
            train,
            config.label_map,
            with_ignore,
            spec.trains_tumor,
            None if round_no == 0 else config.nnunet_dataset_id,
            spec.training.configuration,
            str(layout.store),
            config.planner_gpu_memory_gb,
        )
    pool, objects = None, {}
    if spec.training.cutmix is not None and donors:
        with timed(stages, "cutmix", len(donors)):
            pool, objects = cutmix_pool_task(
                str(dataset.preprocessed),
                spec.training.configuration,
                donors,
                spec.training.cutmix,
                config.label_map,
                config.merge.attribution_mm,
                spec.training.seed,
            )
    with timed(stages, "train", *training_size(spec.training)):
        return train_task(dataset, spec.training, annotated, parent_model, pool, hidden), objects


def _cutmix_updates(objects: dict[str, list[dict]]) -> dict[str, dict]:
    return {case_id: {"tumor_objects": found} for case_id, found in objects.items()}


def _cutmix_counts(objects: dict[str, list[dict]]) -> dict:
    return {"cutmix": {"donors": len(objects), "objects": sum(map(len, objects.values()))}} if objects else {}


def _metrics(reg: Registry, round_no: int) -> pd.DataFrame | None:
    try:
        return reg.read("metrics", round_no)
    except RegistryError:  # a round with no val cases and no scored pseudo labels writes none
        return None


def _predict(config: PipelineConfig, layout: Layout, round_no: int, todo: list[dict], model_dir: str, stages: dict):
    """The parent's pseudo labels (and scores) of the cases to predict, chunked over tasks."""
    sel, spec = config.selection, config.rounds[round_no]
    previous = str(layout.step_dir(round_no - 1, "predict")) if sel.disagreement_with == "previous_round" else None
    with timed(stages, "predict", len(todo)):
        progress = Progress(
            f"round-{round_no:03d}-predict", len(todo), f"round {round_no}: pseudo labels predicted", "predict"
        )
        return map_chunks(
            predict_cases_task,
            config.workers,
            progress,
            [c["case_id"] for c in todo],
            {"cases": todo, "scorers": case_scorers(todo, sel.scorer)},
            model_dir=model_dir,
            out_dir=str(layout.step_dir(round_no, "predict")),
            labels=config.label_map,
            device=config.predict_device,
            tta=spec.tta,
            model_sha=sha256_path(checkpoint_path(model_dir)),
            reference_dir=previous,
            store=str(layout.store),
            confidence=config.merge.min_voxel_confidence is not None,
            min_tumor_peak=config.min_tumor_peak,
        )


def _merge(
    config: PipelineConfig, layout: Layout, round_no: int, todo: list[dict], preds: list[dict], decisions, stages
):
    """Each predicted case's hybrid label (ground truth wins), chunked over tasks."""
    with timed(stages, "merge", len(todo)):
        progress = Progress(f"round-{round_no:03d}-merge", len(todo), f"round {round_no}: labels merged", "merge")
        return map_chunks(
            merge_cases_task,
            config.workers,
            progress,
            [c["case_id"] for c in todo],
            {"cases": todo, "preds": preds, "tumor_selected": tumor_kept(todo, decisions)},
            out_dir=str(layout.step_dir(round_no, "merge")),
            merge=config.merge,
            labels=config.label_map,
            targets=config.rounds[round_no].targets,
            store=str(layout.store),
        )


def _trust(config: PipelineConfig, reg: Registry, round_no: int, parent_cases: pd.DataFrame, merged: list[dict]):
    """Per pseudo-labelled class, the parent's Dice where it did not train (and where that
    was measured), and the classes too poor to teach the student."""
    evidence = trust_evidence(
        merged,
        parent_cases.loc[parent_cases["trained"].fillna(False).astype(bool), "case_id"],
        val_dice(_metrics(reg, round_no - 1)),
    )
    pseudo_dice = {c: d for c, (d, _) in evidence.items()}
    return evidence, untrusted_classes(pseudo_dice, config.merge.min_pseudo_dice, config.label_map.labels)


def _student_counts(cases, todo, failed, train, evidence, untrusted, loss: str, objects, selection) -> dict:
    """The round's counts as its registry row keeps them."""
    return {
        **summarize(cases),
        "predicted": len(todo),
        "prediction_failed": len(failed),
        "trained": len(train),
        "reviewed": reviewed_count(cases),
        "pseudo_dice": {str(c): d for c, (d, _) in evidence.items()},
        "pseudo_evidence": {str(c): where for c, (_, where) in evidence.items()},
        "untrusted_classes": untrusted if loss != "naive" else [],
        **_cutmix_counts(objects),
        "selection": {k: int(v) for k, v in selection["decision"].value_counts().items()} if len(selection) else {},
    }


@flow(name="student-round", flow_run_name="round-{round_no}-student")
def student_round(config: PipelineConfig, workdir: str, round_no: int) -> dict:
    """Round r >= 1: the parent predicts, labels are merged, unlabeled cases selected,
    and the student trains on the result."""
    layout, reg = Layout(Path(workdir)), Registry(Path(workdir))
    spec, started, stages, labels = config.rounds[round_no], datetime.now(timezone.utc), {}, config.label_map
    model_dir = parent_model(Path(workdir), round_no - 1)
    reg.set_round_status(round_no, "running", **_round_row(config, round_no, "student", started))
    parent_cases = reg.read("cases", round_no - 1)
    # reviewed classes are ground truth from the round after the review on (and in a rerun of it)
    cases = apply_reviews(
        next_round_cases(parent_cases, round_no), reg.reviews_through(round_no), labels.organ_ids, labels.tumor_id
    )
    todo = prediction_set(cases, spec.predict_roles)
    preds = _predict(config, layout, round_no, todo, model_dir, stages)
    todo, preds, failed = without_failed_predictions(todo, preds, round_no)
    by_case = {p["case_id"]: p for p in preds}
    sel = config.selection
    selection = select_unlabeled(todo, by_case, sel.scorer, sel.organ_keep, sel.tumor_keep)
    decisions = dict(zip(selection["case_id"], selection["decision"])) if len(selection) else {}
    merged = _merge(config, layout, round_no, todo, preds, decisions, stages)
    merged_by_case = {m["case_id"]: m for m in merged}
    evidence, untrusted = _trust(config, reg, round_no, parent_cases, merged)

    train, annotated = training_set(cases, spec.train_roles, merged_by_case, decisions, untrusted)
    new_model, objects = _train(
        config,
        layout,
        round_no,
        train,
        needs_ignore(merged, spec.targets, labels.tumor_id),
        stages,
        loss_classes(annotated, spec.training.loss),
        tumor_donors(cases, train, merged_by_case, labels.tumor_id),
        model_dir,
        hidden_tumor(spec, merged, labels),
    )
    cases = apply_updates(cases, {**case_updates(todo, by_case, merged_by_case, selection, train), **failed})
    cases = apply_updates(cases, _cutmix_updates(objects))
    with timed(stages, "evaluate"):
        metrics, means = evaluate_round(
            config,
            layout,
            round_no,
            cases,
            new_model,
            [(c, by_case[c["case_id"]]["path"]) for c in todo],
            complete=complete_label_jobs(todo, merged_by_case, by_case),
        )

    counts = _student_counts(cases, todo, failed, train, evidence, untrusted, spec.training.loss, objects, selection)
    row = _round_row(
        config,
        round_no,
        "student",
        started,
        status="completed",
        model_dir=new_model,
        stage_seconds=dumps(stages),
        counts=dumps(counts),
        mean_metrics=dumps(means),
        finished_at=datetime.now(timezone.utc),
    )
    tumors = [t for m in merged for t in m["tumors"] if t.get("kept", True)]
    finish_round(
        reg,
        round_no,
        cases,
        row,
        metrics,
        round_line(
            round_no, spec.name, counts, means, round_means(reg, round_no - 1), stages, config.evaluation.learned_floor
        ),
        round_summary(
            round_no,
            spec.name,
            cases,
            stages,
            labels.labels,
            selection,
            tumors,
            metrics,
            evidence,
            counts["untrusted_classes"],
        ),
        selection,
    )
    return {"round": round_no, "model_dir": new_model}
