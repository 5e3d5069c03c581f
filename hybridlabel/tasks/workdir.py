"""The workdir: its layout, the one-pipeline-at-a-time lock, and per-case journals.

A journal entry is written atomically when a per-case step has produced its output;
an interrupted round, run again, skips the cases whose output still has the recorded
sha256 and redoes the rest. Resume is driven by this and the registry, never by
Prefect's result cache.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import sha256_path


class WorkdirBusy(RuntimeError):
    """Another pipeline holds the workdir."""


@dataclass(frozen=True)
class Layout:
    workdir: Path

    @property
    def nnunet(self) -> Path:
        return self.workdir / "nnunet"

    @property
    def config(self) -> Path:
        return self.workdir / "config.yaml"

    def round_dir(self, round_no: int) -> Path:
        return self.workdir / "rounds" / f"r{round_no:03d}"

    def step_dir(self, round_no: int, step: str) -> Path:
        return self.round_dir(round_no) / step

    @property
    def store(self) -> Path:
        """Content store: one copy of each distinct per-case label file (tasks/files/content_store)."""
        return self.workdir / "store" / "sha256"

    @property
    def export_dir(self) -> Path:
        return self.workdir / "export"


class WorkdirLock:
    """`<workdir>/.lock`, held with `flock` for as long as the pipeline runs: the kernel
    releases it when its process ends however it ends, and no two processes can hold it,
    so a dead holder's lock needs no takeover and two takers cannot both win. The file
    says who holds it (pid, host, since) for the message of the one refused. Re-entrant
    within one process: the CLI takes it before it changes anything, and the flow it then
    runs takes it again."""

    _held: dict[str, tuple[int, int]] = {}  # path -> (fd, depth) of the locks this process holds
    _guard = threading.Lock()

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / ".lock"
        self._nested = False

    def held_by_live_process(self) -> bool:
        if os.path.realpath(self.path) in self._held:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # releases the probe's shared lock with it

    def __enter__(self) -> "WorkdirLock":
        key = os.path.realpath(self.path)
        with self._guard:
            if key in self._held:
                fd, depth = self._held[key]
                self._held[key] = (fd, depth + 1)
                self._nested = True
                return self
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._acquire()
            os.ftruncate(fd, 0)
            os.write(
                fd,
                json.dumps(
                    {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
                ).encode(),
            )
            self._held[key] = (fd, 1)
        return self

    def _acquire(self) -> int:
        while True:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder()
                os.close(fd)
                raise WorkdirBusy(
                    f"workdir {self.path.parent} is in use by pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} since {holder.get('since', '?')}; wait for it to end, or stop "
                    "it (Ctrl-C); the lock is freed when its process ends"
                ) from None
            try:  # the file we locked may have been unlinked by its last holder meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc) -> None:
        key = os.path.realpath(self.path)
        with self._guard:
            fd, depth = self._held[key]
            if depth > 1:
                self._held[key] = (fd, depth - 1)
                return
            del self._held[key]
            self.path.unlink(missing_ok=True)  # while still locked: a waiter re-checks the inode
            os.close(fd)


def journal_path(step_dir: Path, case_id: str) -> Path:
    return Path(step_dir) / "journal" / f"{case_id}.json"


def read_journal(step_dir: Path, case_id: str, inputs: str) -> dict | None:
    """The recorded result of a case's step when it was made from the same `inputs` (a
    fingerprint of everything the step read) and its output still matches its sha256."""
    path = journal_path(step_dir, case_id)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("inputs") != inputs:
        return None
    out = Path(record.get("path", ""))
    if not out.exists() or sha256_path(out) != record.get("sha256"):
        return None
    return record


def write_journal(step_dir: Path, case_id: str, inputs: str, record: dict) -> dict:
    # where it ran: a per-case step may run on any Dask worker of any machine
    record = dict(
        record, inputs=inputs, sha256=sha256_path(Path(record["path"])), host=socket.gethostname(), pid=os.getpid()
    )
    atomic_write_text(journal_path(step_dir, case_id), json.dumps(record, sort_keys=True))
    return record


def fingerprint(*parts) -> str:
    """Short sha256 of the JSON of `parts` (what a step's output depends on)."""
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]
