"""The Prefect pipeline for real (nnU-Net training with test budgets): rounds, registry
commits, artifacts, idempotent resume, workdir lock, early failures."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from hybridlabel.data_registry.store import Registry
from hybridlabel.tasks.workdir import Layout
from tests.conftest import DUPLICATED, tiny_config_yaml

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it


def test_every_round_is_committed_with_every_case(finished, phantom_cohort):
    reg = Registry(finished["work"])
    rounds = reg.rounds()
    assert list(rounds["round"]) == [0, 1, 2, 3]
    assert list(rounds["kind"]) == ["teacher", "student", "student", "export"]
    assert set(rounds["status"]) == {"completed"}
    phantom = json.loads((phantom_cohort / "phantom.json").read_text())["cases"]
    assert phantom[DUPLICATED]["role"] == "partial"
    for r in range(3):
        cases = reg.read("cases", r)
        usable = cases[cases["quarantine_reason"].isna()]
        assert len(cases) == len(phantom) + 1 and usable["case_id"].is_unique and len(usable) == len(phantom)
        assert (cases["round"] == r).all()
    # the id given twice: the second row is quarantined, and the round's results are the first's
    r1 = reg.read("cases", 1)
    real, dup = r1[r1["case_id"] == DUPLICATED].to_dict("records")
    assert "duplicate case id" in dup["quarantine_reason"] and not dup["trained"] and dup["hybrid_label_path"] is None
    assert real["role"] == "partial" and real["trained"] and real["hybrid_label_path"]
    teacher = reg.read("cases", 0)
    assert set(teacher.loc[teacher["trained"], "role"]) == {"strong"}
    assert Path(finished["result"]["export"]).exists()


def test_student_rounds_record_labels_sources_scores_and_selection(finished):
    from hybridlabel.tasks.files.imageio import sha256_path

    reg = Registry(finished["work"])
    r1, r2 = reg.read("cases", 1), reg.read("cases", 2)
    merged = r1[r1["hybrid_label_path"].notna()]
    assert set(merged["role"]) == {"partial", "tumor_only"}
    store = Layout(finished["work"]).store
    for row in merged.to_dict("records"):
        sha = row["hybrid_label_sha256"]
        assert sha256_path(Path(row["hybrid_label_path"])) == sha
        # kept once by content: the round's file is a hard link to the store's copy
        assert os.path.samefile(row["hybrid_label_path"], store / sha[:2] / f"{sha}.nii.gz")
        sources = json.loads(row["label_sources"])
        for c in row["annotated_classes"]:
            assert sources[str(c)] in ("gt", "pseudo")  # pseudo only for a tumour-bearing organ
        assert {"organ_entropy", "tumor_entropy"} <= set(json.loads(row["scores"]))
    unlabeled = r2[r2["role"] == "unlabeled"]
    assert unlabeled["selection"].notna().all() and unlabeled["selection_reason"].str.contains("cut-off").all()
    kept = unlabeled["selection"] != "sits_out"
    assert (unlabeled.loc[kept, "trained"]).all() and not unlabeled.loc[~kept, "trained"].any()
    assert not r2.loc[r2["role"] == "val", "trained"].any()  # val never trains


def test_students_learn_only_trusted_pseudo_classes(finished):
    """Round 1's pseudo labels are scored against the predicted cases' annotations; a class
    below the threshold is unannotated in the student's loss where it is pseudo-labelled."""
    from hybridlabel.models.pseudo_trust import loss_annotated

    reg = Registry(finished["work"])
    counts = json.loads(reg.round_row(1)["counts"])
    r1 = reg.read("cases", 1)
    r1 = r1[r1["quarantine_reason"].isna()].set_index("case_id")
    merged = r1[r1["hybrid_label_path"].notna()]
    dice = {int(c): d for c, d in counts["pseudo_dice"].items()}
    where = {int(c): w for c, w in counts["pseudo_evidence"].items()}
    assert dice and set(where) == set(dice) and all(0 <= d <= 1 for d in dice.values())
    # evidence only from what the teacher did not train on: the strong cases never count
    unseen = {c for classes in merged[merged["role"] != "strong"]["annotated_classes"] for c in classes}
    assert {c for c, w in where.items() if w == "unseen cases"} <= unseen
    assert {c for c, w in where.items() if w == "val"} == set(dice) - {
        c for c, w in where.items() if w == "unseen cases"
    }
    from hybridlabel.models.config import load_config

    every = set(load_config(finished["config"]).label_map.labels) - {0}
    assert counts["untrusted_classes"] == sorted(c for c in every if dice.get(c, -1) < 0.75)
    (spec_file,) = (finished["work"] / "nnunet" / "preprocessed").glob("Dataset*_r1/training_spec_*.json")
    annotated = json.loads(spec_file.read_text())["annotated"]
    trained = r1[r1["trained"]]
    assert set(annotated) == set(trained.index)
    for case_id, row in trained.iterrows():
        if row["hybrid_label_path"]:
            expected = loss_annotated(json.loads(row["label_sources"]), counts["untrusted_classes"])
        else:  # a strong case trains on its own label
            expected = list(row["annotated_classes"])
        assert annotated[case_id] == expected


def test_every_round_records_val_and_pseudo_label_metrics(finished, phantom_cohort):
    from hybridlabel.models.holdout import held_out_classes

    reg = Registry(finished["work"])
    roles = json.loads((phantom_cohort / "phantom.json").read_text())["cases"]
    val_cases = {c for c, info in roles.items() if info["role"] == "val"}
    for r in range(3):
        metrics = reg.read("metrics", r)
        val = metrics[metrics["reference"] == "val_gt"]
        assert len(val) and val["dsc"].between(0, 1).all() and val["nsd"].between(0, 1).all()
        assert set(val["case_id"]) == set(reg.read("cases", r).query("role == 'val'")["case_id"])
        assert set(val["case_id"]) == val_cases
        # organs-only models are not scored on the tumour; the organs+tumour round is
        assert (14 in set(val["class_id"])) == (r == 2)
        means = json.loads(reg.round_row(r)["mean_metrics"])
        assert means["val_gt"]["organ mean"]["cases"] == val["case_id"].nunique()
    r1 = reg.read("metrics", 1)
    cases1 = reg.read("cases", 1)
    cases1 = cases1[cases1["quarantine_reason"].isna()].set_index("case_id")  # not the duplicated id's 2nd row
    pseudo = r1[r1["reference"].isin(["train_gt", "holdout_gt"])]
    assert set(cases1.loc[pseudo["case_id"].unique(), "role"]) <= {"partial", "tumor_only"}
    for row in pseudo.to_dict("records"):
        case = cases1.loc[row["case_id"]]
        assert row["class_id"] in case["annotated_classes"]
        held = row["class_id"] in (case["held_out_classes"] or [])
        assert (row["reference"] == "holdout_gt") == held
        assert case["held_out_classes"] == held_out_classes(row["case_id"], case["annotated_classes"], 0.34, 1)
    held_cases = [c for c, row in cases1.iterrows() if row["held_out_classes"]]
    assert held_cases and "holdout_gt" in set(pseudo["reference"])
    for case_id in held_cases:  # a held-back class is never ground truth in the hybrid label
        row = cases1.loc[case_id]
        sources = json.loads(row["label_sources"])
        assert all(sources[str(c)] != "gt" for c in row["held_out_classes"])


def test_complete_labels_are_scored_against_the_complete_ground_truth(finished, phantom_cohort):
    """The phantom's groundTruth/ holds every case's complete label: each student round
    scores its hybrid labels of the partial and unlabeled cases it predicted, and the
    parent's raw predictions of the same cases, on every class."""
    reg = Registry(finished["work"])
    roles = json.loads((phantom_cohort / "phantom.json").read_text())["cases"]
    assert reg.read("metrics", 0)["reference"].eq("val_gt").all()  # the teacher predicts no training case
    for r, predicted_roles in ((1, {"partial", "tumor_only"}), (2, {"partial", "tumor_only", "unlabeled"})):
        metrics = reg.read("metrics", r)
        hybrid, raw = (metrics[metrics["reference"] == ref] for ref in ("complete_hybrid", "complete_raw"))
        cases = set(hybrid["case_id"])
        assert cases == set(raw["case_id"]) and {roles[c]["role"] for c in cases} == predicted_roles
        assert set(hybrid["class_id"]) == set(range(1, 14)) | ({14} if r == 2 else set())  # the round's classes
        assert set(raw["class_id"]) == set(range(1, 14))  # the parent trained organs only
        means = json.loads(reg.round_row(r)["mean_metrics"])
        assert 0 <= means["complete_hybrid"]["organ mean (present)"]["dsc"] <= 1
    # where a partial case's own label annotates an organ, the hybrid label is that label (cleaned):
    # its complete-label Dice beats the raw prediction's on those classes
    cases = reg.read("cases", 1)
    sources = {
        c: json.loads(s)
        for c, s in cases.loc[cases["quarantine_reason"].isna(), ["case_id", "label_sources"]].itertuples(index=False)
        if s
    }
    m1 = reg.read("metrics", 1)
    gt_rows = [
        (row["case_id"], row["class_id"])
        for row in m1[m1["reference"] == "complete_hybrid"].to_dict("records")
        if sources[row["case_id"]].get(str(row["class_id"])) == "gt"
    ]
    keyed = m1.set_index(["reference", "case_id", "class_id"])["dsc"]
    assert gt_rows and sum(keyed["complete_hybrid"].loc[k] for k in gt_rows) > sum(
        keyed["complete_raw"].loc[k] for k in gt_rows
    )


def test_export_trains_the_lightweight_student_and_records_it(finished):
    import zipfile

    reg = Registry(finished["work"])
    row = reg.round_row(3)
    counts = json.loads(row["counts"])
    # the test rounds train `tiny`; the default export network is `lightweight`: trained anew
    assert counts["network"] == "lightweight" and counts["parameters"] > 1_000_000
    assert counts["size_bytes"] == Path(counts["archive"]).stat().st_size
    assert "train" in json.loads(row["stage_seconds"])
    assert "lightweight" in row["model_dir"] or row["model_dir"].endswith(".hlmodel.zip")
    metrics = reg.read("metrics", 3)
    assert set(metrics["reference"]) == {"val_gt"} and 14 in set(metrics["class_id"])
    with zipfile.ZipFile(counts["archive"]) as zf:
        info = json.loads(zf.read("hybridlabel.json"))
    assert info["network"] == "lightweight" and info["fast"] is True
    # rounds 0-1 train 3d_fullres, round 2 (and so its export student) nnU-Net's 2d configuration
    assert info["configuration"] == "2d" and info["preprocessing"]["patch_size"].__len__() == 2
    assert [reg.round_row(r)["model_dir"].endswith("__3d_fullres") for r in range(3)] == [True, True, False]
    assert reg.round_row(2)["model_dir"].endswith("__2d")
    assert info["val_metrics"]["organ mean"]["cases"] == metrics["case_id"].nunique()
    assert {"target_spacing_zyx", "normalization_schemes", "intensity_properties"} <= set(info["preprocessing"])


def test_status_metrics_prints_rounds_by_classes(finished):
    from typer.testing import CliRunner

    from hybridlabel.cli.main import app

    result = CliRunner().invoke(app, ["status", "--workdir", str(finished["work"]), "--metrics"])
    assert result.exit_code == 0, result.output
    assert "val DSC per round" in result.output and "organ mean" in result.output
    assert "pseudo-label DSC vs held-back" in result.output


def test_round_artifacts_are_in_prefect(finished):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(
                    any_=[
                        "round-001-summary",
                        "round-002-summary",
                        "round-002-selection",
                        "round-001-predict",
                        "round-000-metrics-val-gt",
                        "round-001-metrics-train-gt",
                    ]
                )
            )
        )
        merges = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="merge-")))
    # per-case work runs in chunks named by their cases (one case per task in a round this small)
    assert merges and all(r.name.startswith("merge-phantom_") for r in merges)
    assert {a.key for a in found} >= {
        "round-001-summary",
        "round-002-selection",
        "round-001-predict",
        "round-000-metrics-val-gt",
        "round-001-metrics-train-gt",
    }
    summary = next(a for a in found if a.key == "round-001-summary")
    assert "Label sources per class" in summary.data and "Time per stage" in summary.data
    assert "Model on val cases" in summary.data and "organ mean" in summary.data
    assert "Pseudo labels, judged on what the parent did not train on" in summary.data and "measured on" in summary.data
    # the label-source table has a column for every source the registry holds (not only the first row's)
    held = {
        src
        for text in Registry(finished["work"]).read("cases", 1)["label_sources"].dropna()
        for cls, src in json.loads(text).items()
        if cls != "0"
    }
    header = summary.data.split("## Label sources per class (cases)")[1].strip().splitlines()[0]
    assert {"gt", "pseudo"} <= held <= {c.strip() for c in header.strip("|").split("|")}
    # the CutMix round says what it pasted: objects per host organ, as many as the registry holds
    tumour_round = next(a for a in found if a.key == "round-002-summary").data
    assert "CutMix pool" not in summary.data and "## CutMix pool" in tumour_round
    rows = tumour_round.split("## CutMix pool")[1].split("##")[0].strip().splitlines()[3:]  # title, head, rule
    objects = json.loads(Registry(finished["work"]).round_row(2)["counts"])["cutmix"]["objects"]
    assert sum(int(r.strip("|").split("|")[1]) for r in rows) == objects


def test_rerun_skips_completed_work_and_resume_supersedes(finished):
    from hybridlabel.flows.pipeline import first_round_to_run, pipeline
    from hybridlabel.models.config import load_config

    work = finished["work"]
    config = load_config(work / "config.yaml")
    assert first_round_to_run(work, config) == 3  # all rounds done under this config
    reg = Registry(work)
    before = reg.read("cases", 2)
    journal = work / "rounds" / "r002" / "merge" / "journal"
    stamps = {p.name: p.stat().st_mtime_ns for p in journal.iterdir()}
    checkpoint = Path(reg.round_row(2)["model_dir"]) / "fold_all" / "checkpoint_final.pth"
    trained_at = checkpoint.stat().st_mtime_ns
    assert reg.supersede_from(2) == [2, 3]
    pipeline(str(work / "config.yaml"), str(work), 2, False)
    # same inputs (labels re-preprocessed to other blosc2 bytes, same arrays): the model is reused
    assert checkpoint.stat().st_mtime_ns == trained_at
    assert not list(checkpoint.parents[1].parent.glob("*.superseded-*"))
    after = reg.read("cases", 2)
    assert {p.name: p.stat().st_mtime_ns for p in journal.iterdir()} == stamps  # per-case work reused
    cols = ["case_id", "role", "hybrid_label_sha256", "label_sources", "tumors", "scores", "selection", "trained"]
    pd.testing.assert_frame_equal(before[cols], after[cols])
    assert set(reg.superseded_rounds()["round"]) == {2, 3}


def test_export_of_the_last_rounds_network_reuses_its_model_and_metrics(finished, tmp_path):
    """Runs after the resume test (round 2 redone, export superseded): exporting with
    `export.network` = the rounds' network trains nothing and copies round 2's val rows."""
    from hybridlabel.flows.export import export_model
    from hybridlabel.models.config import load_config
    from hybridlabel.models.config_yaml import render_config_yaml

    work = finished["work"]
    config = load_config(work / "config.yaml")
    same = tmp_path / "same.yaml"
    same.write_text(render_config_yaml(config.model_copy(update={"export": {"network": "tiny"}})))
    archive = export_model(load_config(same), str(work))
    reg = Registry(work)
    row = reg.round_row(3)
    assert json.loads(row["counts"])["network"] == "tiny" and row["model_dir"] == archive
    assert "train" not in json.loads(row["stage_seconds"])
    exported, last = reg.read("metrics", 3), reg.read("metrics", 2)
    last = last[last["reference"] == "val_gt"]
    cols = ["case_id", "class_id", "dsc", "nsd"]
    pd.testing.assert_frame_equal(exported[cols].reset_index(drop=True), last[cols].reset_index(drop=True))
    assert (exported["round"] == 3).all()


def test_a_round_ranks_unlabeled_cases_by_disagreement(finished, tmp_path):
    """Round 2 again, ranked by disagreement (round 1 predicted no unlabeled case, so
    `previous_round` compares with the mirrored pass): the unlabeled cases have both
    scores, and the cases kept are the ones whose two predictions agree most."""
    from hybridlabel.flows.pipeline import pipeline
    from hybridlabel.models.config import load_config
    from hybridlabel.models.config_yaml import render_config_yaml

    work = finished["work"]
    config = load_config(work / "config.yaml")
    selection = config.selection.model_copy(update={"scorer": "disagreement", "disagreement_with": "previous_round"})
    path = tmp_path / "disagreement.yaml"
    path.write_text(render_config_yaml(config.model_copy(update={"selection": selection})))
    reg = Registry(work)
    reg.supersede_from(2)
    pipeline(str(path), str(work), 2, False)
    r2 = reg.read("cases", 2)
    unlabeled = r2[(r2["role"] == "unlabeled") & r2["quarantine_reason"].isna()]
    scores = [json.loads(s) for s in unlabeled["scores"]]
    assert scores and all({"organ_disagreement", "organ_entropy"} <= s.keys() for s in scores)
    disagreement = pd.Series([s["organ_disagreement"] for s in scores], index=unlabeled.index)
    kept = unlabeled["selection"] != "sits_out"
    assert kept.any() and (~kept).any() and disagreement[kept].max() <= disagreement[~kept].min()
    labeled = r2[r2["role"].isin(["partial", "tumor_only"]) & r2["scores"].notna()]
    assert len(labeled) and not any("organ_disagreement" in json.loads(s) for s in labeled["scores"])


def test_the_workdir_lock_is_reentrant_in_its_process(finished):
    """The CLI takes the lock, then the flow takes it again; the inner exit keeps it held.
    (Another process is refused: tests/cli/test_integrity.py.)"""
    from hybridlabel.tasks.workdir import WorkdirLock

    lock = finished["work"] / ".lock"
    with WorkdirLock(finished["work"]):
        with WorkdirLock(finished["work"]) as inner:
            assert inner._nested and lock.exists()
        assert lock.exists() and WorkdirLock(finished["work"]).held_by_live_process()
    assert not lock.exists()


def test_missing_dataset_and_incomplete_parent_fail_before_any_work(tmp_path, prefect_harness):
    from hybridlabel.flows.pipeline import pipeline
    from hybridlabel.tasks.round_inputs import RoundError

    config = tmp_path / "c.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "nowhere"))
    with pytest.raises(RoundError, match="dataset folder .* not found"):
        pipeline(str(config), str(tmp_path / "w"), 0, False)
    config.write_text(tiny_config_yaml(tmp_path))
    with pytest.raises(RoundError, match="round 0 is not complete"):
        pipeline(str(config), str(tmp_path / "w"), 1, False)
    assert not (tmp_path / "w" / "registry").exists()


def test_the_tumour_round_trains_with_cutmix(finished):
    """Round 2 cuts every ground-truth tumour of its training set into a pool (recorded per
    case in the registry) and its training pastes them into tumour-free cases' patches."""
    import numpy as np

    from hybridlabel.models.cutmix import EXAMPLES_FILE
    from hybridlabel.models.nnunet.identity import checkpoint_path

    reg = Registry(finished["work"])
    counts = json.loads(reg.round_row(2)["counts"])
    r2 = reg.read("cases", 2)
    donors = r2[r2["tumor_objects"].notna()]
    assert counts["cutmix"]["donors"] == len(donors) > 0
    assert set(donors["role"]) <= {"partial", "tumor_only"}  # ground-truth tumours only
    assert all(14 in classes for classes in donors["annotated_classes"])
    objects = [o for text in donors["tumor_objects"] for o in json.loads(text)]
    assert counts["cutmix"]["objects"] == len(objects) > 0
    assert all(o["voxels"] >= 1 and (o["host_organ"] == "extra_organ" or 1 <= o["host_organ"] <= 13) for o in objects)
    assert reg.read("cases", 1)["tumor_objects"].isna().all()  # an organs-only round cuts nothing
    with np.load(checkpoint_path(reg.round_row(2)["model_dir"]).parent / EXAMPLES_FILE) as examples:
        boxes = [examples[k] for k in examples.files if k.startswith("box_")]
        labels = [examples[k] for k in examples.files if k.startswith("label_")]
    assert boxes and all(b.any() for b in boxes)  # what the network was fed holds a pasted box
    assert any((lab[box] == 14).any() for lab, box in zip(labels, boxes))  # with a tumour in it
