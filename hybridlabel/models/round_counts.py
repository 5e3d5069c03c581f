"""What a round's cases add up to (pure): cases per class and label source, tumours per
organ. The Prefect summary and the HTML report both render these counts."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def label_source_counts(case_records: Iterable[dict]) -> pd.DataFrame:
    """Cases per (class, label source) over decoded case rows (`label_sources`: class ->
    source); background left out."""
    rows = [
        {"class_id": int(c), "source": s}
        for r in case_records
        for c, s in (r.get("label_sources") or {}).items()
        if c != "0"
    ]
    if not rows:
        return pd.DataFrame(columns=["class_id", "source", "cases"])
    return pd.DataFrame(rows).groupby(["class_id", "source"]).size().rename("cases").reset_index()


def tumor_organ_counts(tumors: Iterable[dict], labels: dict) -> pd.DataFrame:
    """Kept tumours per organ they were attributed to, by the organ's name (an id the label
    map does not name, or a reason the merge recorded instead of an organ, as it is)."""
    organs = [
        labels.get(t.get("organ"), str(t.get("organ"))) if isinstance(t.get("organ"), int) else str(t.get("organ"))
        for t in tumors
        if t.get("kept", True)
    ]
    if not organs:
        return pd.DataFrame(columns=["organ", "tumours"])
    return pd.Series(organs, name="organ").value_counts(sort=False).rename("tumours").reset_index()
