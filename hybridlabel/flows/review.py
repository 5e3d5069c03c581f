"""The review queue: rank a completed round's pseudo-labelled cases and write the folder a
reviewer works in (`review`); take the corrected labels back as ground truth (`accept`).
Plain functions: the CLI calls them, and the pipeline's gate calls them inside its flow."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from hybridlabel.data_registry.frames import records
from hybridlabel.data_registry.store import Registry
from hybridlabel.models.config import PipelineConfig, load_config
from hybridlabel.models.review_rank import rank_cases, top_of
from hybridlabel.tasks.files.imageio import IMAGE_SUFFIXES, sha256_path, strip_suffix
from hybridlabel.tasks.review.accept import ReviewError, accept_correction, checked_classes
from hybridlabel.tasks.review.evidence import case_evidence, ground_truth_reference
from hybridlabel.tasks.review.worklist import write_review_folder
from hybridlabel.tasks.workdir import Layout, WorkdirLock

LABELLED_ROLES = ("strong", "partial", "tumor_only")


def review_dir(workdir: Path, round_no: int) -> Path:
    return Path(workdir) / "review" / f"round-{round_no:03d}"


def _round_cases(workdir: Path, round_no: int) -> pd.DataFrame:
    reg = Registry(workdir)
    row = reg.round_row(round_no)
    if not row or not reg.is_complete(round_no):
        raise ReviewError(f"round {round_no} is not a completed round of {workdir}; `hybridlabel status` lists them")
    if row.get("kind") != "student":
        raise ReviewError(
            f"round {round_no} is the {row.get('kind')}: it wrote no pseudo labels; review a student round (1 or later)"
        )
    return reg.read("cases", round_no)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{**r, "label_sources": r["label_sources"] or {}, "scores": r["scores"] or {}} for r in records(frame)]


def rank_round(
    workdir: Path,
    round_no: int,
    classes: str | list | None = None,
    config: PipelineConfig | None = None,
    on_case: Callable[[], None] | None = None,
) -> dict:
    """Round `round_no`'s review: {ranked: every pseudo-labelled case, worst first; cases:
    their registry records by id; findings: the round's systematic flags}. `classes`: rank
    only these (ids or names)."""
    workdir = Path(workdir)
    config = config or load_config(Layout(workdir).config)
    only = checked_classes(classes, config.label_map) if classes else None
    cases = _round_cases(workdir, round_no)
    records = _records(cases[cases["quarantine_reason"].isna()])
    pseudo = [
        r
        for r in records
        if r["role"] != "val"
        and isinstance(r.get("hybrid_label_path"), str)
        and "pseudo" in r["label_sources"].values()
    ]
    labelled = [
        r
        for r in records
        if r["role"] in LABELLED_ROLES
        and isinstance(r.get("label_path"), str)
        and list(r.get("annotated_classes") or [])
    ]
    predictions = Layout(workdir).step_dir(round_no, "predict")
    ignore = config.label_map.ignore_id
    parent_trains_tumor = round_no - 1 < len(config.rounds) and config.rounds[round_no - 1].trains_tumor
    predictable = list(config.label_map.organ_ids) + ([config.label_map.tumor_id] if parent_trains_tumor else [])

    def evidence(case: dict) -> dict:
        found = case_evidence(case, predictions / f"{case['case_id']}.nii.gz", ignore, predictable)
        if on_case:
            on_case()
        return found

    # one case after another: a run of this ranking with a thread pool died once in ~20 with
    # "double free or corruption" inside a native library (not reproduced since); at FLARE
    # size a case takes ~1 s, so 2,200 cases take most of an hour
    reference = ground_truth_reference(labelled)
    found = [evidence(case) for case in pseudo]
    ranked, findings = rank_cases(
        found, reference, config.review.weights, config.label_map.labels, config.label_map.tumor_id, only
    )
    return {"ranked": ranked, "cases": {r["case_id"]: r for r in pseudo}, "findings": findings}


def review_round(
    workdir: Path,
    round_no: int,
    top: int | None = None,
    fraction: float | None = None,
    classes: str | list | None = None,
    config: PipelineConfig | None = None,
    on_case: Callable[[], None] | None = None,
) -> dict:
    """Rank round `round_no`'s pseudo-labelled cases and write `W/review/round-NNN/` with the
    `top` worst, or the worst `fraction` (default: the config's). Returns {folder, worklist,
    queue (the rows written), ranked (every ranked row), findings}."""
    workdir = Path(workdir)
    config = config or load_config(Layout(workdir).config)
    found = rank_round(workdir, round_no, classes, config, on_case)
    queue = top_of(
        found["ranked"], top, fraction if fraction is not None or top is not None else config.review.fraction
    )
    folder = review_dir(workdir, round_no)
    worklist = write_review_folder(
        folder,
        queue,
        found["cases"],
        Layout(workdir).step_dir(round_no, "predict"),
        config.label_map.labels,
        found["findings"],
    )
    return {
        "folder": folder,
        "worklist": worklist,
        "queue": queue,
        "ranked": found["ranked"],
        "findings": found["findings"],
    }


def corrected_files(folder: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((folder / "corrected").iterdir()) if (folder / "corrected").is_dir() else []:
        if path.is_file() and any(path.name.lower().endswith(s) for s in IMAGE_SUFFIXES):
            found[strip_suffix(path)] = path
    return found


def _declared(folder: Path, case_id: str, worklist: dict[str, str]) -> tuple[object, str | None]:
    sidecar = folder / "corrected" / f"{case_id}.json"
    if sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReviewError(f"sidecar {sidecar.name} is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ReviewError(f'sidecar {sidecar.name} must be an object: {{"classes": [...], "reviewer": ...}}')
        return data.get("classes"), data.get("reviewer")
    if case_id not in worklist:
        raise ReviewError(f"{case_id} is not in the worklist; declare its checked classes in corrected/{case_id}.json")
    return worklist[case_id], None


def accept_round(
    workdir: Path, round_no: int, reviewer: str | None = None, config: PipelineConfig | None = None
) -> dict:
    """Take `W/review/round-NNN/corrected/*` back. Each file is checked on its own; a refused
    one is named with its reason and changes nothing. Accepted files become reviews in the
    registry (ground truth from the next round on, or a rerun of this one).
    Returns {accepted: [case ids], refused: [(case id, why)], unchanged: [case ids]}."""
    workdir = Path(workdir)
    folder = review_dir(workdir, round_no)
    worklist_path = folder / "worklist.csv"
    if not worklist_path.is_file():
        raise ReviewError(f"{folder} holds no worklist; write one with `hybridlabel review --round {round_no}`")
    with WorkdirLock(workdir):
        config = config or load_config(Layout(workdir).config)
        cases = {
            r["case_id"]: r for r in _records(_round_cases(workdir, round_no)) if r.get("quarantine_reason") is None
        }
        table = pd.read_csv(worklist_path, dtype=str, keep_default_na=False)
        if not {"case_id", "classes"} <= set(table.columns):
            raise ReviewError(
                f"{worklist_path} lacks its case_id or classes column; write it again with "
                f"`hybridlabel review --round {round_no}` (corrected/ is kept)"
            )
        worklist = dict(table[["case_id", "classes"]].values)
        reg = Registry(workdir)
        earlier = reg.read_if_present("reviews", round_no)
        taken = set() if earlier is None else set(zip(earlier["case_id"], earlier["corrected_sha256"]))
        accepted, refused, unchanged, rows = [], [], [], []
        for case_id, path in corrected_files(folder).items():
            try:
                if case_id not in cases:
                    raise ReviewError(f"no case {case_id!r} in round {round_no}; name the file <case_id>.nii.gz")
                declared, named = _declared(folder, case_id, worklist)
                classes = checked_classes(declared, config.label_map)
                if (case_id, sha256_path(path)) in taken:
                    unchanged.append(case_id)
                    continue
                written = accept_correction(path, cases[case_id], classes, config.label_map, folder / "accepted")
            except ReviewError as exc:
                refused.append((case_id, f"{path.name}: {exc}"))
                continue
            rows.append(
                {
                    "case_id": case_id,
                    "round": round_no,
                    "classes": classes,
                    "source": "reviewed",
                    "reviewer": named or reviewer,
                    "accepted_at": datetime.now(timezone.utc),
                    **written,
                }
            )
            accepted.append(case_id)
        if rows:
            new = pd.DataFrame(rows)
            reg.write_partition(
                "reviews", round_no, new if earlier is None else pd.concat([earlier, new], ignore_index=True)
            )
    return {"accepted": accepted, "refused": refused, "unchanged": unchanged}
