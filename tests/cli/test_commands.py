"""The CLI as a user runs it (Typer's runner, real files)."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from hybridlabel.cli.main import app

runner = CliRunner()
COMMANDS = [
    "init",
    "phantom",
    "audit",
    "status",
    "demo",
    "merge",
    "select",
    "run",
    "resume",
    "deploy",
    "evaluate",
    "report",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_init_writes_a_loadable_commented_config(tmp_path):
    from hybridlabel.models.config import load_config

    path = tmp_path / "c.yaml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    assert load_config(path).merge.attribution_mm == 5.0
    again = runner.invoke(app, ["init", str(path)])
    assert again.exit_code != 0 and "--force" in again.output
    for preset, configuration in (("cpu", "2d"), ("gpu", "3d_fullres")):
        target = tmp_path / f"{preset}.yaml"
        assert runner.invoke(app, ["init", str(target), "--preset", preset]).exit_code == 0
        loaded = load_config(target)
        assert {r.training.configuration for r in loaded.rounds} == {configuration}
    cpu = load_config(tmp_path / "cpu.yaml")
    assert cpu.rounds[0].training.max_train_seconds is None  # iterations: the same models on every machine
    # on a CPU no separate export student: the rounds train the export's network
    assert {r.training.network for r in cpu.rounds} == {cpu.export.network}
    bad = runner.invoke(app, ["init", str(tmp_path / "x.yaml"), "--preset", "tpu"])
    assert bad.exit_code == 2 and "--preset must be one of cpu, gpu" in bad.output


def test_phantom_then_audit_shows_the_intended_roles(tmp_path):
    out = tmp_path / "cohort"
    result = runner.invoke(app, ["phantom", str(out), "--cases", "8", "--seed", "4", "--sites", "3"])
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(out / "manifest.csv")
    written = json.loads((out / "phantom.json").read_text())
    assert set(manifest["site"]) <= {0, 1, 2} and sorted(written["sites"]) == ["0", "1", "2"]
    assert {c: t["site"] for c, t in written["cases"].items()} == dict(zip(manifest["case_id"], manifest["site"]))
    parquet = tmp_path / "audit.parquet"
    result = runner.invoke(app, ["audit", str(out), "--out", str(parquet)])
    assert result.exit_code == 0, result.output
    audit = pd.read_parquet(parquet)
    truth = json.loads((out / "phantom.json").read_text())["cases"]
    assert {r.case_id: r.role for r in audit.itertuples()} == {c: t["role"] for c, t in truth.items()}
    for column in (
        "case_id",
        "role",
        "annotated_classes",
        "image_path",
        "label_path",
        "image_sha256",
        "spacing",
        "shape",
        "orientation",
        "voxel_counts",
        "label_resampled",
        "quarantine_reason",
    ):
        assert column in audit.columns
    assert "intake audit: 8 cases" in result.output
    assert set(audit["orientation"]) == {"LPS"} and "orientations" not in result.output


def test_audit_notes_when_images_come_in_two_orientations(tmp_path):
    raw = tmp_path / "raw"
    for i, direction in enumerate([None, None, (-1, 0, 0, 0, -1, 0, 0, 0, 1)]):
        image = sitk.GetImageFromArray(np.random.default_rng(i).normal(0, 100, (4, 6, 8)).astype(np.int16))
        label = sitk.GetImageFromArray(np.pad(np.ones((2, 4, 6), np.uint8), 1))
        if direction:
            image.SetDirection(direction)
        label.CopyInformation(image)
        for sub, img, name in (("imagesTr", image, f"c{i}_0000"), ("labelsTr", label, f"c{i}")):
            (raw / sub).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(img, str(raw / sub / f"{name}.nii.gz"))
    parquet = tmp_path / "audit.parquet"
    result = runner.invoke(app, ["audit", str(raw), "--out", str(parquet)])
    assert result.exit_code == 0, result.output
    assert "2 axis orientations (LPS: 2, RAS: 1; not LPS: c2)" in " ".join(result.output.split())
    assert dict(zip(*pd.read_parquet(parquet)[["case_id", "orientation"]].T.values)) == {
        "c0": "LPS",
        "c1": "LPS",
        "c2": "RAS",
    }


def test_cli_errors_are_one_clear_line(tmp_path):
    missing = runner.invoke(app, ["audit", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not found" in missing.output
    (tmp_path / "raw").mkdir()
    (tmp_path / "m.csv").write_text("name\nx\n")
    bad = runner.invoke(app, ["audit", str(tmp_path / "raw"), "--manifest", str(tmp_path / "m.csv")])
    assert bad.exit_code == 2 and "lacks column" in bad.output
    (tmp_path / "c.yaml").write_text("merge: {attribution_mm: oops}")
    cfg = runner.invoke(app, ["audit", str(tmp_path / "raw"), "--config", str(tmp_path / "c.yaml")])
    assert cfg.exit_code == 2 and "merge.attribution_mm" in cfg.output
    nostatus = runner.invoke(app, ["status", "--workdir", str(tmp_path / "empty")])
    assert nostatus.exit_code == 2 and "holds no registry" in nostatus.output


def test_demo_prepares_a_cohort_and_a_config_with_teacher_and_two_students(tmp_path):
    """The demo's pipeline run itself is the README's main job (timed in the closing note);
    the pipeline it runs is tested in test_pipeline.py with test budgets."""
    from rich.console import Console

    from hybridlabel.cli.demo import DEMO_SITES, prepare_demo
    from hybridlabel.models.config import load_config
    from hybridlabel.models.presets import CPU_ITERATIONS

    path = prepare_demo(tmp_path / "demo", 8, 0, Console(file=open("/dev/null", "w")))
    truth = json.loads((tmp_path / "demo" / "phantom" / "phantom.json").read_text())
    assert len(truth["sites"]) == DEMO_SITES  # FLARE's premise: strong labels from one site of several
    config = load_config(path)
    assert config.dataset == tmp_path / "demo" / "phantom" and (config.dataset / "manifest.csv").exists()
    kinds = [r.kind for r in config.rounds]
    assert kinds[0] == "teacher" and kinds.count("student") >= 2
    assert config.rounds[-1].targets == "organs+tumor" and "unlabeled" in config.rounds[-1].train_roles
    # the cpu preset's network (benchmarks/bench_learning.py), budgets in iterations, not
    # seconds, so that every CPU trains the same models
    assert all(r.training.configuration == "2d" and r.training.max_train_seconds is None for r in config.rounds)
    iterations = [r.training.epochs * r.training.iterations_per_epoch for r in config.rounds]
    assert iterations == [CPU_ITERATIONS["teacher"], CPU_ITERATIONS["student"], CPU_ITERATIONS["student"]]
    assert config.export.network == config.rounds[-1].training.network  # the export takes the last model


def test_status_reports_a_registry_round(tmp_path):
    from hybridlabel.data_registry.store import Registry
    from hybridlabel.models.config import LabelMapConfig
    from hybridlabel.tasks.intake.audit import audit_dataset
    from hybridlabel.tasks.intake.phantom import write_phantom_cohort

    write_phantom_cohort(tmp_path / "c", 6, 1)
    cases = audit_dataset(tmp_path / "c", LabelMapConfig())
    model = tmp_path / "w" / "model"
    (model / "fold_all").mkdir(parents=True)
    (model / "fold_all" / "checkpoint_final.pth").write_bytes(b"weights")
    Registry(tmp_path / "w").commit_round(
        0,
        cases,
        {
            "name": "teacher",
            "kind": "teacher",
            "status": "completed",
            "model_dir": str(model),
            "counts": json.dumps({"roles": {"strong": 2}}),
        },
    )
    status = runner.invoke(app, ["status", "--workdir", str(tmp_path / "w"), "--json"])
    info = json.loads(status.output)
    assert info["export"] is None and info["rounds"][0]["status"] == "completed"
    table = runner.invoke(app, ["status", "--workdir", str(tmp_path / "w")])
    assert table.exit_code == 0 and "teacher" in table.output


def test_help_lists_the_main_job_first_and_flags_take_no_value():
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "100"}).output
    assert top.index("│ demo ") < top.index("│ run ") < top.index("│ init ") < top.index("│ merge ")
    for command in ("run", "demo", "predict"):
        out = runner.invoke(app, [command, "--help"], env={"COLUMNS": "100"}).output
        assert "--verbose" in out or command == "predict"
        assert "<bool>" not in out
        usage = out.split("Usage:")[1].split("\n")[0]
        assert "[OPTIONS]" in usage and not re.search(r"\{[a-z_]+\}", usage)  # arguments named alike: CONFIG, MODEL


def test_a_missing_config_is_one_line_and_creates_no_workdir(tmp_path):
    typo = tmp_path / "typo"
    out = runner.invoke(app, ["resume", "--round", "1", "--workdir", str(typo)])
    assert out.exit_code == 2 and "config.yaml not found; pass --config" in out.output
    out = runner.invoke(app, ["run", str(tmp_path / "nope.yaml"), "--workdir", str(typo)])
    assert out.exit_code == 2 and "hybridlabel init" in out.output
    assert not typo.exists()  # no workdir, log folder or Prefect home left behind
