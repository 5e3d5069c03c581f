"""The workdir lock: held by the kernel (flock), so a dead holder frees it and racing
takers never both win (the probe's stale-lock takeover gave it to two of them in 1 of 40)."""

import json
import multiprocessing
import os
import signal
import time

import pytest

from hybridlabel.tasks.workdir import WorkdirBusy, WorkdirLock


def _take(workdir, barrier, results, hold_s):
    barrier.wait()
    try:
        with WorkdirLock(workdir):
            results.put(("held", os.getpid(), time.monotonic()))
            time.sleep(hold_s)
            results.put(("released", os.getpid(), time.monotonic()))
    except WorkdirBusy as exc:
        results.put(("busy", os.getpid(), str(exc)))


def test_racing_processes_over_a_stale_lock_never_both_hold_it(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for trial in range(40):
        work = tmp_path / f"w{trial}"
        work.mkdir()
        # a lock file left by a pipeline that died (its pid is gone)
        (work / ".lock").write_text(json.dumps({"pid": 2**22 + 7, "host": "here"}))
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_take, args=(work, barrier, results, 0.3)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        events = [results.get(timeout=5) for _ in range(6)]
        while not results.empty():
            events.append(results.get())
        held = [e for e in events if e[0] == "held"]
        released = {e[1]: e[2] for e in events if e[0] == "released"}
        # whoever held it held it alone: no two holding intervals overlap
        spans = sorted((t, released[pid]) for _, pid, t in held)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), (trial, spans)
        assert held, trial
        assert all("is in use by pid" in e[2] for e in events if e[0] == "busy"), events
        assert not (work / ".lock").exists()


def test_a_killed_holder_frees_the_lock_and_the_lock_is_reentrant(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()

    def hold():
        WorkdirLock(tmp_path).__enter__()
        ready.set()
        time.sleep(60)

    holder = ctx.Process(target=hold)
    holder.start()
    assert ready.wait(30)
    assert WorkdirLock(tmp_path).held_by_live_process()
    with pytest.raises(WorkdirBusy, match=f"in use by pid {holder.pid}"):
        WorkdirLock(tmp_path).__enter__()
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    assert not WorkdirLock(tmp_path).held_by_live_process()  # the file is still there; the kernel freed it
    with WorkdirLock(tmp_path):
        with WorkdirLock(tmp_path) as inner:
            assert inner._nested
        assert WorkdirLock(tmp_path).held_by_live_process()
    assert not (tmp_path / ".lock").exists()


def test_the_lock_is_reentrant_through_a_symlinked_path(tmp_path):
    """The CLI may name the workdir through a symlink and the flow by its resolved path:
    one process, one lock."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with WorkdirLock(tmp_path / "link"):
        with WorkdirLock(real) as inner:
            assert inner._nested
        assert WorkdirLock(real).held_by_live_process()
    assert not (real / ".lock").exists()
