"""`hybridlabel predict`: an exported model on files, DICOM series or a folder of them,
each label map written in its input's geometry with an efficiency record beside it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.intake import check_intensities
from hybridlabel.models.label_qc import label_stats, qc_flags
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import (
    ImageReadError,
    array_to_image,
    image_suffix,
    read_image,
    spacing_zyx,
    strip_suffix,
    write_image,
)
from hybridlabel.tasks.files.orient import to_image_grid, to_model_orientation
from hybridlabel.tasks.model.archive import read_archive
from hybridlabel.tasks.model.efficiency import MemorySampler, gpu_memory_reader

log = logging.getLogger("hybridlabel.predict")


class PredictInputError(ValueError):
    """INPUT / OUTPUT cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Job:
    case_id: str
    source: Path  # image file or DICOM series folder
    output: Path  # label map (.nii.gz)

    @property
    def record_path(self) -> Path:
        return self.output.with_name(strip_suffix(self.output) + ".efficiency.json")


def _is_dicom_folder(folder: Path) -> bool:
    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def plan_jobs(source: Path, output: Path) -> list[Job]:
    """What to segment and where each result goes."""
    source, output = Path(source), Path(output)
    if not source.exists():
        raise PredictInputError(f"INPUT {source} does not exist")
    single_out = image_suffix(output) is not None
    if source.is_file() or (source.is_dir() and _is_dicom_folder(source)):
        name = strip_suffix(source) if source.is_file() else source.name
        out = output if single_out else output / f"{name}.nii.gz"
        return [Job(name, source, out)]
    if single_out:
        raise PredictInputError(f"INPUT {source} is a folder of cases; OUTPUT must be a folder, not {output.name}")
    jobs = []
    for path in sorted(source.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and image_suffix(path):
            jobs.append(
                Job(
                    strip_suffix(path).removesuffix("_0000"),
                    path,
                    output / f"{strip_suffix(path).removesuffix('_0000')}.nii.gz",
                )
            )
        elif path.is_dir() and _is_dicom_folder(path):
            jobs.append(Job(path.name, path, output / f"{path.name}.nii.gz"))
    if not jobs:
        raise PredictInputError(f"INPUT {source} holds no image files (.nii.gz, .mha, .nrrd, ...) or DICOM series")
    return jobs


def _qc(seg: np.ndarray, spacing: tuple, reference: dict, names: dict[int, str]) -> dict:
    """Per class volume and components of the output, and what is implausible against the
    training labels' ranges (none recorded in archives exported before them)."""
    stats = label_stats(seg, spacing)
    return {
        "classes": {str(c): s for c, s in stats.items()},
        "checked": bool(reference),
        "flags": qc_flags(stats, reference, names) if reference else [],
    }


def tumor_rule(info: dict, min_tumor_peak: float | None) -> tuple[int, float] | None:
    """(tumour class, bar) the outputs are post-processed with: the archive's, its bar
    replaced where one is given; archives exported before the rule have none."""
    rule = info.get("tumor_filter")
    if min_tumor_peak is not None and not 0 <= min_tumor_peak <= 1:
        raise PredictInputError(f"--min-tumor-peak must lie in [0, 1], got {min_tumor_peak}")
    if rule is None:
        if min_tumor_peak:
            raise PredictInputError(
                "this archive was exported before the tumour rule and names no tumour class; "
                "export it again to use --min-tumor-peak"
            )
        return None
    bar = rule["min_peak"] if min_tumor_peak is None else min_tumor_peak
    return (rule["tumor_id"], bar) if bar > 0 else None


def predict_files(
    archive: Path,
    source: Path,
    output: Path,
    device: str = "auto",
    tta: str = "none",
    fast: bool | None = None,
    on_case: Callable[[str], None] | None = None,
    loaded: tuple | None = None,
    min_tumor_peak: float | None = None,
) -> list[dict]:
    """Segment every input; returns the efficiency records (failures carry `error`).
    `min_tumor_peak`: the tumour rule's bar instead of the archive's (0: keep every tumour)."""
    from hybridlabel.models.nnunet.fast_predictor import FastSegmenter
    from hybridlabel.tasks.registry import code_version

    jobs = plan_jobs(source, output)
    bundle, info = loaded or read_archive(archive)
    use_fast = info.get("fast", True) if fast is None else fast
    tumor_filter = tumor_rule(info, min_tumor_peak)
    segmenter = FastSegmenter(bundle, device=device, tta=tta, fast=use_fast)
    labels = {int(v) for v in bundle.dataset_json["labels"].values() if isinstance(v, int)}
    names = {int(v): str(k) for k, v in bundle.dataset_json["labels"].items() if isinstance(v, int)}
    reference = info.get("label_qc") or {}
    records = []
    for job in jobs:
        record = {
            "case_id": job.case_id,
            "input": str(job.source),
            "output": str(job.output),
            "device": str(segmenter.device),
            "fast": use_fast,
            "tta": tta,
            "min_tumor_peak": tumor_filter[1] if tumor_filter else None,
            "model": Path(archive).name,
            "code_version": code_version(),
        }
        try:
            with MemorySampler(gpu_memory_reader(segmenter.device.type)) as sampler:
                original = read_image(job.source)
                image = to_model_orientation(original, info.get("orientation"))
                if problem := check_intensities(sitk.GetArrayViewFromImage(image)):
                    raise ImageReadError(problem)
                seg = segmenter.predict_label(sitk.GetArrayViewFromImage(image), spacing_zyx(image), tumor_filter)
                write_image(to_image_grid(array_to_image(seg, image), original), job.output)
            record.update(sampler.record())
            record["labels_present"] = sorted(int(c) for c in np.unique(seg) if c)
            record["labels_valid"] = set(record["labels_present"]) <= labels
            record["qc"] = _qc(seg, spacing_zyx(image), reference, names)
        except ImageReadError as exc:  # one bad input does not stop the others
            record["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001  (any failure of one case is that case's record)
            log.info("case %s failed", job.case_id, exc_info=True)
            record["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        atomic_write_text(job.record_path, json.dumps(record, indent=1))
        records.append(record)
        if on_case:
            on_case(job.case_id)
    return records
