"""The manifest of the ablation's `oracle` arm: every case that has a complete label
(`<dataset>/groundTruth`, `evaluation.complete_labels`) trains on it as a strong case, val
cases stay val. A model trained on it is the ceiling the loop's pseudo labels could reach."""

from __future__ import annotations

from pathlib import Path

from hybridlabel.models.config import PipelineConfig
from hybridlabel.tasks.evaluate import complete_label_files
from hybridlabel.tasks.intake.audit import DatasetError, default_manifest, discover_cases
from hybridlabel.tasks.intake.cohort_manifest import write_manifest


def write_oracle_manifest(config: PipelineConfig, out: Path) -> Path:
    """Write the oracle arm's manifest to `out`; DatasetError when no training case has a
    complete label (nothing to train the ceiling on)."""
    manifest = config.manifest or default_manifest(Path(config.dataset))
    cases = discover_cases(Path(config.dataset), manifest, config.allow_paths_outside_dataset)
    complete = complete_label_files(config, [c.case_id for c in cases])
    every_class = " ".join(str(c) for c in (*config.label_map.organ_ids, config.label_map.tumor_id))
    rows, upgraded = [], 0
    for case in cases:
        row = {
            "case_id": case.case_id,
            "image": str(case.image.resolve()) if case.image else "",
            "label": str(case.label.resolve()) if case.label else "",
            "annotated": " ".join(map(str, case.annotated or ())),
            "role": case.role or "",
        }
        if case.role != "val" and case.case_id in complete and case.image is not None:
            row.update(label=str(Path(complete[case.case_id]).resolve()), annotated=every_class, role="")
            upgraded += 1
        rows.append(row)
    if not upgraded:
        raise DatasetError(
            f"the oracle arm needs complete labels of the training cases: none found in "
            f"{config.evaluation.complete_labels or Path(config.dataset) / 'groundTruth'}; set "
            "evaluation.complete_labels, or leave the oracle out of --arms"
        )
    return write_manifest(Path(out), rows)
