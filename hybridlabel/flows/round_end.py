"""How every round ends, teacher, student and export alike: its registry partitions
committed (only then is it complete), its line emitted to the terminal, its summary
published as Prefect artifacts."""

from __future__ import annotations

import pandas as pd

from hybridlabel.data_registry.store import Registry
from hybridlabel.flows.dashboard import publish_round
from hybridlabel.tasks.events import emit


def finish_round(
    reg: Registry,
    round_no: int,
    cases: pd.DataFrame,
    row: dict,
    metrics: pd.DataFrame | None,
    line: str,
    summary: str,
    selection: pd.DataFrame | None = None,
) -> None:
    reg.commit_round(round_no, cases, row, metrics=metrics)
    emit("done", line)
    publish_round(round_no, summary, selection, metrics)


def round_means(reg: Registry, round_no: int) -> dict:
    """A committed round's mean metrics ({} when it has none)."""
    return (reg.round_row(round_no, decoded=True) or {}).get("mean_metrics") or {}
