"""The round report: one self-contained HTML file (figures embedded as PNG), written atomically."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hybridlabel.models.metric_summary import rounds_by_class, short_class_name
from hybridlabel.tasks.report import plots
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import read_image
from hybridlabel.tasks.report.data import ReportData, collect, slice_cases

# Sortable tables, and a flag the browser test reads: every script error is recorded.
SCRIPT = """
window.hlErrors = [];
window.addEventListener('error', e => { window.hlErrors.push(String(e.message)); });
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const key = r => { const t = r.cells[col].innerText; const n = parseFloat(t); return isNaN(n) ? t : n; };
  const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1));
  rows.forEach(r => body.appendChild(r));
}));
document.body.dataset.sections = document.querySelectorAll('section').length;
document.body.dataset.errors = window.hlErrors.length;
document.body.dataset.ready = '1';
"""
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3;cursor:pointer}td:first-child,th:first-child{text-align:left}img{max-width:100%}
section{margin-bottom:2em}.wide{overflow-x:auto}h2{border-bottom:2px solid #1565c0;padding-bottom:4px}.muted{color:#777}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(frame: pd.DataFrame, floats: int = 3) -> str:
    if frame.empty:
        return '<p class="muted">none</p>'
    frame = frame.reset_index() if frame.index.name else frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = "".join(f"<td>{'' if pd.isna(v) else (f'{v:.{floats}f}' if isinstance(v, float) else html.escape(str(v)))}</td>"
                        for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return (f'<div class="wide"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _metric_section(data: ReportData, reference: str, title: str) -> str:
    organ_ids = [c for c in data.labels if c not in (0, data.tumor_id)]
    parts = []
    for value in ("dsc", "nsd"):
        table = rounds_by_class(data.metrics, organ_ids, data.tumor_id, reference, value) if len(data.metrics) else \
            pd.DataFrame()
        if table.empty:
            continue
        table = table.rename(columns=short_class_name)
        parts.append(f"<h3>{value.upper()}</h3>" + _img(plots.metric_lines(table, value.upper()), f"{title} {value}")
                     + _table(table))
    return _section(title, "".join(parts)) if parts else ""


def _rounds_table(data: ReportData) -> pd.DataFrame:
    rows = []
    for row in data.rounds.to_dict("records"):
        counts = row.get("counts") if isinstance(row.get("counts"), dict) else {}
        stages = row.get("stage_seconds") if isinstance(row.get("stage_seconds"), dict) else {}
        rows.append({"round": int(row["round"]), "name": row.get("name"), "kind": row.get("kind"),
                     "status": row.get("status"), "cases": counts.get("cases"), "predicted": counts.get("predicted"),
                     "trained": counts.get("trained"), "minutes": round(sum(stages.values()) / 60, 2),
                     "code": row.get("code_version")})
    frame = pd.DataFrame(rows)
    for col in ("cases", "predicted", "trained"):
        frame[col] = frame[col].astype("Int64")
    return frame


def _slices(data: ReportData, n_cases: int) -> str:
    by_round: dict[int, list] = {}
    best_z: dict[str, int] = {}
    for r, case_id, image, gt_path, pred_path in slice_cases(data, n_cases):
        ct = sitk.GetArrayFromImage(read_image(image))
        gt = sitk.GetArrayFromImage(read_image(gt_path))
        pred = sitk.GetArrayFromImage(read_image(pred_path))
        if pred.shape != gt.shape or ct.shape != gt.shape:
            continue
        if case_id not in best_z:  # the axial slice with the most labelled organ voxels
            organs = (gt > 0) & (gt != data.tumor_id)
            best_z[case_id] = int(np.argmax(organs.sum(axis=(1, 2))))
        z = best_z[case_id]
        by_round.setdefault(r, []).append((f"{case_id} z={z}", ct[z], gt[z], pred[z]))
    if not by_round:
        return ""
    n_classes = max(data.labels) if data.labels else 14
    body = "".join(f"<h3>round {r}</h3>" + _img(plots.contour_slices(panels, n_classes), f"round {r} slices")
                   for r, panels in sorted(by_round.items()))
    return _section("Val cases: axial slices (ground truth dashed, prediction solid)", body)


def _ablation(workdir: Path) -> str:
    from hybridlabel.tasks.ablation_results import ablation_table, read_ablation

    rows = read_ablation(workdir)
    if rows is None or rows.empty:
        return ""
    table = ablation_table(rows)
    return _section("Ablation: teacher-only vs naive vs partial-label losses vs rounds (val cases)",
                    _img(plots.arm_bars(table), "ablation") + _table(table.rename(columns=short_class_name)))


def _page(parts: list[str]) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hybridlabel report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(p for p in parts if p)}<script>{SCRIPT}</script></body></html>")


def build_report(workdir: Path, n_cases: int = 3) -> str:
    header = (f"<h1>hybridlabel report</h1><p class='muted'>{html.escape(str(Path(workdir).resolve()))} · "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}</p>")
    if not (Path(workdir) / "registry").is_dir() and (ablation := _ablation(workdir)):
        return _page([header, ablation])  # an ablation folder: the arms' own reports are in arms/
    data = collect(workdir)
    parts = [header, _ablation(workdir),
             _section("Rounds (registry)", _table(_rounds_table(data), 2)),
             _metric_section(data, "val_gt", "Model quality on val cases, per class and round"),
             _metric_section(data, "train_gt", "Pseudo-label quality vs training ground truth"),
             _metric_section(data, "holdout_gt", "Pseudo-label quality vs held-back classes (unbiased)")]
    if len(data.sources):
        parts.append(_section("Label sources per class", _img(plots.source_bars(data.sources, data.labels),
                                                               "label sources")))
    if len(data.scores):
        kept = data.scores[data.scores["decision"].isin(["tumor_kept", "organ_kept"])]
        cutoffs = kept.groupby("round")["organ_score"].max().to_dict()
        parts.append(_section("Uncertainty of unlabeled cases and selection cut-offs",
                              _img(plots.score_strips(data.scores, cutoffs, data.scorer), "uncertainty")
                              + _table(data.scores.sort_values(["round", "organ_score"]), 4)))
    if len(data.tumors):
        parts.append(_section("Tumours per attributed organ",
                              _img(plots.stacked_barh(data.tumors, "round", "organ", "tumours", "tumours"), "tumours")))
    if len(data.stages):
        parts.append(_section("Time per stage per round",
                              _img(plots.stacked_barh(data.stages, "round", "stage", "seconds", "seconds"), "times")))
    parts.append(_slices(data, n_cases))
    roles = data.cases["role"].value_counts().rename_axis("role").reset_index(name="cases") if len(data.cases) else \
        pd.DataFrame()
    quarantined = data.cases.loc[data.cases["role"] == "quarantined", ["case_id", "quarantine_reason"]] \
        if len(data.cases) else pd.DataFrame()
    parts.append(_section("Registry summary", _table(roles) + _table(quarantined)))
    return _page(parts)


def write_report(workdir: Path, out: Path, n_cases: int = 3) -> Path:
    return atomic_write_text(Path(out), build_report(workdir, n_cases))
