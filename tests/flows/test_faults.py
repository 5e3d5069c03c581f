"""SIGKILL the pipeline in the middle of a round's per-case step and in the middle of a
registry commit; `resume` then completes, no case is lost or duplicated, and the registry
equals that of an uninterrupted run (except times, run ids and workdir paths)."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from hybridlabel.data_registry.store import Registry
from tests.conftest import tiny_config_yaml

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it

HYBRIDLABEL = str(Path(sys.executable).with_name("hybridlabel"))
COMPARED = [
    "case_id",
    "round",
    "role",
    "annotated_classes",
    "image_sha256",
    "hybrid_label_sha256",
    "label_sources",
    "tumors",
    "scores",
    "trained",
    "selection",
    "quarantine_reason",
]


def _env(tmp_path):
    return dict(
        os.environ,
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
    )


def _config(tmp_path, cohort, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(tiny_config_yaml(cohort, rounds=2, name=name, dataset_id=870))
    return path


@pytest.fixture(scope="module")
def reference(phantom_cohort, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    work = tmp / "work"
    done = subprocess.run(
        [HYBRIDLABEL, "run", str(_config(tmp, phantom_cohort, "f")), "--workdir", str(work), "--no-export"],
        env=_env(tmp),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the terminal shows rounds, stages and results; nnU-Net's and Prefect's output is in the log file
    shown = done.stdout + done.stderr
    assert "round 0 of 1: teacher" in shown and "round 1 organs: " in shown and "val organ DSC" in shown
    assert "Epoch" not in shown and "Finished in state" not in shown and len(shown.splitlines()) < 80
    (log,) = (work / "logs").glob("run-*.log")
    assert f"full log: {log}" in shown.replace("\n", "") and "Epoch 0" in log.read_text()
    return work


def _frame(work: Path, round_no: int) -> pd.DataFrame:
    return Registry(work).read("cases", round_no)[COMPARED].sort_values("case_id").reset_index(drop=True)


def _survivors(session: int) -> list[str]:
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(p.pid) == session and p.status() != psutil.STATUS_ZOMBIE:
                found.append(" ".join(p.info["cmdline"] or [])[:120])
    return found


def _run_until_killed(script: str, tmp_path, env) -> tuple[int, str]:
    # output to a file, not a pipe: the killed process's children would hold a pipe open
    log = tmp_path / "killed.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc.wait(timeout=900)
    # Prefect's local server notices its parent's death and stops (flows/server_guard.py)
    deadline = time.monotonic() + 20
    while (left := _survivors(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left, so that a failure does not leak it
    assert not left, f"processes outlived the killed pipeline: {left}"
    return proc.returncode, log.read_text()


def test_kill_during_per_case_step_then_resume(reference, phantom_cohort, tmp_path):
    work = tmp_path / "work"
    config = _config(tmp_path, phantom_cohort, "f")
    # kill the whole process in round 1's merge step once two cases have their journal:
    # some cases are done, the others are not
    script = textwrap.dedent(f"""
        import os, signal, threading
        import hybridlabel.tasks.round_tasks as rt
        real, lock, done = rt.write_journal, threading.Lock(), []
        def dying(step_dir, case_id, inputs, record):
            out = real(step_dir, case_id, inputs, record)
            if str(step_dir).endswith("merge"):
                with lock:
                    done.append(case_id)
                    if len(done) == 2:
                        os.kill(os.getpid(), signal.SIGKILL)
            return out
        rt.write_journal = dying
        from pathlib import Path
        from hybridlabel.flows.runner import run_pipeline
        run_pipeline(Path({str(config)!r}), Path({str(work)!r}), None, False)
    """)
    rc, out = _run_until_killed(script, tmp_path, _env(tmp_path))
    assert rc == -signal.SIGKILL, out[-2000:]
    reg = Registry(work)
    assert reg.is_complete(0) and not reg.is_complete(1)
    assert reg.round_row(1)["status"] == "running"  # killed: no chance to say more
    from hybridlabel.tasks.status import status_dict

    assert [r["status"] for r in status_dict(work)["rounds"]] == ["completed", "interrupted"]
    journal = work / "rounds" / "r001" / "merge" / "journal"
    n_partial = (Registry(work).read("cases", 0)["role"].isin(["partial", "tumor_only"])).sum()
    assert 2 <= len(list(journal.glob("*.json"))) < n_partial
    resumed = subprocess.run(
        [HYBRIDLABEL, "resume", "--round", "1", "--workdir", str(work)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    for r in (0, 1):
        pd.testing.assert_frame_equal(_frame(work, r), _frame(reference, r))


def test_kill_during_registry_commit_then_resume(reference, phantom_cohort, tmp_path):
    work = tmp_path / "work"
    config = _config(tmp_path, phantom_cohort, "f")
    # die after round 1's cases partition is written but before its rounds row (the commit mark)
    script = textwrap.dedent(f"""
        import os, signal
        from hybridlabel.data_registry.store import Registry
        real = Registry.write_partition
        def dying(self, table, round_no, df):
            if table == "rounds" and round_no == 1 and (df["status"] == "completed").all():
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, table, round_no, df)
        Registry.write_partition = dying
        from pathlib import Path
        from hybridlabel.flows.runner import run_pipeline
        run_pipeline(Path({str(config)!r}), Path({str(work)!r}), None, False)
    """)
    rc, out = _run_until_killed(script, tmp_path, _env(tmp_path))
    assert rc == -signal.SIGKILL, out[-2000:]
    reg = Registry(work)
    assert not reg.is_complete(1)  # cases written, commit mark not: the round is not complete
    resumed = subprocess.run(
        [HYBRIDLABEL, "resume", "--round", "1", "--workdir", str(work)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert Registry(work).is_complete(1)
    for r in (0, 1):
        pd.testing.assert_frame_equal(_frame(work, r), _frame(reference, r))


def test_kill_during_training_leaves_no_nnunet_process(phantom_cohort, tmp_path):
    """nnU-Net trains in a subprocess that a SIGKILLed pipeline cannot stop: the child ends
    on its parent's death (parent-death signal, models/nnunet/commands.py), not only at
    its next line of output into the broken pipe (minutes apart in a long epoch)."""
    work = tmp_path / "work"
    config = _config(tmp_path, phantom_cohort, "k")
    script = textwrap.dedent(f"""
        import os, signal
        import hybridlabel.tasks.nnunet.train as nt
        real = nt.run_logged
        def dying(cmd, env, log, cwd=None):
            def watch(line):
                log(line)
                if "Epoch 0" in line:  # training is under way in the child
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(cmd, env, watch, cwd)
        nt.run_logged = dying
        from pathlib import Path
        from hybridlabel.flows.runner import run_pipeline
        run_pipeline(Path({str(config)!r}), Path({str(work)!r}), None, False)
    """)
    rc, out = _run_until_killed(script, tmp_path, _env(tmp_path))  # asserts that nothing outlives it
    assert rc == -signal.SIGKILL and "Epoch 0" in out, out[-2000:]
    assert not Registry(work).is_complete(0)
