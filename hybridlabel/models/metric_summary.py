"""Result tables from per-case, per-class metric records, as the papers print them:
mean and standard deviation per class, the organ mean and the tumour (pure pandas).

`organ mean` is FLARE's figure (every organ class scored, an absent class counting 1
when the prediction is empty too); `organ mean (present)` averages only the organ classes
present in each case's ground truth, and is the one to judge learning by."""

from __future__ import annotations

import numpy as np
import pandas as pd

ORGAN_MEAN = "organ mean"
ORGAN_MEAN_PRESENT = "organ mean (present)"
TUMOR = "tumor"
SUMMARY_ROWS = (ORGAN_MEAN, ORGAN_MEAN_PRESENT, TUMOR)


def organ_means(records: pd.DataFrame, organ_ids, by: list[str], present_only: bool = False) -> pd.DataFrame:
    """Per group (e.g. case, or round and case): the mean DSC / NSD over the organ classes
    scored (or over those present in the ground truth)."""
    organs = records[records["class_id"].isin(list(organ_ids))]
    if present_only:
        organs = organs[_present(organs)]
    return organs.groupby(by, as_index=False)[["dsc", "nsd"]].mean()


def _present(records: pd.DataFrame) -> pd.Series:
    if "gt_present" not in records.columns:  # records written before the column existed
        return pd.Series(True, index=records.index)
    return records["gt_present"].fillna(True).astype(bool)


def tumor_detection(records: pd.DataFrame, tumor_id: int) -> dict[str, int]:
    """Tumours found and false alarms per case, read off the tumour's FLARE scores: where the
    truth holds a tumour it is found when DSC > 0 (the prediction overlaps it); where it holds
    none, a DSC below 1 means the prediction holds one (both empty score 1, one empty 0)."""
    rows = records[records["class_id"] == tumor_id]
    if rows.empty or "gt_present" not in rows.columns:
        return {}
    present = rows["gt_present"].fillna(True).astype(bool)
    with_tumor, without = rows[present], rows[~present]
    return {
        "with_tumor": int(len(with_tumor)),
        "found": int((with_tumor["dsc"] > 0).sum()),
        "without_tumor": int(len(without)),
        "false_alarms": int((without["dsc"] < 1).sum()),
    }


def detection_text(found: dict[str, int]) -> str:
    """`tumours found in 2 of 3 cases with one; 1 of 4 tumour-free cases given a tumour`."""
    parts = []
    if found.get("with_tumor"):
        parts.append(f"tumours found in {found['found']} of {found['with_tumor']} cases with one")
    if found.get("without_tumor"):
        parts.append(f"{found['false_alarms']} of {found['without_tumor']} tumour-free cases given a tumour")
    return "; ".join(parts)


def summary_table(records: pd.DataFrame, organ_ids, tumor_id: int) -> pd.DataFrame:
    """One row per class (in id order), then `organ mean` (mean over cases of each case's
    organ mean) and `tumor`: cases, dsc_mean, dsc_std, nsd_mean, nsd_std."""
    cols = ["class", "cases", "dsc_mean", "dsc_std", "nsd_mean", "nsd_std"]
    if records.empty:
        return pd.DataFrame(columns=cols)

    def stats(frame: pd.DataFrame, name: str) -> dict:
        return {
            "class": name,
            "cases": int(len(frame)),
            "dsc_mean": float(frame["dsc"].mean()),
            "dsc_std": float(frame["dsc"].std(ddof=0)),
            "nsd_mean": float(frame["nsd"].mean()),
            "nsd_std": float(frame["nsd"].std(ddof=0)),
        }

    rows = [
        stats(group, str(group["class_name"].iloc[0]))
        for cls, group in sorted(records.groupby("class_id"), key=lambda kv: kv[0])
        if cls != tumor_id
    ]
    per_case = organ_means(records, organ_ids, ["case_id"])
    if len(per_case):
        rows.append(stats(per_case, ORGAN_MEAN))
    present = organ_means(records, organ_ids, ["case_id"], present_only=True)
    if len(present):
        rows.append(stats(present, ORGAN_MEAN_PRESENT))
    tumor = records[records["class_id"] == tumor_id]
    if len(tumor):
        rows.append(stats(tumor, TUMOR))
    return pd.DataFrame(rows, columns=cols)


def rounds_by_class(
    metrics: pd.DataFrame, organ_ids, tumor_id: int, reference: str = "val_gt", value: str = "dsc"
) -> pd.DataFrame:
    """Rounds x classes of the mean `value` over cases with this reference, plus the organ
    mean and the tumour columns: the papers' ablation table."""
    frame = metrics[metrics["reference"] == reference]
    if frame.empty:
        return pd.DataFrame()
    organs = frame[frame["class_id"] != tumor_id]
    table = organs.pivot_table(index="round", columns="class_name", values=value, aggfunc="mean")
    order = (organs.drop_duplicates("class_id").sort_values("class_id")["class_name"]).tolist()
    table = table[[c for c in order if c in table.columns]]
    per_case = organ_means(frame, organ_ids, ["round", "case_id"])
    table[ORGAN_MEAN] = per_case.groupby("round")[value].mean() if len(per_case) else np.nan
    present = organ_means(frame, organ_ids, ["round", "case_id"], present_only=True)
    table[ORGAN_MEAN_PRESENT] = present.groupby("round")[value].mean() if len(present) else np.nan
    tumor = frame[frame["class_id"] == tumor_id]
    if len(tumor):
        table[TUMOR] = tumor.groupby("round")[value].mean()
    return table


def mean_metrics(records: pd.DataFrame, organ_ids, tumor_id: int) -> dict:
    """The rounds row's `mean_metrics`: class name -> {dsc, nsd} means, plus organ mean / tumour."""
    table = summary_table(records, organ_ids, tumor_id)
    return {
        r["class"]: {"dsc": round(r["dsc_mean"], 4), "nsd": round(r["nsd_mean"], 4), "cases": r["cases"]}
        for r in table.to_dict("records")
    }


def short_class_name(name: str) -> str:
    """Narrow column headers: right_adrenal_gland -> r_adrenal, inferior_vena_cava -> ivc."""
    return (
        name.replace("_gland", "").replace("inferior_vena_cava", "ivc").replace("right_", "r_").replace("left_", "l_")
    )
