"""The steps of docs/prefect-server.md against a real server on a free loopback
port, its database on a real PostgreSQL (deploy/postgres.sh, also on loopback): create
the pool, start a worker, deploy, run the pipeline deployment, see it complete."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import tiny_config_yaml

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it

PREFECT = str(Path(sys.executable).with_name("prefect"))
HYBRIDLABEL = str(Path(sys.executable).with_name("hybridlabel"))
POSTGRES = str(Path(__file__).resolve().parents[2] / "deploy" / "postgres.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def api(url: str, path: str, body: dict | None = None):
    req = urllib.request.Request(
        url + path, data=json.dumps(body or {}).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def postgres():
    """A PostgreSQL cluster in a fresh folder that the `postgres` user can enter (the
    server refuses to run as root; pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="hybridlabel-pg-"))
    root.chmod(0o711)
    data = root / "pg"
    url = subprocess.run([POSTGRES, "start", str(data), str(free_port())], capture_output=True, text=True)
    assert url.returncode == 0, url.stderr
    try:
        yield url.stdout.strip()
    finally:
        subprocess.run([POSTGRES, "stop", str(data)], check=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server(tmp_path, postgres):
    assert postgres.startswith("postgresql+asyncpg://prefect:") and "@127.0.0.1:" in postgres
    port = free_port()
    env = dict(
        os.environ,
        PREFECT_HOME=str(tmp_path / "home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_API_DATABASE_CONNECTION_URL=postgres,
    )
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/api/health", 120)
        yield env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn child
        proc.wait(30)
        log.close()


def test_pipeline_deployment_runs_to_completion_on_a_process_worker(server, phantom_cohort, tmp_path):
    env = server
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(phantom_cohort, rounds=2, name="dep", dataset_id=850))
    work = tmp_path / "work"
    subprocess.run(
        [PREFECT, "work-pool", "create", "hybridlabel-process", "--type", "process"],
        env=env,
        check=True,
        capture_output=True,
    )
    deployed = subprocess.run(
        [HYBRIDLABEL, "deploy", "--config", str(config), "--workdir", str(work)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "pipeline/pipeline" in deployed.stdout and "single-round" in deployed.stdout
    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "hybridlabel-process", "--type", "process"],
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        run = subprocess.run(
            [PREFECT, "deployment", "run", "pipeline/pipeline", "--param", "export=false"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "Created flow run" in run.stdout
        url = env["PREFECT_API_URL"]
        deadline, state = time.time() + 600, None
        while time.time() < deadline:
            runs = api(
                url,
                "/flow_runs/filter",
                {
                    "flow_runs": {"parent_task_run_id": {"is_null_": True}},
                    "limit": 10,
                    "offset": 0,
                    "sort": "EXPECTED_START_TIME_DESC",
                },
            )
            states = {r["name"]: r["state_type"] for r in runs}
            state = next((r["state_type"] for r in runs if r["deployment_id"]), None)
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(3)
        assert state == "COMPLETED", (states, (tmp_path / "worker.log").read_text()[-3000:])
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:  # seen on a loaded machine; the worker's shutdown is not under test
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
        worker_log.close()
    from hybridlabel.data_registry.store import Registry

    rounds = Registry(work).rounds()
    assert list(rounds["status"]) == ["completed", "completed"]
    assert rounds["flow_run_id"].notna().all()
    # the server kept its runs in PostgreSQL, not in a SQLite file under PREFECT_HOME
    assert not list((tmp_path / "home").rglob("*.db"))
    database = env["PREFECT_API_DATABASE_CONNECTION_URL"].replace("+asyncpg", "")
    flow_runs = subprocess.run(
        ["psql", database, "-tAc", "SELECT count(*) FROM flow_run WHERE deployment_id IS NOT NULL"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(flow_runs.stdout) >= 1
    shutil.rmtree(work, ignore_errors=True)
