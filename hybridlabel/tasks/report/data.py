"""What the report shows, gathered from a workdir's registry (small frames, no volumes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hybridlabel.data_registry.frames import decoded, records
from hybridlabel.data_registry.schema import JSON_COLUMNS
from hybridlabel.data_registry.store import Registry
from hybridlabel.models.round_counts import label_source_counts, tumor_organ_counts
from hybridlabel.tasks.workdir import Layout


@dataclass
class ReportData:
    workdir: Path
    rounds: pd.DataFrame  # active rounds rows (JSON columns parsed)
    metrics: pd.DataFrame  # metrics rows of the active rounds
    sources: pd.DataFrame  # round, class_id, source, cases
    scores: pd.DataFrame  # round, case_id, organ_score, tumor_score, decision
    tumors: pd.DataFrame  # round, organ, tumours
    stages: pd.DataFrame  # round, stage, seconds
    cases: pd.DataFrame  # the last round's cases
    labels: dict[int, str]
    tumor_id: int
    scorer: str
    learned_floor: float = 0.5  # evaluation.learned_floor of the config the rounds ran with


def _config(rounds: pd.DataFrame) -> dict:
    return next((c for c in reversed(rounds.get("config_json", pd.Series(dtype=object)).tolist()) if c), {})


def _per_round(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def collect(workdir: Path) -> ReportData:
    reg = Registry(Path(workdir))
    rounds = decoded(reg.rounds())
    if rounds.empty:
        raise FileNotFoundError(f"{workdir} has no rounds in its registry; run the pipeline first")
    config = _config(rounds)
    label_map = config.get("label_map", {})
    labels = {int(k): v for k, v in (label_map.get("labels") or {}).items()}
    tumor_id = int(label_map.get("tumor_id", 14))
    scorer = (config.get("selection") or {}).get("scorer", "entropy")
    floor = float((config.get("evaluation") or {}).get("learned_floor", 0.5))
    for col in sorted(JSON_COLUMNS & set(rounds.columns) - {"config_json"}):
        rounds[col] = [v if v is not None else {} for v in rounds[col]]
    live = [int(r) for r in rounds["round"]]
    metrics = reg.read_all("metrics")
    metrics = metrics[metrics["round"].astype(int).isin(live)] if len(metrics) else metrics

    source_rows, score_rows, tumor_rows, last_cases = [], [], [], pd.DataFrame()
    exports = {int(r) for r, k in zip(rounds["round"], rounds["kind"]) if k == "export"}
    for r in live:
        cases = reg.read_if_present("cases", r)  # a damaged partition raises: the report must not hide it
        if cases is None:  # a round still running has none yet
            continue
        last_cases = cases
        if r in exports:  # the export's cases are the last round's: no sources, selection or tumours of its own
            continue
        rows = records(cases)
        source_rows.append(label_source_counts(rows).assign(round=r))
        tumor_rows.append(
            tumor_organ_counts([t for row in rows for t in row.get("tumors") or []], labels).assign(round=r)
        )
        for row in rows:
            scores = row.get("scores") or {}
            if row.get("role") == "unlabeled" and f"organ_{scorer}" in scores:
                score_rows.append(
                    {
                        "round": r,
                        "case_id": row["case_id"],
                        "organ_score": scores[f"organ_{scorer}"],
                        "tumor_score": scores.get(f"tumor_{scorer}"),
                        "decision": row.get("selection"),
                    }
                )
    sources = _per_round(source_rows, ["round", "class_id", "source", "cases"])
    tumors = _per_round(tumor_rows, ["round", "organ", "tumours"])
    stages = pd.DataFrame(
        [
            {"round": int(row["round"]), "stage": stage, "seconds": float(sec)}
            for row in rounds.to_dict("records")
            for stage, sec in row["stage_seconds"].items()
        ],
        columns=["round", "stage", "seconds"],
    )
    return ReportData(
        Path(workdir),
        rounds,
        metrics,
        sources,
        pd.DataFrame(score_rows, columns=["round", "case_id", "organ_score", "tumor_score", "decision"]),
        tumors,
        stages,
        last_cases,
        labels,
        tumor_id,
        scorer,
        floor,
    )


def slice_cases(data: ReportData, n: int) -> list[tuple[int, str, Path, Path, Path]]:
    """(round, case id, image, ground truth, prediction) of up to n val cases per round
    whose val prediction is on disk."""
    val = data.cases[(data.cases["role"] == "val") & data.cases["label_path"].notna()].sort_values("case_id")
    out = []
    for r in [int(x) for x in data.rounds["round"]]:
        for row in val.head(n).to_dict("records"):
            pred = Layout(data.workdir).step_dir(r, "val") / f"{row['case_id']}.nii.gz"
            if pred.is_file():
                out.append((r, row["case_id"], Path(row["image_path"]), Path(row["label_path"]), pred))
    return out


def cutmix_examples(data: ReportData) -> list[tuple[str, list[dict]]]:
    """(round label, examples) of every round whose training kept CutMix patches (the
    image, the label and the pasted box as the network got them)."""
    import numpy as np

    from hybridlabel.models.cutmix import EXAMPLES_FILE
    from hybridlabel.models.nnunet.identity import checkpoint_path

    out = []
    for row in data.rounds.to_dict("records"):
        if row.get("kind") == "export" or not isinstance(row.get("model_dir"), str):
            continue
        path = checkpoint_path(row["model_dir"]).parent / EXAMPLES_FILE
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as arrays:
            n = len([k for k in arrays.files if k.startswith("box_")])
            examples = [{k: arrays[f"{k}_{i}"] for k in ("image", "label", "box")} for i in range(n)]
        out.append((f"r{int(row['round'])} {row.get('name')}", examples))
    return out
