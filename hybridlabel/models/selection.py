"""Selection of confident unlabeled cases (pure): organ_keep, then tumor_keep.

Lower uncertainty = more confident. Ties break by case id, so the result never
depends on input order. Every case gets a decision and a reason with its rank and
the cut-off score.
"""

from __future__ import annotations

import math

import pandas as pd


def keep_count(keep: int | float, n: int) -> int:
    """A count (int) or a fraction (float in [0, 1]) of n cases -> how many to keep."""
    if isinstance(keep, float):
        return min(n, int(math.floor(keep * n + 0.5)))
    return min(n, int(keep))


def select_confident_cases(
    scores: pd.DataFrame,
    organ_keep: int | float,
    tumor_keep: int | float,
    organ_score: str = "organ_entropy",
    tumor_score: str = "tumor_entropy",
) -> pd.DataFrame:
    """Decision per case: `tumor_kept` (organ and tumour pseudo labels), `organ_kept`
    (tumour gets the fallback) or `sits_out` (re-scored next round)."""
    for col in ("case_id", organ_score, tumor_score):
        if col not in scores.columns:
            raise ValueError(f"scores lack column {col!r}; have {list(scores.columns)}")
    if scores["case_id"].duplicated().any():
        raise ValueError("scores hold duplicate case ids")
    if scores[[organ_score, tumor_score]].isna().any().any():
        raise ValueError(f"scores hold missing values in {organ_score!r} or {tumor_score!r}")
    n = len(scores)
    ranked = scores.sort_values([organ_score, "case_id"], kind="mergesort").reset_index(drop=True)
    k = keep_count(organ_keep, n)
    organ_cut = float(ranked[organ_score].iloc[k - 1]) if k else None
    kept = ranked.iloc[:k].sort_values([tumor_score, "case_id"], kind="mergesort")
    m = keep_count(tumor_keep, k)
    tumor_ids = set(kept["case_id"].iloc[:m])
    tumor_cut = float(kept[tumor_score].iloc[m - 1]) if m else None
    tumor_rank = {cid: i + 1 for i, cid in enumerate(kept["case_id"])}
    rows = []
    for i, row in ranked.iterrows():
        cid, rank = row["case_id"], i + 1
        organ_why = f"{organ_score} {row[organ_score]:.4f} ranks {rank}/{n}; kept {k} (cut-off {_fmt(organ_cut)})"
        if rank > k:
            decision, reason = "sits_out", organ_why
        elif cid in tumor_ids:
            decision = "tumor_kept"
            tumor_why = f"{tumor_score} {row[tumor_score]:.4f} ranks {tumor_rank[cid]}/{k}, tumour kept for {m}"
            reason = f"{organ_why}; {tumor_why} (cut-off {_fmt(tumor_cut)})"
        else:
            decision = "organ_kept"
            tumor_why = f"{tumor_score} {row[tumor_score]:.4f} ranks {tumor_rank[cid]}/{k}, tumour kept for {m}"
            reason = f"{organ_why}; {tumor_why}: tumour falls back"
        rows.append(
            {
                "case_id": cid,
                "organ_score": float(row[organ_score]),
                "tumor_score": float(row[tumor_score]),
                "organ_rank": rank,
                "decision": decision,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=["case_id", "organ_score", "tumor_score", "organ_rank", "decision", "reason"])


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"
