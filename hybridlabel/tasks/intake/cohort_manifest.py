"""The manifest of a simulated cohort (the phantom, `simulate-partial`, the real-CT
benchmark cohorts): one row per case in the audit's manifest columns, extra columns
(`site`) after them; roles are left for the audit to infer, except `val`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.intake.audit import MANIFEST_COLUMNS


def manifest_row(case_id: str, image: str, label: str, role: str, annotated, **extra) -> dict:
    """A case's row: `label` relative to the manifest ("" when unlabeled), `annotated` the
    classes its label covers (None when unlabeled), `role` the simulated one."""
    return {
        "case_id": case_id,
        "image": image,
        "label": label,
        "annotated": " ".join(str(c) for c in annotated) if annotated else "",
        "role": "val" if role == "val" else "",
        **extra,
    }


def write_manifest(path: Path, rows: list[dict]) -> Path:
    """Write the rows (the audit's columns first, then the rows' extra ones) atomically."""
    extra = [k for k in rows[0] if k not in MANIFEST_COLUMNS] if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*MANIFEST_COLUMNS, *extra], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(Path(path), buf.getvalue())
