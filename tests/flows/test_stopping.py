"""Long commands stop when told, as a user stops them: Ctrl-C (SIGINT to the process
group), SIGTERM to the group (systemd), SIGTERM to the command alone, SIGKILL. Each time
during the teacher's training, with the Prefect server and nnU-Net running: the command
ends within 10 s with one line saying how to go on, nothing it started is left running,
the registry is byte for byte as it was, and the next run goes on (and trains again).
One workdir for all, each stop resumed by the next run (the probe's findings: still
running 45 s after Ctrl-C; an orphaned server after SIGTERM or SIGKILL)."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from tests.conftest import tiny_config_yaml

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it

HYBRIDLABEL = str(Path(sys.executable).with_name("hybridlabel"))
LONG = "{network: tiny, epochs: 1000, iterations_per_epoch: 2, val_iterations: 1, device: cpu, seed: 3}"


def _snapshot(work: Path) -> dict:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted((work / "registry").rglob("*")) if p.is_file()}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "300", "PREFECT_HOME": str(log.parent / ".prefect-home")}
    env.pop("PREFECT_API_URL", None)  # its own temporary server, as a user's command has
    return subprocess.Popen(
        [HYBRIDLABEL, *args], stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env, start_new_session=True
    )  # its own process group, as a terminal gives it


def _training(proc: subprocess.Popen, timeout_s: float = 300) -> list[psutil.Process]:
    """Wait until nnU-Net trains under the command; then every process it started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the command ended before training ({proc.returncode})"
        family = psutil.Process(proc.pid).children(recursive=True)
        with suppress(psutil.Error):  # a child that ended between listing and reading: look again
            if any("run_training" in " ".join(p.cmdline()) for p in family):
                time.sleep(2)  # a few iterations in
                return psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.5)
    raise AssertionError("training did not start")


def _stopped(proc: subprocess.Popen, family: list[psutil.Process], limit_s: float) -> tuple[float, int]:
    started = time.monotonic()
    code = proc.wait(timeout=limit_s + 30)
    ended = time.monotonic() - started
    _, alive = psutil.wait_procs(family, timeout=max(0.1, limit_s - (time.monotonic() - started)))
    assert not alive, [" ".join(p.cmdline())[:120] for p in alive if p.is_running()]
    return ended, code


@pytest.mark.parametrize("command", ["run", "ablate"])
def test_every_way_of_stopping_ends_everything_and_the_next_run_goes_on(tmp_path, phantom_cohort, command, request):
    config = tmp_path / "c.yaml"
    config.write_text(
        tiny_config_yaml(phantom_cohort, rounds=1, dataset_id=830).replace(
            "training: {network: tiny, epochs: 1, iterations_per_epoch: 2, val_iterations: 1, device: cpu, seed: 3}",
            f"training: {LONG}",
        )
    )
    work = tmp_path / "w"
    args = (
        ["run", str(config), "--workdir", str(work)]
        if command == "run"
        else ["ablate", str(config), "--workdir", str(work), "--arms", "teacher", "--seeds", "3"]
    )
    registry = work if command == "run" else work / "arms" / "teacher-s3"
    # ablate shares the code path; Ctrl-C there is enough to show it is wired
    ways = [
        ("SIGINT to the group", signal.SIGINT, True),
        ("SIGTERM to the group", signal.SIGTERM, True),
        ("SIGTERM to the command", signal.SIGTERM, False),
        ("SIGKILL", signal.SIGKILL, False),
    ]
    for what, sig, group in ways if command == "run" else ways[:1]:
        log = tmp_path / f"{sig.name}-{group}.log"
        proc = _start(args, log)
        request.addfinalizer(lambda p=proc: p.poll() is None and os.killpg(p.pid, signal.SIGKILL))
        family = _training(proc)
        before = _snapshot(registry)
        (os.killpg if group else os.kill)(proc.pid, sig)
        # SIGKILL: the command cannot act; its server notices within a second and stops (<= 10 s)
        ended, code = _stopped(proc, family, 10 if sig != signal.SIGKILL else 15)
        assert _snapshot(registry) == before, what
        if sig == signal.SIGKILL:
            continue
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        assert ended <= 10 and code == 128 + sig, (what, ended, code)
        assert (
            lines[-1] == f"stopped ({sig.name}); run the same command again to go on: hybridlabel {' '.join(args)}"
        ), (what, lines[-3:])
        assert "Traceback" not in log.read_text(), what
    if command == "run":  # the round the stops left `running` shows as interrupted, and run goes on
        status = subprocess.run(
            [HYBRIDLABEL, "status", "--workdir", str(work), "--json"], capture_output=True, text=True, timeout=120
        )
        assert json.loads(status.stdout)["rounds"][0]["status"] == "interrupted"
