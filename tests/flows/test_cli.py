"""The CLI as a user runs it (Typer's runner, real files)."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
COMMANDS = ["init", "phantom", "audit", "status", "demo", "merge", "select"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_init_writes_a_loadable_commented_config(tmp_path):
    from models.config import load_config

    path = tmp_path / "c.yaml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    assert load_config(path).merge.attribution_mm == 5.0
    again = runner.invoke(app, ["init", str(path)])
    assert again.exit_code != 0 and "--force" in again.output


def test_phantom_then_audit_shows_the_intended_roles(tmp_path):
    out = tmp_path / "cohort"
    result = runner.invoke(app, ["phantom", str(out), "--cases", "8", "--seed", "4"])
    assert result.exit_code == 0, result.output
    parquet = tmp_path / "audit.parquet"
    result = runner.invoke(app, ["audit", str(out), "--out", str(parquet)])
    assert result.exit_code == 0, result.output
    audit = pd.read_parquet(parquet)
    truth = json.loads((out / "phantom.json").read_text())["cases"]
    assert {r.case_id: r.role for r in audit.itertuples()} == {c: t["role"] for c, t in truth.items()}
    for column in ("case_id", "role", "annotated_classes", "image_path", "label_path", "image_sha256",
                   "spacing", "shape", "voxel_counts", "label_resampled", "quarantine_reason"):
        assert column in audit.columns
    assert "intake audit: 8 cases" in result.output


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


def test_demo_records_the_intake_round_and_status_reports_it(tmp_path):
    work = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--workdir", str(work), "--cases", "8"])
    assert result.exit_code == 0, result.output
    status = runner.invoke(app, ["status", "--workdir", str(work), "--json"])
    info = json.loads(status.output)
    assert info["export"] is None
    (round0,) = info["rounds"]
    assert round0["round"] == 0 and round0["status"] == "completed"
    assert sum(round0["counts"]["roles"].values()) == 8
    cases = pd.read_parquet(work / "registry" / "cases" / "round=000")
    assert len(cases) == 8 and cases["quarantine_reason"].isna().all()
