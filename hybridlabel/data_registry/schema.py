"""The registry's tables: every column and its type, defined once.

Dict-like values (voxel counts, label sources, tumour records, scores, stage times)
are JSON text columns: their keys depend on the label map, so a fixed column per
class would tie the schema to one label map. Geometry lists are in SimpleITK's
(x, y, z) order, as file headers and viewers show them.
"""

from __future__ import annotations

import pyarrow as pa

from hybridlabel.models.labels import ROLES

CASE_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("case_id", pa.string(), "unique case id (file stem or manifest id)"),
    ("round", pa.int32(), "round number"),
    ("role", pa.string(), "strong | partial | tumor_only | unlabeled | val | quarantined"),
    ("annotated_classes", pa.list_(pa.int16()), "classes the input label covers"),
    ("held_out_classes", pa.list_(pa.int16()), "annotated classes held back from merging/training (evaluation only)"),
    ("image_path", pa.string(), "image file or DICOM series folder"),
    ("image_sha256", pa.string(), "sha256 of the image file (of all files, sorted, for a folder)"),
    ("input_label_path", pa.string(), "partial label as given; null when unlabeled"),
    ("input_label_sha256", pa.string(), "sha256 of the input label"),
    ("label_path", pa.string(), "input label on the image grid (the input itself unless resampled)"),
    ("label_resampled", pa.bool_(), "input label was resampled (nearest neighbour) onto the image grid"),
    ("spacing", pa.list_(pa.float64()), "voxel spacing in mm, (x, y, z)"),
    ("shape", pa.list_(pa.int32()), "image size in voxels, (x, y, z)"),
    ("orientation", pa.string(), "the image's axis directions, DICOM letters (LPS = identity direction)"),
    ("voxel_counts", pa.string(), "JSON: class id -> voxels of the input label"),
    ("hybrid_label_path", pa.string(), "this round's hybrid label"),
    ("hybrid_label_sha256", pa.string(), "sha256 of the hybrid label"),
    ("label_sources", pa.string(), "JSON: class id -> gt | pseudo | ignore | none"),
    ("tumors", pa.string(), "JSON: tumour attribution records"),
    ("scores", pa.string(), "JSON: every uncertainty score computed this round"),
    ("tumor_objects", pa.string(), "JSON: the tumours cut from this case's label for CutMix (voxels, box, host organ)"),
    ("trained", pa.bool_(), "the case was in this round's training set"),
    ("selection", pa.string(), "selection decision among unlabeled cases"),
    ("selection_reason", pa.string(), "why, with the cut-off"),
    ("quarantine_reason", pa.string(), "one line: why the case is unusable; null when fine"),
    (
        "reviewed_classes",
        pa.list_(pa.int16()),
        "classes a reviewer corrected (`hybridlabel accept`): ground truth from then on, in annotated_classes too",
    ),
]

ROUND_ROW_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("round", pa.int32(), "round number"),
    ("name", pa.string(), "round name from the config"),
    ("kind", pa.string(), "intake | teacher | student | export"),
    ("status", pa.string(), "running | completed | failed | superseded"),
    ("parent_round", pa.int32(), "round whose model made this round's pseudo labels"),
    ("config_json", pa.string(), "the pipeline config, JSON"),
    ("config_sha256", pa.string(), "sha256 of config_json"),
    ("model_dir", pa.string(), "trained model folder"),
    ("stage_seconds", pa.string(), "JSON: stage -> seconds"),
    ("counts", pa.string(), "JSON: cases per role, selection counts, ..."),
    ("mean_metrics", pa.string(), "JSON: class -> mean DSC / NSD on val cases"),
    ("code_version", pa.string(), "hybridlabel version (and git commit when known)"),
    ("flow_run_id", pa.string(), "Prefect flow-run id"),
    ("started_at", pa.timestamp("us", tz="UTC"), "round start"),
    ("finished_at", pa.timestamp("us", tz="UTC"), "round end"),
    ("superseded_at", pa.timestamp("us", tz="UTC"), "when a rerun moved this round aside"),
]

METRIC_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("case_id", pa.string(), "case"),
    ("round", pa.int32(), "round"),
    ("class_id", pa.int16(), "class id"),
    ("class_name", pa.string(), "class name"),
    ("dsc", pa.float64(), "Dice similarity coefficient"),
    ("nsd", pa.float64(), "normalised surface Dice at the class tolerance"),
    (
        "gt_present",
        pa.bool_(),
        "the class is in the ground truth (FLARE scores an absent class 1 when the "
        "prediction is empty too: means over present classes cannot flatter)",
    ),
    (
        "reference",
        pa.string(),
        "val_gt: the round's model on a val case | train_gt: the round's pseudo label "
        "against a training case's ground truth | holdout_gt: the same on a held-back class",
    ),
]

REVIEW_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("case_id", pa.string(), "case"),
    ("round", pa.int32(), "the round whose hybrid labels were reviewed"),
    ("classes", pa.list_(pa.int16()), "classes the reviewer checked and corrected"),
    ("source", pa.string(), "reviewed"),
    (
        "label_path",
        pa.string(),
        "the case's ground truth from then on: its earlier ground truth with the checked classes as corrected",
    ),
    ("label_sha256", pa.string(), "sha256 of that label"),
    ("corrected_sha256", pa.string(), "sha256 of the file the reviewer saved"),
    ("reviewer", pa.string(), "who (the sidecar's or --reviewer's name)"),
    ("accepted_at", pa.timestamp("us", tz="UTC"), "when `accept` took it"),
]

TABLES: dict[str, list[tuple[str, pa.DataType, str]]] = {
    "cases": CASE_COLUMNS,
    "rounds": ROUND_ROW_COLUMNS,
    "metrics": METRIC_COLUMNS,
    "reviews": REVIEW_COLUMNS,
}
# ground truth a human gave is not a round's output: a rerun of the round keeps it
KEPT_ON_SUPERSEDE = frozenset({"reviews"})
JSON_COLUMNS = {
    "voxel_counts",
    "label_sources",
    "tumors",
    "scores",
    "tumor_objects",
    "stage_seconds",
    "counts",
    "mean_metrics",
    "config_json",
}
ROUND_STATUSES = ("running", "completed", "failed", "superseded")
ROUND_KINDS = ("intake", "teacher", "student", "export")
LABEL_SOURCES = ("gt", "pseudo", "ignore", "none")
# the values each categorical column may hold, checked on every read: a file can be
# intact to its checksums and still say something the code never wrote
ALLOWED_VALUES = {"role": ROLES, "status": ROUND_STATUSES, "kind": ROUND_KINDS}


def value_problem(table: pa.Table, round_no: int) -> str | None:
    """Why the values read back from a round's partition cannot be the registry's, or None."""
    import pyarrow.compute as pc

    if "round" in table.column_names and len(table):
        foreign = set(pc.unique(table["round"]).to_pylist()) - {round_no}
        if foreign:
            return f"round column holds {sorted(foreign, key=str)[:3]} in the partition of round {round_no}"
    for column, allowed in ALLOWED_VALUES.items():
        if column in table.column_names:
            found = set(pc.unique(table[column]).to_pylist()) - set(allowed) - {None}
            if found:
                return f"column {column} holds {sorted(found)[0]!r}, not one of {', '.join(allowed)}"
    if "label_sources" in table.column_names:
        for text in pc.unique(table["label_sources"]).to_pylist():
            if text is not None and (bad := _bad_sources(text)):
                return f"column label_sources holds {bad!r}, not one of {', '.join(LABEL_SOURCES)}"
    return None


def _bad_sources(text: str) -> str | None:
    import json

    try:
        values = json.loads(text)
    except ValueError:
        return text[:40]
    if not isinstance(values, dict):
        return text[:40]
    return next((v for v in values.values() if v not in LABEL_SOURCES), None)


def schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype, _ in TABLES[table]])


def columns(table: str) -> list[str]:
    return [name for name, _, _ in TABLES[table]]
