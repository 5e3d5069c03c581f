"""What the CLI shows: rich tables of audits and rounds (presentation only)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

from hybridlabel.models.metric_summary import SUMMARY_ROWS

ROLE_STYLE = {"quarantined": "bold red", "val": "cyan", "strong": "green"}


def audit_table(cases: pd.DataFrame) -> Table:
    table = Table(title=f"intake audit: {len(cases)} cases")
    for col in ("case", "role", "annotated", "spacing (mm)", "shape", "resampled", "quarantine reason"):
        table.add_column(col, overflow="fold")
    for row in cases.to_dict("records"):
        spacing = row.get("spacing")
        shape = row.get("shape")
        table.add_row(
            str(row["case_id"]),
            f"[{ROLE_STYLE.get(row['role'], '')}]{row['role']}",
            " ".join(str(c) for c in (row.get("annotated_classes") or [])),
            "x".join(f"{s:.3g}" for s in spacing) if isinstance(spacing, list) else "",
            "x".join(str(s) for s in shape) if isinstance(shape, list) else "",
            "yes" if row.get("label_resampled") else "",
            row.get("quarantine_reason") or "",
        )
    roles = cases["role"].value_counts().sort_index()
    table.caption = "  ".join(f"{role}: {n}" for role, n in roles.items())
    return table


def rounds_table(info: dict) -> Table:
    table = Table(title=f"rounds in {info['workdir']}")
    reviewed = bool(info.get("reviews")) or any((r.get("counts") or {}).get("reviewed") for r in info["rounds"])
    for col in (
        ("#", "name", "kind", "status", "cases", "pred", "train", "kept")
        + (("reviewed",) if reviewed else ())
        + ("min",)
    ):
        table.add_column(col, no_wrap=True)
    style = {
        "completed": "green",
        "running": "yellow",
        "failed": "red",
        "superseded": "dim",
        "interrupted": "red",
        "damaged": "bold red",
    }
    for row in info["rounds"] + info["superseded"]:
        counts = row.get("counts") or {}
        selection = counts.get("selection") or {}
        seconds = sum((row.get("stage_seconds") or {}).values()) or _elapsed(row)
        table.add_row(
            str(row["round"]),
            str(row.get("name")),
            str(row.get("kind")),
            f"[{style.get(row['status'], '')}]{row['status']}",
            str(counts.get("cases", "")),
            str(counts.get("predicted", "")),
            str(counts.get("trained", "")),
            # unlabeled cases kept (organs, tumours too) of those ranked
            (
                f"{selection.get('tumor_kept', 0) + selection.get('organ_kept', 0)}/{sum(selection.values())}"
                if selection
                else ""
            ),
            *([str(counts.get("reviewed") or "")] if reviewed else []),
            f"{seconds / 60:.1f}" if seconds else "",
        )
    notes = [f"round {r['round']}: {r['problems'][0]}" for r in info["rounds"] if r.get("problems")]
    if any(r["status"] == "interrupted" for r in info["rounds"]):
        notes.append("interrupted: the pipeline that ran it is gone; `hybridlabel run` or `resume` goes on")
    first_damaged = next((r["round"] for r in info["rounds"] if r.get("problems")), None)
    if first_damaged is not None:
        notes.append(f"damaged: redo from round {first_damaged} with `hybridlabel resume --round {first_damaged}`")
    notes += [
        f"round {r}: {n} corrected label(s) accepted (`hybridlabel accept`), ground truth from round {r + 1} on"
        for r, n in sorted(info.get("reviews", {}).items())
    ]
    legend = (
        "pred: cases the parent predicted; train: cases the model trained on; kept: unlabeled cases "
        "selection kept of those it ranked; "
        + ("reviewed: cases whose labels hold a reviewer's classes; " if reviewed else "")
        + "min: wall minutes"
    )
    table.caption = "\n".join([legend, f"export: {info['export'] or 'none yet'}", *notes])
    return table


def _elapsed(row: dict) -> float:
    """Seconds between a round's start and finish (rounds that recorded no stage times)."""
    start, end = row.get("started_at"), row.get("finished_at")
    try:
        return max(0.0, (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


def selection_table(decisions: pd.DataFrame) -> Table:
    table = Table(title="selection of unlabeled cases")
    for col in ("case", "organ score", "tumour score", "decision", "reason"):
        table.add_column(col, overflow="fold")
    style = {"tumor_kept": "green", "organ_kept": "yellow", "sits_out": "dim"}
    for row in decisions.to_dict("records"):
        table.add_row(
            row["case_id"],
            f"{row['organ_score']:.4f}",
            f"{row['tumor_score']:.4f}",
            f"[{style[row['decision']]}]{row['decision']}",
            row["reason"],
        )
    table.caption = "  ".join(f"{k}: {v}" for k, v in decisions["decision"].value_counts().sort_index().items())
    return table


def summary_rich_table(summary: pd.DataFrame, title: str) -> Table:
    """The papers' result table: class, DSC and NSD as mean ± SD, cases."""
    table = Table(title=title)
    for col in ("class", "DSC", "NSD", "cases"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in summary.to_dict("records"):
        bold = "bold " if row["class"] in SUMMARY_ROWS else ""
        table.add_row(
            f"[{bold}]{row['class']}" if bold else row["class"],
            f"{row['dsc_mean']:.4f} ± {row['dsc_std']:.4f}",
            f"{row['nsd_mean']:.4f} ± {row['nsd_std']:.4f}",
            str(row["cases"]),
        )
    return table


def rounds_metrics_table(table: pd.DataFrame, title: str, export_round: int | None = None) -> Table:
    """Classes (rows, organ mean and tumour last) x rounds (columns): fits a terminal for
    a dozen rounds."""
    from hybridlabel.models.metric_summary import short_class_name

    out = Table(title=title, min_width=min(len(title) + 2, 80))  # a title on one line
    out.add_column("class", no_wrap=True)
    for round_no in table.index:
        out.add_column("export" if round_no == export_round else f"r{round_no}", justify="right")
    for col in table.columns:
        bold = col in SUMMARY_ROWS
        name = short_class_name(col)
        out.add_row(f"[bold]{name}" if bold else name, *("" if pd.isna(v) else f"{v:.3f}" for v in table[col].tolist()))
    return out


METRIC_VIEWS = [
    ("val_gt", "dsc", "val DSC per round (the round's model)"),
    ("val_gt", "nsd", "val NSD per round"),
    ("train_gt", "dsc", "pseudo-label DSC vs training ground truth (round r: model r-1's labels)"),
    ("holdout_gt", "dsc", "pseudo-label DSC vs held-back classes (unbiased)"),
    (
        "complete_hybrid",
        "dsc",
        "complete labels: hybrid label DSC of partial and unlabeled cases vs their complete ground truth",
    ),
    ("complete_raw", "dsc", "the same cases' raw predictions (round r: model r-1) vs complete ground truth"),
]


def metrics_tables(workdir: Path) -> list[Table]:
    """The rounds x classes tables of a workdir's registry, for the references it holds."""
    from hybridlabel.data_registry.store import Registry
    from hybridlabel.models.metric_summary import detection_text, rounds_by_class, tumor_detection

    reg = Registry(workdir)
    metrics = reg.read_all("metrics")
    if metrics.empty:
        return []
    rounds = reg.rounds()
    live = set(rounds["round"].astype(int)) if not rounds.empty else set()
    exports = rounds.loc[rounds["kind"] == "export", "round"].astype(int) if not rounds.empty else []
    metrics = metrics[metrics["round"].astype(int).isin(live)]
    tumor = metrics.loc[metrics["class_name"] == "tumor", "class_id"]
    tumor_id = int(tumor.iloc[0]) if len(tumor) else -1
    organ_ids = [int(c) for c in metrics["class_id"].unique() if int(c) != tumor_id]
    tables = []
    for reference, value, title in METRIC_VIEWS:
        table = rounds_by_class(metrics, organ_ids, tumor_id, reference, value)
        if not table.empty:
            tables.append(rounds_metrics_table(table, title, int(max(exports)) if len(exports) else None))
    val = metrics[metrics["reference"] == "val_gt"]
    found = {int(r): detection_text(tumor_detection(group, tumor_id)) for r, group in val.groupby("round")}
    lines = [f"round {r} (val): {text}" for r, text in sorted(found.items()) if text]
    if tables and lines:  # both tumour figures under the val DSC table
        tables[0].caption = "\n".join(filter(None, [tables[0].caption, *lines]))
    return tables


def ablation_rich_table(table: pd.DataFrame, title: str) -> Table:
    """Arms and rounds x organ DSC (classes present) / NSD, tumour DSC / NSD (mean ± SD),
    train minutes, the iterations behind each model; the seeds in the caption."""
    from rich import box

    out = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)  # fits 80 columns
    for col in ("arm", "organ DSC", "tumour DSC", "found/fp", "labels DSC", "min", "iters"):
        out.add_column(col, justify="left" if col == "arm" else "right", no_wrap=True)

    def pm(row: dict, key: str) -> str:
        mean, sd = row[f"{key}_mean"], row[f"{key}_sd"]
        # the SD without its leading zero, so that the table fits 80 columns
        return "" if pd.isna(mean) else f"{mean:.3f}±" + f"{0 if pd.isna(sd) else sd:.3f}".lstrip("0")

    def detection(row: dict) -> str:
        found, alarms = (row.get(f"{k}_mean") for k in ("tumor_found_pct", "tumor_false_alarm_pct"))
        shown = ["-" if v is None or pd.isna(v) else f"{v:.0f}" for v in (found, alarms)]
        return "" if shown == ["-", "-"] else f"{shown[0]}/{shown[1]}%"

    for row in table.to_dict("records"):
        out.add_row(
            row["arm"],
            pm(row, "organ_dsc_present"),
            pm(row, "tumor_dsc"),
            detection(row),
            pm(row, "labels_dsc_present") if "labels_dsc_present_mean" in row else "",
            "" if pd.isna(row["train_minutes_mean"]) else f"{row['train_minutes_mean']:.1f}",
            str(row.get("trained_iterations", row["iterations"])),
        )
    if len(table):
        out.caption = (
            f"seeds per arm: {', '.join(sorted({str(s) for s in table['seeds']}))}; "
            "min: training minutes; iters: the iterations behind the model, its parents' included "
            "where it started from them (equal compute: equal iters); organ DSC: over the classes "
            "present in each case's ground truth (FLARE's mean over all classes is in the parquet and "
            "the report); found/fp: % of val cases with a tumour whose prediction overlaps it / % of "
            "tumour-free val cases given a tumour; labels DSC: the round's hybrid labels of partial and "
            "unlabeled cases against their complete ground truth, organs present (NSDs and the raw "
            "predictions' labels DSC are in the parquet)"
        )
    return out
