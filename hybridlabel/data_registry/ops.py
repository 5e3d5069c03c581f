"""Pure operations on registry frames: carry a round's cases into the next round."""

from __future__ import annotations

import pandas as pd

from hybridlabel.data_registry.frames import dumps
from hybridlabel.data_registry.schema import JSON_COLUMNS

# what a round decides anew; everything else (identity, intake) carries over
CASE_DECISION_COLUMNS = (
    "hybrid_label_path",
    "hybrid_label_sha256",
    "label_sources",
    "tumors",
    "scores",
    "tumor_objects",
    "trained",
    "selection",
    "selection_reason",
)


def next_round_cases(previous: pd.DataFrame, round_no: int) -> pd.DataFrame:
    """The previous round's cases with the round number set and round decisions cleared."""
    frame = previous.copy()
    frame["round"] = round_no
    for col in CASE_DECISION_COLUMNS:
        frame[col] = None
    frame["trained"] = False
    return frame


def apply_updates(frame: pd.DataFrame, updates: dict[str, dict]) -> pd.DataFrame:
    """Set per-case values: {case_id: {column: value}}. A round's results belong to the one
    usable row of a case id: a quarantined duplicate of that id (same id given twice in a
    manifest) is never written to. Unknown or ambiguous ids are an error. Values of JSON
    columns may be given as objects: they are stored as JSON text."""
    out = frame.copy()
    ok = out["quarantine_reason"].isna()
    usable_ids = out.loc[ok, "case_id"]
    twice = sorted(set(usable_ids[usable_ids.duplicated()]))
    if twice:
        raise KeyError(f"case ids {twice[:5]} are on more than one usable row; the audit quarantines duplicates")
    index = {cid: i for i, (cid, good) in enumerate(zip(out["case_id"], ok)) if good}
    missing = sorted(set(updates) - set(index))
    if missing:
        raise KeyError(f"cases {missing[:5]} are not usable cases of the round's frame")
    for case_id, values in updates.items():
        for col, value in values.items():
            if col in JSON_COLUMNS and value is not None and not isinstance(value, str):
                value = dumps(value)
            out.at[out.index[index[case_id]], col] = value
    return out
