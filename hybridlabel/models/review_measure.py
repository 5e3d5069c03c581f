"""How good a review ranking is, where complete ground truth exists (pure): the complete
labels' quality after a simulated reviewer replaced the checked classes by the truth, and
the rank correlation between review scores and the labels' actual error."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def label_quality(
    records: pd.DataFrame,
    organ_ids: Iterable[int],
    fixed: set[tuple[str, int]] = frozenset(),
    cases: Iterable[str] | None = None,
) -> float:
    """The complete labels' organ DSC over the classes present (mean over cases of each
    case's mean), with every (case, class) in `fixed` reviewed to the truth (DSC 1)."""
    organs = records[records["class_id"].isin(list(organ_ids)) & records["gt_present"].fillna(True).astype(bool)]
    if cases is not None:
        organs = organs[organs["case_id"].isin(list(cases))]
    if organs.empty:
        return math.nan
    dsc = [1.0 if (c, int(k)) in fixed else d for c, k, d in zip(organs["case_id"], organs["class_id"], organs["dsc"])]
    return float(pd.Series(dsc, index=organs.index).groupby(organs["case_id"]).mean().mean())


def whole_cases(records: pd.DataFrame, case_ids: Iterable[str], pseudo: Mapping[str, Iterable[int]]) -> set:
    """Every pseudo-labelled class of the given cases: what reviewing a whole case fixes."""
    return {(c, int(k)) for c in case_ids for k in pseudo.get(c, ())}


def random_gain(records: pd.DataFrame, organ_ids, pseudo: Mapping[str, Iterable[int]], k: int) -> float:
    """The expected gain of reviewing `k` whole cases drawn at random (exact: each case is
    drawn with probability k / n, and the quality is a mean over cases)."""
    ids = sorted(pseudo)
    base = label_quality(records, organ_ids, cases=ids)
    gains = [label_quality(records, organ_ids, whole_cases(records, [c], pseudo), cases=ids) - base for c in ids]
    return float(np.sum(gains) * k / len(ids)) if ids else math.nan


def case_errors(records: pd.DataFrame, organ_ids, pseudo: Mapping[str, Iterable[int]]) -> pd.Series:
    """Per case, 1 - the mean DSC of its pseudo-labelled organ classes (present in the truth
    or predicted): the error a reviewer of the case would fix."""
    rows = records[records["class_id"].isin(list(organ_ids))]
    keep = [int(k) in set(map(int, pseudo.get(c, ()))) for c, k in zip(rows["case_id"], rows["class_id"])]
    rows = rows[keep]
    return 1.0 - rows.groupby("case_id")["dsc"].mean()


def rank_correlation(scores: Mapping, errors: Mapping) -> float:
    """Spearman's rho between scores and errors over the keys both hold."""
    keys = sorted(set(scores) & set(errors))
    if len(keys) < 3:
        return math.nan
    rho = spearmanr([scores[k] for k in keys], [errors[k] for k in keys]).statistic
    return float(rho)
