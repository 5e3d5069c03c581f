"""Prefect artifacts of a round: the markdown summary, tables and a progress bar.

Called from flows only; outside a flow run (plain calls) the artifacts are skipped.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from hybridlabel.data_registry.frames import decoded, records
from hybridlabel.flows.fanout import in_flow_run
from hybridlabel.models.round_counts import label_source_counts, tumor_organ_counts


def round_line(
    round_no: int,
    name: str,
    counts: dict,
    means: dict,
    parent_means: dict | None,
    stages: dict[str, float],
    floor: float | None = None,
) -> str:
    """The round in one line: cases predicted and trained, val organ DSC over the classes
    present (and its change from the parent round), the complete labels' DSC where their
    truth is known, wall time; and a warning when the model learned little (`floor`)."""
    from hybridlabel.flows.timing import duration
    from hybridlabel.models.verdict import learned_little

    parts = [f"{counts['predicted']} cases predicted"] if counts.get("predicted") else []
    if counts.get("prediction_failed"):
        parts.append(f"{counts['prediction_failed']} failed (quarantined; see `hybridlabel status`)")
    if counts.get("trained"):
        parts.append(f"{counts['trained']} trained")
    dsc, parent = _organ_dsc(means), _organ_dsc(parent_means or {})
    if dsc is not None:
        parts.append(f"val organ DSC {dsc:.3f}" + (f" ({dsc - parent:+.3f})" if parent is not None else ""))
    labels, raw = _organ_dsc(means, "complete_hybrid"), _organ_dsc(means, "complete_raw")
    if labels is not None:  # the complete labels, where the cohort has their truth
        parts.append(f"labels organ DSC {labels:.3f}" + (f" (raw predictions {raw:.3f})" if raw is not None else ""))
    parts.append(duration(sum(stages.values())))
    line = f"round {round_no} {name}: " + ", ".join(parts)
    if floor is not None and (why := learned_little(dsc, parent, floor)):
        line += (
            f"; learned little: {why} (give it more iterations: training.epochs x iterations_per_epoch; "
            "its labels are handed on all the same)"
        )
    return line


def _organ_dsc(means: dict, reference: str = "val_gt") -> float | None:
    value = (means.get(reference) or {}).get("organ mean (present)", {}).get("dsc")
    return None if value is None else float(value)


def md_table(rows: list[dict]) -> str:
    if not rows:
        return "_none_\n"
    cols = list(dict.fromkeys(c for r in rows for c in r))  # every row's columns, in order of appearance
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


REFERENCE_TITLES = {
    "val_gt": "Model on val cases",
    "train_gt": "Pseudo labels vs training ground truth",
    "holdout_gt": "Pseudo labels vs held-back ground truth (unbiased)",
    "complete_hybrid": "Complete labels (hybrid) vs complete ground truth",
    "complete_raw": "Raw predictions vs complete ground truth (same cases)",
}


def metric_rows(metrics: pd.DataFrame | None, reference: str) -> list[dict]:
    """Per class mean DSC / NSD of one reference, organ mean and tumour last."""
    from hybridlabel.models.metric_summary import summary_table

    if metrics is None or metrics.empty or reference not in set(metrics["reference"]):
        return []
    frame = metrics[metrics["reference"] == reference]
    organ_ids = [c for c in frame["class_id"].unique() if c != _tumor_id(frame)]
    table = summary_table(frame, organ_ids, _tumor_id(frame))
    return [
        {
            "class": r["class"],
            "DSC": f"{r['dsc_mean']:.3f} ± {r['dsc_std']:.3f}",
            "NSD": f"{r['nsd_mean']:.3f} ± {r['nsd_std']:.3f}",
            "cases": r["cases"],
        }
        for r in table.to_dict("records")
    ]


def _tumor_id(frame: pd.DataFrame) -> int:
    tumor = frame.loc[frame["class_name"] == "tumor", "class_id"]
    return int(tumor.iloc[0]) if len(tumor) else -1


def round_summary(
    round_no: int,
    name: str,
    cases: pd.DataFrame,
    stage_seconds: dict,
    labels: dict,
    selection: pd.DataFrame | None,
    tumors: list[dict],
    metrics: pd.DataFrame | None = None,
    evidence: dict | None = None,
    untrusted: list[int] | None = None,
) -> str:
    """Markdown: metrics, cases per role, label sources per class, selection, tumours per organ, times."""
    roles = Counter(cases["role"])
    sources = label_source_counts(records(cases[["label_sources"]]))
    source_rows = [
        {"class": f"{c} {labels.get(int(c), '')}", **dict(zip(group["source"], group["cases"]))}
        for c, group in sources.groupby("class_id", sort=True)
    ]
    counted = tumor_organ_counts(tumors, labels)
    organ_counts = dict(zip(counted["organ"], counted["tumours"]))
    parts = [f"# Round {round_no}: {name}\n"]
    for ref, title in REFERENCE_TITLES.items():
        if rows := metric_rows(metrics, ref):
            parts += [f"## {title}\n", md_table(rows), "\n"]
    parts += [
        "## Cases per role\n",
        md_table([{"role": r, "cases": n} for r, n in sorted(roles.items())]),
        "\n## Label sources per class (cases)\n",
        md_table(source_rows),
    ]
    if evidence:  # class -> (Dice, where measured), see models/pseudo_trust.py
        parts += [
            "\n## Pseudo labels, judged on what the parent did not train on\n",
            md_table(
                [
                    {
                        "class": f"{c} {labels.get(int(c), '')}",
                        "dice": d,
                        "measured on": where,
                        "student learns it": "no" if int(c) in set(untrusted or []) else "yes",
                    }
                    for c, (d, where) in sorted(evidence.items(), key=lambda kv: int(kv[0]))
                ]
            ),
        ]
    if selection is not None and len(selection):
        counts = Counter(selection["decision"])
        kept = selection[selection["decision"] != "sits_out"]
        cut = f"{kept['organ_score'].max():.4f}" if len(kept) else "none"
        parts += [
            "\n## Selection of unlabeled cases\n",
            md_table([{"decision": d, "cases": n} for d, n in sorted(counts.items())]),
            f"\norgan-score cut-off: {cut}\n",
        ]
    pool = [o for found in decoded(cases.reindex(columns=["tumor_objects"]))["tumor_objects"].dropna() for o in found]
    if pool:  # models/cutmix.py: what the student had pasted into its tumour-free cases' patches
        hosts: dict[str, list[int]] = {}
        for o in pool:
            host = o["host_organ"]
            hosts.setdefault(str(labels.get(host, host)) if isinstance(host, int) else str(host), []).append(
                o["voxels"]
            )
        parts += [
            "\n## CutMix pool: ground-truth tumours pasted during training\n",
            md_table(
                [
                    {"host organ": h, "objects": len(v), "median voxels": int(np.median(v))}
                    for h, v in sorted(hosts.items())
                ]
            ),
        ]
    parts += [
        "\n## Tumours per attributed organ\n",
        md_table([{"organ": o, "tumours": n} for o, n in sorted(organ_counts.items())]),
        "\n## Time per stage (s)\n",
        md_table([{"stage": s, "seconds": round(v, 1)} for s, v in stage_seconds.items()]),
    ]
    return "".join(parts)


def publish_round(
    round_no: int, markdown: str, selection: pd.DataFrame | None, metrics: pd.DataFrame | None = None
) -> None:
    if not in_flow_run():
        return
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(markdown, key=f"round-{round_no:03d}-summary", description=f"round {round_no}")
    for ref in REFERENCE_TITLES:
        if rows := metric_rows(metrics, ref):
            create_table_artifact(
                rows,
                key=f"round-{round_no:03d}-metrics-{ref.replace('_', '-')}",
                description=f"round {round_no}: {REFERENCE_TITLES[ref]}",
            )
    if selection is not None and len(selection):
        create_table_artifact(
            selection.drop(columns=["reason"]).to_dict("records"),
            key=f"round-{round_no:03d}-selection",
            description="selection decisions",
        )


def pipeline_overview(rounds: list[dict], reviews: dict[int, int], queues: list[int]) -> str:
    """The whole run on one page: each round's val organ DSC over the classes present (and
    its change from the teacher), its complete labels' DSC, reviewed cases and minutes; the
    review queue's state."""
    rows, teacher = [], None
    for row in rounds:
        means, counts = row.get("mean_metrics") or {}, row.get("counts") or {}
        dsc = _organ_dsc(means)
        teacher = dsc if row["round"] == 0 else teacher
        seconds = sum((row.get("stage_seconds") or {}).values())
        labels = _organ_dsc(means, "complete_hybrid")
        rows.append(
            {
                "round": row["round"],
                "name": row.get("name"),
                "status": row.get("status"),
                "val organ DSC": "" if dsc is None else f"{dsc:.3f}",
                "vs teacher": "" if dsc is None or teacher is None or row["round"] == 0 else f"{dsc - teacher:+.3f}",
                "labels DSC": "" if labels is None else f"{labels:.3f}",
                "reviewed": counts.get("reviewed", ""),
                "minutes": f"{seconds / 60:.1f}" if seconds else "",
            }
        )
    done = [r for r in rows if r["status"] == "completed" and r["val organ DSC"]]
    verdict = (
        (
            f"so far: round {done[-1]['round']} at {done[-1]['val organ DSC']} val organ DSC "
            f"({done[-1]['vs teacher'] or 'the teacher'} over the teacher)"
        )
        if done
        else "no round completed yet"
    )
    queue = (
        ", ".join(
            f"round {r}: queue written" + (f", {reviews[r]} correction(s) taken" if reviews.get(r) else "")
            for r in queues
        )
        or "no queue yet (`hybridlabel review --round N`)"
    )
    return f"# Pipeline\n\n{verdict}\n\n" + md_table(rows) + f"\n## Review queue\n\n{queue}\n"


def publish_pipeline_overview(workdir) -> None:
    """The `pipeline-overview` artifact, one key for the whole run, updated after each round."""
    if not in_flow_run():
        return
    from pathlib import Path

    from prefect.artifacts import create_markdown_artifact

    from hybridlabel.data_registry.store import Registry

    reg = Registry(Path(workdir))
    rounds = records(reg.rounds())
    reviews = {r: len(f) for r in range(len(rounds)) if (f := reg.read_if_present("reviews", r)) is not None}
    queues = sorted(int(p.name.split("-")[1]) for p in (Path(workdir) / "review").glob("round-*"))
    create_markdown_artifact(
        pipeline_overview(rounds, reviews, queues),
        key="pipeline-overview",
        description="the whole run: rounds, verdict so far, review queue",
    )
