"""A workdir that is not what the registry says: damaged files, changed labels, a dead
pipeline, a live one. Each command says so in one line, and a refused command changes
nothing. A small registry is written directly (no training): what is checked is the
commands' behaviour on it."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hybridlabel.cli.main import app
from hybridlabel.data_registry.store import PART, Registry
from hybridlabel.models.config import load_config
from tests.conftest import tiny_config_yaml

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path, phantom_cohort):
    """Rounds 0 and 1 completed under the config (model folders and hybrid labels on
    disk, with their sha256 in the registry), as a finished run leaves them."""
    from hybridlabel.tasks.registry import config_record

    work = tmp_path / "w"
    config_path = tmp_path / "c.yaml"
    config_path.write_text(tiny_config_yaml(phantom_cohort, rounds=3))
    config = load_config(config_path)
    reg = Registry(work)
    for r in (0, 1):
        model = work / f"model{r}"
        (model / "fold_all").mkdir(parents=True)
        (model / "fold_all" / "checkpoint_final.pth").write_bytes(b"weights")
        rows = []
        for i in range(3):
            label = work / f"r{r}" / f"case{i}.nii.gz"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_bytes(f"label {r} {i}".encode())
            rows.append(
                {
                    "case_id": f"case{i}",
                    "round": r,
                    "role": "partial",
                    "hybrid_label_path": str(label),
                    "hybrid_label_sha256": hashlib.sha256(label.read_bytes()).hexdigest(),
                }
            )
        reg.commit_round(
            r,
            pd.DataFrame(rows),
            {
                "name": config.rounds[r].name,
                "kind": "teacher" if r == 0 else "student",
                "status": "completed",
                "model_dir": str(model),
                **config_record(config),
            },
        )
    return work, config_path


def _snapshot(work: Path) -> dict:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted((work / "registry").rglob("*")) if p.is_file()}


def _one_line(result, fragment: str) -> None:
    """Exit 2 and one message (rich may wrap it at the terminal width; nothing else printed)."""
    assert result.exit_code == 2, result.output
    assert "".join(fragment.split()) in "".join(result.output.split()), result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output, result.output


def test_status_names_a_damaged_round_and_the_fix(workdir):
    work, _ = workdir
    (work / "r1" / "case2.nii.gz").unlink()
    result = runner.invoke(app, ["status", "--workdir", str(work)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    flat = "".join(result.output.split())  # rich wraps long paths
    assert "damaged" in flat and "case2.nii.gzismissing" in flat and "resume--round1" in flat
    info = json.loads(runner.invoke(app, ["status", "--workdir", str(work), "--json"]).output)
    assert [r["status"] for r in info["rounds"]] == ["completed", "damaged"]


def test_a_truncated_partition_is_named_by_every_command(workdir):
    work, config = workdir
    part = work / "registry" / "cases" / "round-000" / PART
    part.write_bytes(part.read_bytes()[:64])
    _one_line(
        runner.invoke(app, ["status", "--workdir", str(work)], env={"COLUMNS": "300"}),
        "round-000/part-0.parquet is damaged",
    )
    _one_line(
        runner.invoke(app, ["run", str(config), "--workdir", str(work)], env={"COLUMNS": "300"}),
        "round-000/part-0.parquet is damaged",
    )


def test_run_refuses_a_changed_hybrid_label_before_starting(workdir):
    work, config = workdir
    (work / "r0" / "case1.nii.gz").write_bytes(b"edited by hand")
    before = _snapshot(work)
    result = runner.invoke(app, ["run", str(config), "--workdir", str(work)], env={"COLUMNS": "300"})
    _one_line(result, "round 0 is no longer intact: case case1: hybrid label")
    assert "resume --round 0" in result.output and _snapshot(work) == before


def test_a_running_round_without_its_pipeline_shows_interrupted(workdir):
    work, _ = workdir
    Registry(work).set_round_status(2, "running", name="tumours", kind="student")
    (work / ".lock").write_text(json.dumps({"pid": 2**22 + 7, "host": __import__("socket").gethostname()}))
    info = json.loads(runner.invoke(app, ["status", "--workdir", str(work), "--json"]).output)
    assert info["rounds"][2]["status"] == "interrupted"


def test_resume_and_run_against_a_live_pipeline_change_nothing(workdir):
    """Another process holds the workdir: resume (which supersedes rounds) and run are
    refused with one line, and the registry is byte-for-byte as it was."""
    work, config = workdir
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom hybridlabel.tasks.workdir import WorkdirLock\n"
            f"lock = WorkdirLock({str(work)!r}).__enter__()\nprint('held', flush=True)\n"
            "time.sleep(120)\n",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(work)
        for args in (
            ["resume", "--round", "1", "--workdir", str(work), "--config", str(config)],
            ["run", str(config), "--workdir", str(work)],
        ):
            _one_line(runner.invoke(app, args, env={"COLUMNS": "300"}), f"is in use by pid {holder.pid}")
            assert _snapshot(work) == before and not (work / "registry" / "superseded").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_missing_dataset_is_one_line_before_prefect(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "nowhere"))
    _one_line(
        runner.invoke(app, ["run", str(config), "--workdir", str(tmp_path / "w")], env={"COLUMNS": "300"}),
        "dataset folder",
    )
    assert not (tmp_path / "w" / "registry").exists()


@pytest.mark.parametrize(
    "serve, message",
    [
        ("html", "answers, but not as a Prefect server"),
        ("404", "answers HTTP 404, not as a Prefect server"),
        (None, "cannot be reached"),
    ],
)
def test_a_prefect_api_url_that_is_not_prefect_is_one_line(workdir, monkeypatch, serve, message):
    """The probe pointed PREFECT_API_URL at something else: a traceback from Prefect's client."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404 if serve == "404" else 200)
            self.end_headers()
            self.wfile.write(b"<html>a web page</html>")

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    if serve:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    else:
        server.server_close()  # nothing listens on the port any more
    work, config = workdir
    before = _snapshot(work)
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
    try:
        result = runner.invoke(app, ["run", str(config), "--workdir", str(work)], env={"COLUMNS": "300"})
        _one_line(result, message)
        assert f"PREFECT_API_URL=http://127.0.0.1:{port}/api" in result.output and _snapshot(work) == before
    finally:
        if serve:
            server.shutdown()
            server.server_close()
