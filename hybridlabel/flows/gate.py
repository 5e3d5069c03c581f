"""The review gate (`review: {gate: true}`): after a student round, the pipeline publishes
its review queue as a Prefect artifact and pauses until someone resumes it from the UI
(or `prefect.flow_runs.resume_flow_run`) with "corrections are in" or "skip"; the
corrections are then taken back (`accept`) and the next round trains on them."""

from __future__ import annotations

from pathlib import Path

from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from hybridlabel.flows.dashboard import md_table
from hybridlabel.flows.review import accept_round, review_round
from hybridlabel.models.config import PipelineConfig
from hybridlabel.tasks.events import emit


class ReviewDecision(RunInput):
    """The Resume form the Prefect UI shows at the gate."""

    corrections_in: bool = Field(
        False,
        description="corrected labels are saved in the review folder's corrected/: "
        "take them back before the next round (off: skip the review)",
    )


def review_gate(config: PipelineConfig, workdir: Path, round_no: int) -> dict:
    """Write round `round_no`'s queue, publish it, wait for the decision, take corrections."""
    from prefect.artifacts import create_markdown_artifact

    found = review_round(workdir, round_no, config=config)
    rows = [
        {"rank": r["rank"], "case": r["case_id"], "check": ", ".join(r["class_names"]), "why": r["why"]}
        for r in found["queue"]
    ]
    markdown = (
        f"# Review queue of round {round_no}\n\n{len(rows)} of {len(found['ranked'])} pseudo-labelled cases, "
        f"worst first. Folder: `{found['folder']}` (worklist.md says how to open each case); save corrected "
        f"labels to `corrected/`, then resume this run with *corrections_in* on.\n\n"
        + md_table(rows)
        + "".join(f"\n- round-wide: {f}" for f in found["findings"])
    )
    create_markdown_artifact(
        markdown, key=f"review-round-{round_no:03d}", description=f"review queue, round {round_no}"
    )
    emit(
        "done",
        f"  review gate: {len(rows)} cases queued in {found['folder']}; the run waits for a resume "
        f"(Prefect UI: Resume, corrections in / skip)",
    )
    decision = pause_flow_run(
        wait_for_input=ReviewDecision,
        timeout=int(config.review.gate_timeout_hours * 3600),
        key=f"review-round-{round_no:03d}",
    )
    if decision is None or not decision.corrections_in:
        emit("done", f"  review gate: skipped, round {round_no + 1} goes on without corrections")
        return {"queued": len(rows), "accepted": [], "refused": []}
    taken = accept_round(workdir, round_no, config=config)
    for case_id, why in taken["refused"]:
        emit("done", f"  review gate: refused {why}")
    emit("done", f"  review gate: {len(taken['accepted'])} corrected label(s) taken, {len(taken['refused'])} refused")
    return {"queued": len(rows), **taken}
