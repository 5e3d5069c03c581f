"""The rules of a round (pure): which cases the parent predicts, whose pseudo tumour is
kept, which cases train on which label and loss classes, whether the training set needs
nnU-Net's ignore label, and what the round writes back per case.

Frames and records in, lists and records out: the round flows only wire these to tasks.
One training-set rule serves the teacher and every student.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from hybridlabel.models.pseudo_trust import loss_annotated
from hybridlabel.models.selection import select_confident_cases

# what a per-case task needs to know of a case (volumes travel as paths)
CASE_FIELDS = (
    "case_id",
    "role",
    "image_path",
    "image_sha256",
    "label_path",
    "input_label_sha256",
    "annotated_classes",
    "held_out_classes",
)


def usable(frame: pd.DataFrame, roles: Iterable[str]) -> pd.DataFrame:
    """Cases of the given roles that are not quarantined."""
    ok = frame["role"].isin(list(roles)) & frame["quarantine_reason"].isna()
    return frame[ok]


def trained_rows(cases: pd.DataFrame, train: list[dict]) -> pd.Series:
    """Which rows trained: the usable rows of the trained ids, never a quarantined duplicate
    that shares an id with one (a case id is unique among usable rows only)."""
    ids = {c["case_id"] for c in train}
    return cases["case_id"].isin(ids) & cases["quarantine_reason"].isna()


def prediction_set(cases: pd.DataFrame, predict_roles: Iterable[str]) -> list[dict]:
    """The cases the parent predicts this round, by case id."""
    return [
        {k: row.get(k) for k in CASE_FIELDS}
        for row in usable(cases, predict_roles).sort_values("case_id").to_dict("records")
    ]


def case_scorers(todo: list[dict], scorer: str) -> list[tuple[str, ...]]:
    """Per predicted case, the uncertainty scores to compute: entropy always (it is free,
    the probabilities are in memory), the ranking scorer for the unlabeled cases it ranks."""
    return [tuple(sorted({"entropy", scorer})) if c["role"] == "unlabeled" else ("entropy",) for c in todo]


def select_unlabeled(
    todo: list[dict], predictions: Mapping[str, dict], scorer: str, organ_keep, tumor_keep
) -> pd.DataFrame:
    """Rank the predicted unlabeled cases by `scorer` and decide which are kept."""
    unlabeled = [c for c in todo if c["role"] == "unlabeled"]
    if not unlabeled:
        return pd.DataFrame(columns=["case_id", "organ_score", "tumor_score", "organ_rank", "decision", "reason"])
    scores = pd.DataFrame([{"case_id": c["case_id"], **predictions[c["case_id"]]["scores"]} for c in unlabeled])
    if f"organ_{scorer}" not in scores.columns:
        raise ValueError(f"selection scorer {scorer!r} was not computed for the unlabeled cases")
    return select_confident_cases(scores, organ_keep, tumor_keep, f"organ_{scorer}", f"tumor_{scorer}")


def tumor_kept(todo: list[dict], decisions: Mapping[str, str]) -> list[bool]:
    """Per predicted case, whether its pseudo tumour is kept by the merge: always for a
    labeled case (its annotation decides), for an unlabeled case only when selection
    kept its tumour."""
    return [c["role"] != "unlabeled" or decisions.get(c["case_id"]) == "tumor_kept" for c in todo]


def training_set(
    cases: pd.DataFrame,
    train_roles: Iterable[str],
    merged: Mapping[str, dict],
    decisions: Mapping[str, str],
    untrusted: Iterable[int] = (),
) -> tuple[list[dict], dict[str, list[int]]]:
    """The cases that train, with their label, and per case the classes its loss treats as
    annotated. A case the parent predicted trains on its merged label (its ground truth and
    the trusted pseudo classes annotated), except an unlabeled case that selection left
    out; a case it did not predict trains on its own label (its annotated classes), if it
    has one. The teacher is the round with nothing merged."""
    train, annotated = [], {}
    for row in usable(cases, train_roles).sort_values("case_id").to_dict("records"):
        case_id, m = row["case_id"], merged.get(row["case_id"])
        if m is not None:
            if row["role"] == "unlabeled" and decisions.get(case_id) == "sits_out":
                continue
            label, classes = m["train_label"], loss_annotated(m["sources"], untrusted)
        elif isinstance(row.get("label_path"), str):
            label, classes = row["label_path"], _class_list(row.get("annotated_classes"))
        else:
            continue
        train.append({"case_id": case_id, "image_path": row["image_path"], "train_label": label})
        annotated[case_id] = classes
    return train, annotated


def tumor_donors(cases: pd.DataFrame, train: list[dict], merged: Mapping[str, dict], tumor_id: int) -> list[dict]:
    """The training cases whose tumour label is ground truth (CutMix's donors): a merged
    case whose merge took the tumour from its annotation, a case trained on its own label
    that annotates the tumour. Pseudo tumours are never pasted."""
    rows = cases[cases["quarantine_reason"].isna()].set_index("case_id")
    donors = []
    for c in train:
        row, m = rows.loc[c["case_id"]], merged.get(c["case_id"])
        if m is not None:
            gt = {int(k): v for k, v in m["sources"].items()}.get(tumor_id) == "gt"
        else:
            gt = tumor_id in _class_list(row.get("annotated_classes"))
        if gt:
            donors.append({"case_id": c["case_id"], "image_sha256": row.get("image_sha256")})
    return donors


def hidden_tumor(spec, merged: Iterable[dict], label_map) -> list | None:
    """[tumour id, host organs] for the partial-label loss (models/nnunet/losses.py) when a
    round trains the tumour and its budget says tumours not annotated were drawn as their
    organ: the organs the merge attributed ground-truth tumours to, or every organ when no
    ground-truth tumour says where tumours lie."""
    if not (spec.trains_tumor and spec.training.tumor_drawn_as_organ and spec.training.loss != "naive"):
        return None
    tumor = label_map.tumor_id
    organs = [c for c in label_map.labels if c not in (0, tumor)]
    hosts = {  # a tumour outside every organ (attributed to "extra_organ") names no host
        t["organ"]
        for m in merged
        for t in m.get("tumors") or []
        if t.get("source") == "gt" and t.get("organ") in organs
    }
    return [tumor, sorted(hosts) if hosts else organs]


def _class_list(value) -> list[int]:
    # a missing list reads back as None or NaN, a stored one as a list or an array
    return [int(c) for c in value] if isinstance(value, (list, tuple, np.ndarray)) else []


def loss_classes(annotated: dict[str, list[int]], loss: str) -> dict[str, list[int]] | None:
    """What the trainer gets: per-case annotated classes for a partial-label loss; none
    for the naive loss, which trains on the labels as they are."""
    return None if loss == "naive" else annotated


def needs_ignore(merged: Iterable[dict], targets: str, tumor_id: int) -> bool:
    """Whether the training set needs nnU-Net's ignore label: some merged label leaves
    voxels unknown, or an organs-only round meets a tumour it must not learn."""
    return any(m["uses_ignore"] or (targets == "organs" and str(tumor_id) in m["counts"]) for m in merged)


def without_failed_predictions(
    todo: list[dict], preds: list[dict], round_no: int
) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """A case whose prediction failed leaves the round (its error is the quarantine reason,
    so `status` shows it and the next rounds skip it); the others go on: (todo, preds, updates)."""
    failed = {p["case_id"]: p["error"] for p in preds if p.get("error")}
    kept = [(c, p) for c, p in zip(todo, preds) if c["case_id"] not in failed]
    updates = {
        cid: {"role": "quarantined", "quarantine_reason": f"round {round_no}: prediction failed: {why}"}
        for cid, why in failed.items()
    }
    return [c for c, _ in kept], [p for _, p in kept], updates


# the roles whose labels the loop completes: a strong case's hybrid label is its own
COMPLETED_ROLES = ("partial", "tumor_only", "unlabeled")


def complete_label_jobs(
    todo: list[dict], merged: Mapping[str, dict], predictions: Mapping[str, dict]
) -> list[tuple[dict, str, str]]:
    """(case, its hybrid label, the parent's raw prediction) of each predicted case whose
    labels the loop completes, for scoring against complete ground truth."""
    return [
        (c, merged[c["case_id"]]["path"], predictions[c["case_id"]]["path"])
        for c in todo
        if c.get("role") in COMPLETED_ROLES and c["case_id"] in merged
    ]


def case_updates(
    todo: list[dict],
    predictions: Mapping[str, dict],
    merged: Mapping[str, dict],
    selection: pd.DataFrame,
    train: list[dict],
) -> dict[str, dict]:
    """The registry columns a student round sets per case: hybrid label, its sources and
    tumours, uncertainty scores, the selection decision, and whether the case trained."""
    updates = {}
    for c in todo:
        p, m = predictions[c["case_id"]], merged[c["case_id"]]
        updates[c["case_id"]] = {
            "hybrid_label_path": m["path"],
            "hybrid_label_sha256": m["sha256"],
            "label_sources": m["sources"],
            "tumors": m["tumors"],
            "scores": p["scores"],
        }
    for r in selection.to_dict("records"):
        updates[r["case_id"]].update(selection=r["decision"], selection_reason=r["reason"])
    for c in train:
        updates.setdefault(c["case_id"], {})["trained"] = True
    return updates


def training_label_paths(cases: pd.DataFrame) -> list[str]:
    """The label files a round's model learned from: a merged case's hybrid label, else
    its own label."""
    rows = cases[cases["trained"].fillna(False).astype(bool)].sort_values("case_id")
    paths = (
        [p for p in (r.get("hybrid_label_path"), r.get("label_path")) if isinstance(p, str)]
        for r in rows.to_dict("records")
    )
    return [found[0] for found in paths if found]


def apply_reviews(cases: pd.DataFrame, reviews: pd.DataFrame, organ_ids: Iterable[int], tumor_id: int) -> pd.DataFrame:
    """The cases with every accepted review taken as ground truth: a reviewed case's label is
    its latest review's (which holds its earlier ground truth and every class checked before),
    its annotated classes gain the checked ones, and its role is the one its labels now make
    it (an unlabeled case reviewed for the liver is partial). Val and quarantined cases are never reviewed."""
    if reviews is None or not len(reviews):
        return cases
    out = cases.copy()
    if "reviewed_classes" not in out.columns:
        out["reviewed_classes"] = None
    latest = reviews.sort_values(["round", "accepted_at"]).groupby("case_id").tail(1).set_index("case_id")
    checked = reviews.groupby("case_id")["classes"].agg(lambda lists: sorted({int(c) for cl in lists for c in cl}))
    organs = set(organ_ids)
    for i in out.index[out["case_id"].isin(latest.index) & out["quarantine_reason"].isna() & (out["role"] != "val")]:
        case_id = out.at[i, "case_id"]
        classes = checked[case_id]
        annotated = sorted({int(c) for c in (out.at[i, "annotated_classes"] or [])} | set(classes))
        out.at[i, "label_path"] = latest.at[case_id, "label_path"]
        out.at[i, "annotated_classes"] = annotated
        out.at[i, "reviewed_classes"] = classes
        out.at[i, "role"] = (
            "strong" if organs <= set(annotated) else "tumor_only" if annotated == [tumor_id] else "partial"
        )
    return out


def reviewed_count(cases: pd.DataFrame) -> int:
    """Usable cases whose labels hold a reviewer's classes."""
    if "reviewed_classes" not in cases.columns:
        return 0
    ok = cases["quarantine_reason"].isna()
    return int(sum(bool(v is not None and len(v)) for v in cases.loc[ok, "reviewed_classes"]))
