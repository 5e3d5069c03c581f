"""The Prefect pipeline for real (nnU-Net training with test budgets): rounds, registry
commits, artifacts, idempotent resume, workdir lock, early failures."""

import json
from pathlib import Path

import pandas as pd
import pytest

from data_registry.store import Registry
from tests.conftest import tiny_config_yaml


@pytest.fixture(scope="module")
def finished(phantom_cohort, tmp_path_factory, prefect_harness):
    from flows.pipeline import pipeline

    work = tmp_path_factory.mktemp("work")
    config = work.parent / f"{work.name}.yaml"
    config.write_text(tiny_config_yaml(phantom_cohort))
    result = pipeline(str(config), str(work), 0, True)
    return {"work": work, "config": config, "result": result}


def test_every_round_is_committed_with_every_case(finished, phantom_cohort):
    reg = Registry(finished["work"])
    rounds = reg.rounds()
    assert list(rounds["round"]) == [0, 1, 2, 3]
    assert list(rounds["kind"]) == ["teacher", "student", "student", "export"]
    assert set(rounds["status"]) == {"completed"}
    n_cases = len(json.loads((phantom_cohort / "phantom.json").read_text())["cases"])
    for r in range(3):
        cases = reg.read("cases", r)
        assert len(cases) == n_cases and cases["case_id"].is_unique
        assert (cases["round"] == r).all()
    teacher = reg.read("cases", 0)
    assert set(teacher.loc[teacher["trained"], "role"]) == {"strong"}
    assert Path(finished["result"]["export"]).exists()


def test_student_rounds_record_labels_sources_scores_and_selection(finished):
    from tasks.imageio import sha256_path

    reg = Registry(finished["work"])
    r1, r2 = reg.read("cases", 1), reg.read("cases", 2)
    merged = r1[r1["hybrid_label_path"].notna()]
    assert set(merged["role"]) == {"partial", "tumor_only"}
    for row in merged.to_dict("records"):
        assert sha256_path(Path(row["hybrid_label_path"])) == row["hybrid_label_sha256"]
        sources = json.loads(row["label_sources"])
        for c in row["annotated_classes"]:
            assert sources[str(c)] in ("gt", "pseudo")  # pseudo only for a tumour-bearing organ
        assert {"organ_entropy", "tumor_entropy"} <= set(json.loads(row["scores"]))
    unlabeled = r2[r2["role"] == "unlabeled"]
    assert unlabeled["selection"].notna().all() and unlabeled["selection_reason"].str.contains("cut-off").all()
    kept = unlabeled["selection"] != "sits_out"
    assert (unlabeled.loc[kept, "trained"]).all() and not unlabeled.loc[~kept, "trained"].any()
    assert not r2.loc[r2["role"] == "val", "trained"].any()  # val never trains


def test_round_artifacts_are_in_prefect(finished):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["round-001-summary", "round-002-selection", "round-001-predict"])))
    assert {a.key for a in found} >= {"round-001-summary", "round-002-selection", "round-001-predict"}
    summary = next(a for a in found if a.key == "round-001-summary")
    assert "Label sources per class" in summary.data and "Time per stage" in summary.data


def test_rerun_skips_completed_work_and_resume_supersedes(finished):
    from flows.pipeline import first_round_to_run, pipeline
    from models.config import load_config

    work = finished["work"]
    config = load_config(work / "config.yaml")
    assert first_round_to_run(work, config) == 3  # all rounds done under this config
    reg = Registry(work)
    before = reg.read("cases", 2)
    journal = work / "rounds" / "r002" / "merge" / "journal"
    stamps = {p.name: p.stat().st_mtime_ns for p in journal.iterdir()}
    assert reg.supersede_from(2) == [2, 3]
    pipeline(str(work / "config.yaml"), str(work), 2, False)
    after = reg.read("cases", 2)
    assert {p.name: p.stat().st_mtime_ns for p in journal.iterdir()} == stamps  # per-case work reused
    cols = ["case_id", "role", "hybrid_label_sha256", "label_sources", "tumors", "scores", "selection", "trained"]
    pd.testing.assert_frame_equal(before[cols], after[cols])
    assert set(reg.superseded_rounds()["round"]) == {2, 3}


def test_second_pipeline_on_the_same_workdir_is_refused(finished):
    from tasks.workdir import WorkdirBusy, WorkdirLock

    with WorkdirLock(finished["work"]):
        with pytest.raises(WorkdirBusy, match="is in use by pid"):
            with WorkdirLock(finished["work"]):
                pass


def test_missing_dataset_and_incomplete_parent_fail_before_any_work(tmp_path, prefect_harness):
    from flows.pipeline import pipeline
    from flows.rounds import RoundError

    config = tmp_path / "c.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "nowhere"))
    with pytest.raises(RoundError, match="dataset folder .* not found"):
        pipeline(str(config), str(tmp_path / "w"), 0, False)
    config.write_text(tiny_config_yaml(tmp_path))
    with pytest.raises(RoundError, match="round 0 is not complete"):
        pipeline(str(config), str(tmp_path / "w"), 1, False)
    assert not (tmp_path / "w" / "registry").exists()
