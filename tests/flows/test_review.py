"""The review queue end to end on a finished pipeline (a copy of its workdir): `review`
writes the worklist and what a viewer opens; `accept` takes corrected labels back, refuses
a bad one in one line, and the next round's hybrid labels change for exactly the corrected
classes and cases."""

import csv
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from hybridlabel.cli.main import app
from hybridlabel.data_registry.store import Registry

pytestmark = pytest.mark.slow  # reruns a round of the pipeline

runner = CliRunner()


def _array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_review_then_accept_changes_the_next_rounds_labels_of_exactly_those_classes(finished, phantom_cohort, tmp_path):
    from hybridlabel.flows.pipeline import pipeline

    work = tmp_path / "work"
    shutil.copytree(finished["work"], work, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    reg = Registry(work)
    reg.supersede_from(3)  # the export: rerun round 2 alone below
    result = runner.invoke(app, ["review", "--round", "1", "--top", "3", "--workdir", str(work)])
    assert result.exit_code == 0, result.output
    folder = work / "review" / "round-001"
    rows = list(csv.DictReader((folder / "worklist.csv").open()))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3] and all(r["why"] and r["classes"] for r in rows)
    first = rows[0]["case_id"]
    opened = folder / "cases" / first
    assert (opened / "image.nii.gz").is_symlink() and (opened / "hybrid_label.nii.gz").is_symlink()
    assert '"liver"' in (folder / "labels.txt").read_text() and "1 liver " in (folder / "hybridlabel.ctbl").read_text()

    # the reviewer corrects the queued classes of the first case (to the truth) and saves a
    # second case's file on the wrong grid
    truth_image = sitk.ReadImage(str(phantom_cohort / "groundTruth" / f"{first}.nii.gz"))
    sitk.WriteImage(truth_image, str(folder / "corrected" / f"{first}.nii.gz"))
    second = rows[1]["case_id"]
    small = sitk.Image([8, 8, 8], sitk.sitkUInt8)
    sitk.WriteImage(small, str(folder / "corrected" / f"{second}.nii.gz"))
    result = runner.invoke(app, ["accept", "--round", "1", "--workdir", str(work), "--reviewer", "dr-a"])
    assert result.exit_code == 1, result.output
    refusal = [line for line in result.output.splitlines() if line.startswith("refused")]
    assert len(refusal) == 1 and second in refusal[0] and "does not cover" in refusal[0]
    reviews = reg.read("reviews", 1)
    assert list(reviews["case_id"]) == [first] and reviews["reviewer"].iloc[0] == "dr-a"
    checked = [int(c) for c in rows[0]["classes"].split()]
    assert list(reviews["classes"].iloc[0]) == checked
    again = runner.invoke(app, ["accept", "--round", "1", "--workdir", str(work)])
    assert "1 already taken" in again.output and len(reg.read("reviews", 1)) == 1
    kept = (folder / "worklist.csv").read_text()
    (folder / "worklist.csv").write_text("name\nx\n")  # a worklist edited out of shape: one line, nothing taken
    broken = runner.invoke(app, ["accept", "--round", "1", "--workdir", str(work)])
    assert broken.exit_code == 2 and "lacks its case_id or classes column" in broken.output
    assert len(reg.read("reviews", 1)) == 1
    (folder / "worklist.csv").write_text(kept)

    before = reg.read("cases", 2).set_index("case_id")
    reg.supersede_from(2)
    pipeline(str(work / "config.yaml"), str(work), 2, False)
    after = reg.read("cases", 2)
    after = after[after["quarantine_reason"].isna()].set_index("case_id")
    assert list(after.at[first, "reviewed_classes"]) == checked
    assert set(checked) <= set(after.at[first, "annotated_classes"])
    sources = json.loads(after.at[first, "label_sources"])
    assert all(sources[str(c)] == "gt" for c in checked if str(c) in sources)
    hybrid, truth = _array(after.at[first, "hybrid_label_path"]), sitk.GetArrayFromImage(truth_image)
    outside_tumour = truth != 14  # the truth's tumour voxels were not checked: the merge decides them
    for c in checked:
        assert np.array_equal((hybrid == c)[outside_tumour], (truth == c)[outside_tumour]), c
    others = [c for c in after.index if c != first and isinstance(after.at[c, "hybrid_label_sha256"], str)]
    assert others and all(after.at[c, "hybrid_label_sha256"] == before.at[c, "hybrid_label_sha256"] for c in others)
    status = runner.invoke(app, ["status", "--workdir", str(work)])
    assert status.exit_code == 0 and "reviewed" in status.output
    from hybridlabel.tasks.report.page import build_report

    page = build_report(work)
    assert "Review queue" in page and "yes (dr-a)" in page and first in page


def test_the_gate_pauses_the_run_and_a_resume_through_prefect_takes_the_corrections(finished, phantom_cohort, tmp_path):
    """Rounds 1-2 again with `review: {gate: true}` against the session's Prefect server: the
    run pauses after round 1 with the queue as an artifact; resuming it through Prefect's
    client, as the UI's Resume form does, with corrections_in takes the saved correction
    back, and round 2 trains on it."""
    import threading
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.flow_runs import resume_flow_run

    from hybridlabel.flows.pipeline import pipeline
    from hybridlabel.models.config import load_config
    from hybridlabel.models.config_yaml import render_config_yaml

    work = tmp_path / "work"
    shutil.copytree(finished["work"], work, symlinks=True, ignore=shutil.ignore_patterns(".lock", "review"))
    reg = Registry(work)
    reg.supersede_from(1)
    config = load_config(work / "config.yaml")
    gated = tmp_path / "gated.yaml"
    gated.write_text(render_config_yaml(config.model_copy(update={"review": {"gate": True, "fraction": 0.3}})))
    outcome: dict = {}
    runner_thread = threading.Thread(target=lambda: outcome.update(result=pipeline(str(gated), str(work), 1, False)))
    runner_thread.start()
    paused, deadline = None, time.time() + 600
    with get_client(sync_client=True) as client:
        while paused is None and time.time() < deadline and runner_thread.is_alive():
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["pipeline-from-round-1"]))
            )
            paused = next((r for r in runs if r.state and r.state.is_paused()), None)
            time.sleep(2)
        assert paused is not None, "the run never paused at the gate"
        keys = {a.key for a in client.read_latest_artifacts()}
        assert {"review-round-001", "pipeline-overview"} <= keys  # the queue, and the whole run on one page
    assert not reg.is_complete(2)  # waiting: round 2 has not started
    folder = work / "review" / "round-001"
    queued = list(csv.DictReader((folder / "worklist.csv").open()))
    first = queued[0]["case_id"]
    shutil.copy(phantom_cohort / "groundTruth" / f"{first}.nii.gz", folder / "corrected" / f"{first}.nii.gz")
    resume_flow_run(paused.id, run_input={"corrections_in": True})
    runner_thread.join(timeout=900)
    assert not runner_thread.is_alive() and outcome.get("result")
    assert list(reg.read("reviews", 1)["case_id"]) == [first]
    round2 = reg.read("cases", 2)
    row = round2[(round2["case_id"] == first) & round2["quarantine_reason"].isna()].iloc[0]
    assert list(row["reviewed_classes"]) == [int(c) for c in queued[0]["classes"].split()]
    assert json.loads(reg.round_row(2)["counts"])["reviewed"] == 1
