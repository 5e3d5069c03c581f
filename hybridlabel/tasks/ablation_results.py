"""The ablation's results: one row per arm, seed (and round of the rounds arm), read from
each arm's registry; the table of means and spreads over seeds; written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hybridlabel.data_registry.store import Registry
from hybridlabel.models.config import PipelineConfig
from hybridlabel.models.metric_summary import organ_means, tumor_detection
from hybridlabel.tasks.files.atomic import atomic_write_parquet

ABLATION_FILE = "ablation.parquet"


def _trained_iterations(rounds: list[dict], round_no: int) -> int:
    """Iterations behind a round's model: its own, and its parents' while it started from them
    (the budget: a time cap can end a training sooner)."""
    total = 0
    for spec in reversed(rounds[: round_no + 1]):
        total += int(spec["training"]["epochs"]) * int(spec["training"]["iterations_per_epoch"])
        if not spec["training"].get("init_from_parent"):
            break
    return total


def _detection(val: pd.DataFrame, tumor_id: int) -> dict:
    """Tumours found (% of val cases with one) and tumour-free val cases given a tumour (%)."""
    found = tumor_detection(val, tumor_id)
    return {
        "tumor_found_pct": 100 * found["found"] / found["with_tumor"] if found.get("with_tumor") else np.nan,
        "tumor_false_alarm_pct": (
            100 * found["false_alarms"] / found["without_tumor"] if found.get("without_tumor") else np.nan
        ),
    }


def _organ_present(metrics: pd.DataFrame, reference: str, organ_ids) -> float:
    """Organ DSC over the classes present, mean over cases, of one reference (NaN without it)."""
    rows = metrics[metrics["reference"] == reference]
    per_case = organ_means(rows, organ_ids, ["case_id"], present_only=True) if len(rows) else rows
    return float(per_case["dsc"].mean()) if len(per_case) else np.nan


def _row(reg: Registry, round_no: int, arm: str, seed: int, config: PipelineConfig) -> dict | None:
    if not reg.is_complete(round_no):
        return None
    row = reg.round_row(round_no, decoded=True)
    metrics = reg.read("metrics", round_no)
    val = metrics[metrics["reference"] == "val_gt"]
    if val.empty:
        return None
    labels = config.label_map
    per_case = organ_means(val, labels.organ_ids, ["case_id"])
    present = organ_means(val, labels.organ_ids, ["case_id"], present_only=True)
    tumor = val[val["class_id"] == labels.tumor_id]
    tumor_present = tumor[tumor["gt_present"].fillna(False).astype(bool)] if "gt_present" in tumor else tumor
    rounds = row["config_json"]["rounds"]
    training = rounds[round_no]["training"]
    stages = row["stage_seconds"] or {}
    return {
        "arm": arm,
        "seed": seed,
        "round": round_no,
        "name": row["name"],
        "organ_dsc": float(per_case["dsc"].mean()),
        "organ_nsd": float(per_case["nsd"].mean()),
        "organ_dsc_present": float(present["dsc"].mean()) if len(present) else np.nan,
        "tumor_dsc": float(tumor["dsc"].mean()) if len(tumor) else np.nan,
        "tumor_nsd": float(tumor["nsd"].mean()) if len(tumor) else np.nan,
        # FLARE's rule scores a case without a tumour 1 when nothing is predicted: over the cases
        # that have one, the same Dice says how well tumours are found
        "tumor_dsc_present": float(tumor_present["dsc"].mean()) if len(tumor_present) else np.nan,
        "tumor_nsd_present": float(tumor_present["nsd"].mean()) if len(tumor_present) else np.nan,
        "class_dsc": json.dumps({n: round(float(g["dsc"].mean()), 4) for n, g in val.groupby("class_name")}),
        # the complete labels of partial and unlabeled cases (hybrid, and the parent's raw predictions)
        **_detection(val, labels.tumor_id),
        "labels_dsc_present": _organ_present(metrics, "complete_hybrid", labels.organ_ids),
        "raw_labels_dsc_present": _organ_present(metrics, "complete_raw", labels.organ_ids),
        "iterations": int(training["epochs"]) * int(training["iterations_per_epoch"]),
        "trained_iterations": _trained_iterations(rounds, round_no),
        "network": training["network"],
        "loss": training["loss"],
        "train_minutes": float(stages.get("train", np.nan)) / 60,
        "val_cases": int(val["case_id"].nunique()),
    }


def collect_arms(work: Path, arms: list[str], seeds: list[int], config: PipelineConfig) -> pd.DataFrame:
    """Rows of every completed arm / seed (the teacher arm read from the rounds arm's round 0
    when both ran); incomplete arms are left out."""
    rows = []
    for seed in seeds:
        for arm in arms:
            if arm == "teacher" and "rounds" in arms:
                source, rounds = "rounds", [0]
            elif arm == "rounds":
                source, rounds = "rounds", range(1 if "teacher" in arms else 0, len(config.rounds))
            elif arm == "cutmix":  # its rounds before the first tumour round are the rounds arm's
                first = next((i for i, r in enumerate(config.rounds) if r.trains_tumor), len(config.rounds))
                source, rounds = "cutmix", range(first, len(config.rounds))
            else:
                source, rounds = arm, [0]
            reg = Registry(Path(work) / "arms" / f"{source}-s{seed}")
            for r in rounds:
                label = {"rounds": f"round {r}", "cutmix": f"cutmix round {r}"}.get(arm, arm)
                if (row := _row(reg, r, label, seed, config)) is not None:
                    rows.append(row)
    return pd.DataFrame(rows)


def ablation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows = arms and rounds (in run order); mean and SD over seeds of organ DSC / NSD,
    tumour DSC / NSD, train minutes; the seeds and the budget."""
    out = []
    for arm, group in rows.groupby("arm", sort=False):
        rec = {
            "arm": arm,
            "seeds": int(group["seed"].nunique()),
            "iterations": int(group["iterations"].iloc[0]),
            "trained_iterations": int(group.get("trained_iterations", group["iterations"]).iloc[0]),
        }
        for col in (
            "organ_dsc",
            "organ_dsc_present",
            "organ_nsd",
            "tumor_dsc",
            "tumor_nsd",
            "tumor_dsc_present",
            "tumor_nsd_present",
            "tumor_found_pct",
            "tumor_false_alarm_pct",
            "labels_dsc_present",
            "raw_labels_dsc_present",
            "train_minutes",
        ):
            if col not in group:  # rows written before the column existed
                continue
            rec[f"{col}_mean"] = float(group[col].mean())
            rec[f"{col}_sd"] = float(group[col].std(ddof=0)) if group[col].notna().any() else np.nan
        classes = pd.DataFrame([json.loads(t) for t in group["class_dsc"]]).mean()
        rec.update({f"dsc:{k}": float(v) for k, v in classes.items()})
        out.append(rec)
    return pd.DataFrame(out)


def merge_rows(earlier: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """The table after a run: its rows, and the earlier runs' rows of every (arm, seed) it
    did not collect, so `--seeds 3` after `--seeds 1,2` gives a table over 3 seeds."""
    if earlier is None or earlier.empty:
        return new
    if new.empty:
        return earlier
    ran = pd.MultiIndex.from_frame(new[["arm", "seed"]])
    kept = earlier[~pd.MultiIndex.from_frame(earlier[["arm", "seed"]]).isin(ran)]
    return pd.concat([kept, new], ignore_index=True).sort_values("seed", kind="stable", ignore_index=True)


def write_ablation(work: Path, rows: pd.DataFrame) -> Path:
    return atomic_write_parquet(Path(work) / ABLATION_FILE, rows)


def read_ablation(work: Path) -> pd.DataFrame | None:
    path = Path(work) / ABLATION_FILE
    return pd.read_parquet(path) if path.is_file() else None
