"""The round report: one self-contained HTML file (figures embedded as PNG), written atomically."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hybridlabel.models.metric_summary import detection_text, rounds_by_class, short_class_name, tumor_detection
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import read_image
from hybridlabel.tasks.report import plots
from hybridlabel.tasks.report.data import ReportData, collect, cutmix_examples, slice_cases

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
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3;cursor:pointer}td:first-child,th:first-child{text-align:left}img{max-width:100%}
section{margin-bottom:2em}.caption{color:#555;font-style:italic;max-width:900px}.wide{overflow-x:auto}
h2{border-bottom:2px solid #1565c0;padding-bottom:4px}.muted{color:#777}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(frame: pd.DataFrame, floats: int = 3) -> str:
    if frame.empty:
        return '<p class="muted">none</p>'
    frame = frame.reset_index() if frame.index.name else frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f"<td>{'' if pd.isna(v) else (f'{v:.{floats}f}' if isinstance(v, float) else html.escape(str(v)))}</td>"
            for v in row
        )
        rows.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="wide"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _caption(text: str) -> str:
    return f'<p class="caption">{html.escape(text)}</p>'


CAPTIONS = {
    "val_gt": "Each round's model on the val cases (ground truth never trained on). Rising lines are the rounds "
    "paying off; the bold lines are the organ means (FLARE's, and over the classes present).",
    "train_gt": "Each round's pseudo labels against the ground truth its predicted training cases carry: how "
    "good the labels the student learned from were (biased from round 2 on: the parent saw them).",
    "holdout_gt": "Pseudo labels against annotated classes held back from every round: the unbiased estimate.",
    "complete_hybrid": "The complete labels the loop makes: each round's hybrid labels of partial and unlabeled "
    "cases against their complete ground truth (every class: what the user came for).",
    "complete_raw": "The same cases' raw predictions by the parent model (round 1: the teacher), against the same "
    "truth: what merging with the partial labels adds is the gap to the line above.",
}


def verdict_sentences(data: ReportData) -> list[str]:
    """The report's opening words on a workdir's rounds (`models/verdict.py`)."""
    from hybridlabel.models.verdict import verdict

    organ_ids = [c for c in data.labels if c not in (0, data.tumor_id)]
    table = (
        rounds_by_class(data.metrics, organ_ids, data.tumor_id, "val_gt", "dsc")
        if len(data.metrics)
        else pd.DataFrame()
    )
    names = {int(r): str(n) for r, n in zip(data.rounds["round"], data.rounds["name"])}
    exports = [int(r) for r, k in zip(data.rounds["round"], data.rounds["kind"]) if k == "export"]
    pseudo = {
        int(r): {
            data.labels.get(int(c), c): float(d)
            for c, d in (counts or {}).get("pseudo_dice", {}).items()
            if int(c) != 0
        }
        for r, counts in zip(data.rounds["round"], data.rounds["counts"])
        if (counts or {}).get("pseudo_dice")
    }
    n_val = (
        int(data.metrics.loc[data.metrics["reference"] == "val_gt", "case_id"].nunique()) if len(data.metrics) else 0
    )
    val = data.metrics[data.metrics["reference"] == "val_gt"] if len(data.metrics) else data.metrics
    last = max((r for r in names if r not in exports), default=None)
    tumors = detection_text(tumor_detection(val[val["round"] == last], data.tumor_id)) if len(val) else ""
    return verdict(table, names, exports[-1] if exports else None, pseudo, n_val, data.learned_floor, tumors)


def _verdict(data: ReportData) -> str:
    return _section("Verdict", "<p>" + " ".join(html.escape(s) for s in verdict_sentences(data)) + "</p>")


def _metric_section(data: ReportData, reference: str, title: str) -> str:
    caption = CAPTIONS[reference]
    organ_ids = [c for c in data.labels if c not in (0, data.tumor_id)]
    parts = []
    for value in ("dsc", "nsd"):
        table = (
            rounds_by_class(data.metrics, organ_ids, data.tumor_id, reference, value)
            if len(data.metrics)
            else pd.DataFrame()
        )
        if table.empty:
            continue
        table = table.rename(columns=short_class_name)
        parts.append(
            f"<h3>{value.upper()}</h3>"
            + _img(plots.metric_lines(table, value.upper()), f"{title} {value}")
            + _table(table)
        )
    return _section(title, _caption(caption) + "".join(parts)) if parts else ""


def _rounds_table(data: ReportData) -> pd.DataFrame:
    rows = []
    for row in data.rounds.to_dict("records"):
        counts = row.get("counts") if isinstance(row.get("counts"), dict) else {}
        stages = row.get("stage_seconds") if isinstance(row.get("stage_seconds"), dict) else {}
        rows.append(
            {
                "round": int(row["round"]),
                "name": row.get("name"),
                "kind": row.get("kind"),
                "status": row.get("status"),
                "cases": counts.get("cases"),
                "predicted": counts.get("predicted"),
                "trained": counts.get("trained"),
                "minutes": round(sum(stages.values()) / 60, 2),
                "code": row.get("code_version"),
            }
        )
    frame = pd.DataFrame(rows)
    for col in ("cases", "predicted", "trained"):
        frame[col] = frame[col].astype("Int64")
    return frame


def _round_label(data: ReportData, r: int) -> str:
    row = data.rounds[data.rounds["round"] == r]
    kind, name = (row["kind"].iloc[0], row["name"].iloc[0]) if len(row) else ("", "")
    return "export" if kind == "export" else f"r{r} {name}"


def _slices(data: ReportData, n_cases: int) -> str:
    by_case: dict[str, dict] = {}
    for r, case_id, image, gt_path, pred_path in slice_cases(data, n_cases):
        entry = by_case.setdefault(case_id, {"image": image, "gt": gt_path, "preds": []})
        entry["preds"].append((_round_label(data, r), pred_path))
    exports = [int(r) for r, k in zip(data.rounds["round"], data.rounds["kind"]) if k == "export"]
    for entry in by_case.values():  # an export of the last round's own model has no predictions of its own
        if exports and entry["preds"] and entry["preds"][-1][0] != "export":
            entry["preds"][-1] = (entry["preds"][-1][0] + " = export", entry["preds"][-1][1])
    rows = []
    for case_id, entry in by_case.items():
        ct = sitk.GetArrayFromImage(read_image(entry["image"]))
        gt = sitk.GetArrayFromImage(read_image(entry["gt"]))
        organs = (gt > 0) & (gt != data.tumor_id)
        z = int(np.argmax(organs.sum(axis=(1, 2))))  # the axial slice with the most labelled organ voxels
        panels = [("ground truth", gt[z])]
        for label, path in entry["preds"]:
            pred = sitk.GetArrayFromImage(read_image(path))
            if pred.shape == gt.shape:
                panels.append((label, pred[z]))
        if ct.shape == gt.shape:
            rows.append((f"{case_id} z={z}", ct[z], panels))
    if not rows:
        return ""
    caption = (
        "One val case per row, at its axial slice with the most organ voxels: the ground truth, then each "
        "round's model and the export. A class the ground truth has and a model lacks is what that model "
        "missed; colours are named below."
    )
    return _section(
        "Val cases: ground truth and each model's prediction",
        _caption(caption) + _img(plots.overlay_grid(rows, data.labels), "val slices"),
    )


def _ablation(workdir: Path) -> str:
    from hybridlabel.tasks.ablation_results import ablation_table, read_ablation

    rows = read_ablation(workdir)
    if rows is None or rows.empty:
        return ""
    from hybridlabel.models.verdict import equal_compute_verdict

    table = ablation_table(rows)
    answer = equal_compute_verdict(table)
    return _section(
        "Ablation: teacher-only vs naive vs partial-label losses vs rounds, with and without CutMix, "
        "and the teacher trained as long as the rounds (val cases)",
        (f"<p>{html.escape(answer)}</p>" if answer else "")
        + _img(plots.arm_bars(table), "ablation")
        + _table(table.rename(columns=short_class_name)),
    )


def _review(workdir: Path, data: ReportData, n_cases: int) -> str:
    """Each review queue written (`hybridlabel review`): its rows, the cases whose corrections
    were accepted, and the top cases' slices through the classes they were queued for."""
    from hybridlabel.data_registry.store import Registry

    parts = []
    for folder in sorted((Path(workdir) / "review").glob("round-*")):
        if not (folder / "worklist.csv").is_file() or not folder.name[6:].isdigit():
            continue
        r = int(folder.name[6:])
        queue = pd.read_csv(folder / "worklist.csv", dtype=str, keep_default_na=False)
        reviews = Registry(Path(workdir)).read_if_present("reviews", r)
        by = {} if reviews is None else dict(zip(reviews["case_id"], reviews["reviewer"].fillna("")))
        table = queue[["rank", "case_id", "score", "class_names", "why"]].assign(
            reviewed=["yes" + (f" ({by[c]})" if by[c] else "") if c in by else "" for c in queue["case_id"]]
        )
        rows = []
        for row in queue.head(n_cases).to_dict("records"):
            ct = sitk.GetArrayFromImage(read_image(folder / row["image"]))
            label = sitk.GetArrayFromImage(read_image(folder / row["hybrid_label"]))
            queued = np.isin(label, [int(c) for c in row["classes"].split()])
            z = int(np.argmax(queued.sum(axis=(1, 2)))) if queued.any() else label.shape[0] // 2
            if ct.shape == label.shape:
                rows.append((f"{row['case_id']} z={z}", ct[z], [("hybrid label", label[z])]))
        caption = (
            f"Round {r}'s queue, worst first: the classes to check and why (models/review_rank.py); reviewed: "
            "the corrections `hybridlabel accept` took, ground truth from the next round on. The slices go through "
            "the queued classes of the top cases."
        )
        parts.append(
            f"<h3>round {r}</h3>"
            + _caption(caption)
            + (_img(plots.overlay_grid(rows, data.labels), f"review round {r}") if rows else "")
            + _table(table)
        )
    return _section("Review queue", "".join(parts)) if parts else ""


def _page(parts: list[str]) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hybridlabel report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(p for p in parts if p)}<script>{SCRIPT}</script></body></html>"
    )


def build_report(workdir: Path, n_cases: int = 3) -> str:
    header = (
        f"<h1>hybridlabel report</h1><p class='muted'>{html.escape(str(Path(workdir).resolve()))} · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}</p>"
    )
    if not (Path(workdir) / "registry").is_dir() and (ablation := _ablation(workdir)):
        return _page([header, ablation])  # an ablation folder: the arms' own reports are in arms/
    data = collect(workdir)
    parts = [
        header,
        _verdict(data),
        _ablation(workdir),
        _section(
            "Rounds (registry)",
            _caption("One row per round as the registry records it; minutes are wall time of all its stages.")
            + _table(_rounds_table(data), 2),
        ),
        _metric_section(data, "val_gt", "Model quality on val cases, per class and round"),
        _metric_section(data, "train_gt", "Pseudo-label quality vs training ground truth"),
        _metric_section(data, "holdout_gt", "Pseudo-label quality vs held-back classes (unbiased)"),
        _metric_section(data, "complete_hybrid", "Complete labels vs complete ground truth"),
        _metric_section(data, "complete_raw", "Raw predictions vs complete ground truth"),
    ]
    if len(data.sources):
        parts.append(
            _section(
                "Label sources per class",
                _caption(
                    "Per round and class, how many training cases took the label from their ground truth (gt), "
                    "from the parent's prediction (pseudo), or left it unknown (ignore)."
                )
                + _img(plots.source_bars(data.sources, data.labels), "label sources"),
            )
        )
    if len(data.scores):
        kept = data.scores[data.scores["decision"].isin(["tumor_kept", "organ_kept"])]
        cutoffs = kept.groupby("round")["organ_score"].max().to_dict()
        parts.append(
            _section(
                "Uncertainty of unlabeled cases and selection cut-offs",
                _caption(
                    f"Each dot an unlabeled case, by its organ {data.scorer}; the cases left of "
                    "the dashed cut-off were kept for training (green: their tumours too)."
                )
                + _img(plots.score_strips(data.scores, cutoffs, data.scorer), "uncertainty")
                + _table(data.scores.sort_values(["round", "organ_score"]), 4),
            )
        )
    if len(data.tumors):
        parts.append(
            _section(
                "Tumours per attributed organ",
                _caption("Kept pseudo-tumour components per round, by the organ the dilation rule attributed them to.")
                + _img(plots.stacked_barh(data.tumors, "round", "organ", "tumours", "tumours"), "tumours"),
            )
        )
    if pasted := cutmix_examples(data):
        parts.append(
            _section(
                "CutMix: tumours pasted into training patches",
                _caption(
                    "Training patches of cases without a tumour label that received a ground-truth tumour with its "
                    "surroundings (yellow box), after augmentation, as the network got them: the pasted content should "
                    "sit inside the abdomen and look like its neighbourhood."
                )
                + _img(plots.pasted_patches(pasted, data.labels), "cutmix patches"),
            )
        )
    if len(data.stages):
        parts.append(
            _section(
                "Time per stage per round",
                _caption("Wall seconds of each stage: where a round's time goes.")
                + _img(plots.stacked_barh(data.stages, "round", "stage", "seconds", "seconds"), "times"),
            )
        )
    parts.append(_slices(data, n_cases))
    parts.append(_review(workdir, data, n_cases))
    roles = (
        data.cases["role"].value_counts().rename_axis("role").reset_index(name="cases")
        if len(data.cases)
        else pd.DataFrame()
    )
    quarantined = (
        data.cases.loc[data.cases["role"] == "quarantined", ["case_id", "quarantine_reason"]]
        if len(data.cases)
        else pd.DataFrame()
    )
    parts.append(
        _section(
            "Registry summary",
            _caption("Cases per role; quarantined cases with their reason.")
            + _table(roles)
            + (_table(quarantined) if len(quarantined) else '<p class="muted">No case was quarantined.</p>'),
        )
    )
    return _page(parts)


def write_report(workdir: Path, out: Path, n_cases: int = 3) -> Path:
    return atomic_write_text(Path(out), build_report(workdir, n_cases))
