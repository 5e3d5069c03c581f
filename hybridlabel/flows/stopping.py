"""Stopping a long command when told: Ctrl-C (SIGINT to the terminal's process group),
SIGTERM to the group (systemd, `timeout`) or to the command alone.

Left to Prefect and nnU-Net, a Ctrl-C during training was still running 45 s later: the
training subprocess, its data-loader workers, the temporary Prefect server and the
client's retries each wind down on their own time. Here the command ends every process
it started (SIGTERM, then SIGKILL after a grace period) and exits at once, writing
nothing more: registry writes are atomic, so the registry holds what it held, a round
that was running shows as `interrupted` (its lock died with the process), and the next
`run` resumes it. A second signal ends the command without waiting for the grace period.
A SIGKILLed command cannot do this; its children end by themselves (nnU-Net's through
the parent-death signal, the Prefect server through `flows/server_guard.py`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

T = TypeVar("T")

GRACE_S = 4.0
_stopping = False


def stop_requested() -> bool:
    """True once SIGINT or SIGTERM has stopped this command: a stop asked for is not a
    failure, so the flows write nothing more (the round stays `running`, shown as
    `interrupted`). Needed because Ctrl-C reaches the whole process group: the training
    subprocess dies at once and the flow's failure path would race the stop."""
    return _stopping


def end_descendants(grace_s: float = GRACE_S) -> None:
    """SIGTERM to every process this one started (recursively), SIGKILL to those left."""
    import psutil

    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for proc in procs:
        with suppress(psutil.Error):  # it ended (or was reaped) since the listing: nothing to end
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=2.0)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        with suppress(OSError, ValueError):  # a closed or broken stream has nothing left to save
            if stream is not None:
                stream.flush()


def _stop(signum: int, hint: str) -> None:
    global _stopping
    code = 128 + signum
    if _stopping:
        os._exit(code)
    _stopping = True
    name = signal.Signals(signum).name
    show_cursor = "\x1b[?25h" if sys.stderr.isatty() else ""  # the live display hid it
    os.write(2, f"{show_cursor}\nstopped ({name}); {hint}\n".encode())
    end_descendants()
    _flush_logs()
    os._exit(code)


@contextmanager
def _stop_on_signals(hint: str) -> Iterator[None]:
    global _stopping
    _stopping = False
    handler = lambda signum, frame: _stop(signum, hint)  # noqa: E731
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_stoppable(action: Callable[[], T], hint: str) -> T:
    """`action()`, stopped as described above by SIGINT or SIGTERM; `hint` says how to go
    on (one line). The action runs in a worker thread and the main thread only waits:
    Python delivers signals to the main thread, and Prefect's flow engine installs its own
    SIGTERM handler (a slow crash report to a server that is being stopped too) only when
    it runs there."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = action()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread below)
            box["error"] = exc

    with _stop_on_signals(hint):
        worker = threading.Thread(target=target, name="hybridlabel-command", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["result"]
