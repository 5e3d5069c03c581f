"""Prefect tasks of a round: thin wrappers that take and return paths and small records.

Per-case steps (predict, merge) are idempotent: a journal entry records each output's
sha256, and a rerun of an interrupted round skips cases whose output is intact. Rounds
run them as tasks over chunks of cases (`*_cases_task`; `first` and `last` name the task
run), since a Prefect task run costs as much as a small case's work.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from prefect import get_run_logger, task

from hybridlabel.models.config import CutMixConfig, LabelMapConfig, MergeConfig, TrainingConfig
from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.tasks.files.content_store import dedupe
from hybridlabel.tasks.files.imageio import array_to_image, sha256_path, write_image
from hybridlabel.tasks.merge import merge_case_files
from hybridlabel.tasks.workdir import fingerprint, read_journal, write_journal

_predict_lock = threading.Lock()


def _logger():
    try:
        return get_run_logger()
    except Exception:  # outside a Prefect run (plain function calls in tests)
        import logging

        return logging.getLogger("hybridlabel")


@lru_cache(maxsize=2)
def _segmenter(model_dir: str, device: str, tta: str):
    from hybridlabel.models.nnunet.predictor import Segmenter
    from hybridlabel.tasks.nnunet.predict import load_bundle

    return Segmenter(load_bundle(Path(model_dir)), device=device, tta=tta)


def _predict_locked(model_dir: str, device: str, tta: str, *args):
    # module level, the lock out of the task: Dask pickles a task body by value, and a lock cannot be pickled
    from hybridlabel.tasks.nnunet.predict import predict_case

    with _predict_lock:  # one network per process: its weights are (re)loaded per call by nnU-Net
        return predict_case(_segmenter(str(model_dir), device, tta), *args)


def predict_case_step(
    model_dir: str,
    case: dict,
    out_dir: str,
    labels: LabelMapConfig,
    device: str = "auto",
    tta: str = "none",
    model_sha: str = "",
    scorers: tuple[str, ...] = ("entropy",),
    reference_dir: str | None = None,
    store: str | None = None,
    confidence: bool = False,
    min_tumor_peak: float | None = None,
) -> dict:
    """Predict one case and score it. `reference_dir`: the previous round's predictions,
    which a disagreement scorer compares with (else with a mirrored pass). `store`: the
    content store the output is kept in (one copy of identical labels across rounds).
    `confidence`: also write the voxels' highest probability (`<case>.confidence.nii.gz`).
    `min_tumor_peak`: predicted tumours never this sure take their next-ranked class."""
    step = Path(out_dir)
    reference = Path(reference_dir) / f"{case['case_id']}.nii.gz" if reference_dir else None
    reference_sha = sha256_path(reference) if reference is not None and reference.is_file() else None
    inputs = fingerprint(
        model_sha or model_dir, case.get("image_sha256") or case["image_path"], tta, sorted(scorers), reference_sha
    )
    if confidence:  # only then: journals of runs without it stay valid
        inputs = fingerprint(inputs, "confidence")
    if min_tumor_peak is not None:
        inputs = fingerprint(inputs, "min_tumor_peak", min_tumor_peak)
    confidence_path = step / f"{case['case_id']}.confidence.nii.gz" if confidence else None
    done = read_journal(step, case["case_id"], inputs)
    if done:
        return done
    try:
        out, scores = _predict_locked(
            model_dir,
            device,
            tta,
            Path(case["image_path"]),
            step / f"{case['case_id']}.nii.gz",
            labels,
            tuple(scorers),
            reference if reference_sha else None,
            confidence_path,
            min_tumor_peak,
        )
    except Exception as exc:  # noqa: BLE001  (one case's failure is that case's record; the round goes on)
        _logger().warning(f"{case['case_id']}: prediction failed: {one_line(exc)}", exc_info=True)
        return {"case_id": case["case_id"], "error": one_line(exc)}
    if store:
        dedupe(out, Path(store))
    record = {"case_id": case["case_id"], "path": str(out), "scores": scores}
    if confidence_path is not None:
        record["confidence_path"] = str(confidence_path)
    return write_journal(step, case["case_id"], inputs, record)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _chunk_name(step: str):
    """Task-run name of a chunk: its first and last case."""

    def name() -> str:
        from prefect.runtime import task_run

        first, last = (task_run.parameters[k] for k in ("first", "last"))
        return f"{step}-{first}" + (f"-to-{last}" if last != first else "")

    return name


@task(name="predict-cases", task_run_name=_chunk_name("predict"), retries=0)
def predict_cases_task(
    model_dir: str,
    cases: list[dict],
    out_dir: str,
    labels: LabelMapConfig,
    device: str,
    tta: str,
    model_sha: str,
    scorers: list[tuple[str, ...]],
    reference_dir: str | None,
    store: str | None,
    confidence: bool = False,
    min_tumor_peak: float | None = None,
    first: str = "",
    last: str = "",
) -> list[dict]:
    """`predict_case_step` for each for a chunk of cases (each with its own journal)."""
    return [
        predict_case_step(
            model_dir,
            case,
            out_dir,
            labels,
            device,
            tta,
            model_sha,
            tuple(s),
            reference_dir,
            store,
            confidence,
            min_tumor_peak,
        )
        for case, s in zip(cases, scorers)
    ]


def organ_training_label(hybrid: Path, out: Path, labels: LabelMapConfig) -> Path:
    """An organs-only round trains without the tumour class: tumour and ignore voxels
    become the ignore label of the organ dataset (the id after the last organ)."""
    image = sitk.ReadImage(str(hybrid))
    array = sitk.GetArrayFromImage(image)
    ignore = max(labels.organ_ids) + 1
    lut = np.arange(256, dtype=np.uint8)
    lut[labels.tumor_id] = ignore
    lut[labels.ignore_id] = ignore
    return write_image(array_to_image(lut[array], image), out)


def merge_case_step(
    case: dict,
    pred: dict,
    out_dir: str,
    merge: MergeConfig,
    labels: LabelMapConfig,
    tumor_selected: bool,
    targets: str,
    store: str | None = None,
) -> dict:
    """Merge one case (skipped when its journal shows the same inputs) and, for an
    organs-only round, write its organ training label; both kept in the content store."""
    step = Path(out_dir)
    withhold = list(case.get("held_out_classes") or [])
    # the label's path too: an accepted review gives the case a new label (same classes, perhaps)
    inputs = fingerprint(
        pred["sha256"],
        case.get("input_label_sha256"),
        case.get("label_path"),
        case.get("annotated_classes"),
        merge.model_dump(),
        labels.model_dump(),
        tumor_selected,
        targets,
        withhold,
    )
    # the voxels' confidence, where the prediction step wrote it (merge.min_voxel_confidence set);
    # its content too: a prediction redone (another tta) may give the same labels, other confidences
    confidence = Path(pred["confidence_path"]) if pred.get("confidence_path") else None
    if confidence is not None:
        inputs = fingerprint(inputs, sha256_path(confidence))
    done = read_journal(step, case["case_id"], inputs)
    if done:
        return done
    out = step / f"{case['case_id']}.nii.gz"
    label = Path(case["label_path"]) if case.get("label_path") else None
    annotated = list(case.get("annotated_classes") or []) if label else None
    _, _, record = merge_case_files(
        Path(pred["path"]), out, merge, labels, label, None, annotated, tumor_selected, withhold, confidence
    )
    train_label = out
    if targets == "organs":
        train_label = organ_training_label(out, step / "train" / out.name, labels)
    for written in {out, train_label} if store else ():
        dedupe(written, Path(store))
    uses_ignore = "ignore" in record["counts"]
    return write_journal(
        step,
        case["case_id"],
        inputs,
        {
            "case_id": case["case_id"],
            "path": str(out),
            "train_label": str(train_label),
            "sources": record["sources"],
            "tumors": record["tumors"],
            "counts": record["counts"],
            "overlap": record.get("overlap", {}),
            "uses_ignore": uses_ignore,
        },
    )


@task(name="merge-cases", task_run_name=_chunk_name("merge"))
def merge_cases_task(
    cases: list[dict],
    preds: list[dict],
    out_dir: str,
    merge: MergeConfig,
    labels: LabelMapConfig,
    tumor_selected: list[bool],
    targets: str,
    store: str | None,
    first: str = "",
    last: str = "",
) -> list[dict]:
    """`merge_case_step` for each for a chunk of cases (each with its own journal)."""
    return [
        merge_case_step(case, pred, out_dir, merge, labels, selected, targets, store)
        for case, pred, selected in zip(cases, preds, tumor_selected)
    ]


@task(name="build-round-dataset")
def build_dataset_task(
    dataset: NnunetDataset,
    cases: list[dict],
    labels: LabelMapConfig,
    with_ignore: bool,
    tumor: bool,
    plans_from: int | None,
    configuration: str,
    store: str | None = None,
    planner_gpu_memory_gb: float | None = None,
) -> str:
    """Raw dataset of the round, plans (once, on the teacher's dataset), preprocessing
    (images once, labels each round, kept in the content store). Returns the plans file."""
    from hybridlabel.tasks.nnunet.dataset import TrainingCase, write_round_dataset
    from hybridlabel.tasks.nnunet.preprocess import plan_dataset, preprocess_round

    log = _logger()
    training = [TrainingCase(c["case_id"], Path(c["image_path"]), Path(c["train_label"])) for c in cases]
    root, dataset_id, name = Path(dataset.root), dataset.id, dataset.name
    write_round_dataset(root, dataset_id, name, training, labels, with_ignore=with_ignore, tumor=tumor)
    base = dataset_id if plans_from is None else plans_from
    plans = plan_dataset(root, base, log=log.info, gpu_memory_gb=planner_gpu_memory_gb)
    preprocess_round(
        root,
        plans,
        dataset_id,
        name,
        training,
        configuration=configuration,
        store=Path(store) if store else None,
    )
    log.info(f"dataset {dataset_id} ({name}): {len(training)} training cases preprocessed ({configuration})")
    return str(plans)


@task(name="preprocess-round")
def preprocess_task(
    dataset: NnunetDataset,
    plans_from: int,
    configuration: str,
    planner_gpu_memory_gb: float | None = None,
) -> str:
    """A round's existing raw dataset preprocessed in another configuration (the export's)."""
    from hybridlabel.tasks.nnunet.dataset import FILE_ENDING, TrainingCase
    from hybridlabel.tasks.nnunet.preprocess import plan_dataset, preprocess_round

    raw, root = dataset.raw, Path(dataset.root)
    suffix = f"_0000{FILE_ENDING}"
    cases = [
        TrainingCase(p.name[: -len(suffix)], p, raw / "labelsTr" / (p.name[: -len(suffix)] + FILE_ENDING))
        for p in sorted((raw / "imagesTr").glob(f"*{suffix}"))
    ]
    plans = plan_dataset(root, plans_from, log=_logger().info, gpu_memory_gb=planner_gpu_memory_gb)
    return str(preprocess_round(root, plans, dataset.id, dataset.name, cases, configuration=configuration))


@task(name="cutmix-pool")
def cutmix_pool_task(
    preprocessed: str,
    configuration: str,
    donors: list[dict],
    cutmix: CutMixConfig,
    labels: LabelMapConfig,
    attribution_mm: float,
    seed: int,
) -> tuple[str, dict[str, list[dict]]]:
    """The round's tumour objects for CutMix: the pool file and each donor's records."""
    from hybridlabel.tasks.nnunet.cutmix_pool import write_cutmix_pool

    pool, objects = write_cutmix_pool(Path(preprocessed), configuration, donors, cutmix, labels, attribution_mm, seed)
    _logger().info(f"CutMix pool {pool}: {sum(map(len, objects.values()))} tumour objects from {len(donors)} cases")
    return str(pool), objects


@task(name="train-model")
def train_task(
    dataset: NnunetDataset,
    training: TrainingConfig,
    annotated: dict[str, list[int]] | None = None,
    parent_model: str | None = None,
    cutmix_pool: str | None = None,
    hidden_tumor: list | None = None,
) -> str:
    from hybridlabel.tasks.nnunet.train import train_model

    log = _logger()
    return str(
        train_model(
            dataset,
            training,
            annotated,
            log=log.info,
            parent_model=Path(parent_model) if parent_model else None,
            cutmix_pool=Path(cutmix_pool) if cutmix_pool else None,
            hidden_tumor=hidden_tumor,
        )
    )


@task(name="evaluate-cases", task_run_name=_chunk_name("evaluate"))
def evaluate_cases_task(
    jobs: list[tuple[str, str, str, list[int]]], rules, first: str = "", last: str = ""
) -> list[list[dict]]:
    """FLARE metrics for a chunk of (case, prediction, ground truth, classes)."""
    return [evaluate_case(case_id, pred, gt, rules, classes) for case_id, pred, gt, classes in jobs]


def evaluate_case(case_id: str, pred_path: str, gt_path: str, rules, classes: list[int]) -> list[dict]:
    """FLARE metrics of one label file against its ground truth: small records, no volumes."""
    from hybridlabel.tasks.evaluate import EvaluationInputError, evaluate_files
    from hybridlabel.tasks.files.imageio import ImageReadError

    try:
        return [{"case_id": case_id, **r} for r in evaluate_files(Path(pred_path), Path(gt_path), rules, classes)]
    except (EvaluationInputError, ImageReadError) as exc:  # one unscorable case does not stop the round
        _logger().warning(f"{case_id}: not evaluated: {exc}")
        return []
