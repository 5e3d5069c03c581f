"""The workdir: its layout, the one-pipeline-at-a-time lock, and per-case journals.

A journal entry is written atomically when a per-case step has produced its output;
an interrupted round, run again, skips the cases whose output still has the recorded
sha256 and redoes the rest. Resume is driven by this and the registry, never by
Prefect's result cache.
"""

from __future__ import annotations

import json
import os
import socket
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock:
    """`<workdir>/.lock`, created exclusively; a lock whose process is gone is taken over.
    Re-entrant within one process: the CLI takes it before it changes anything, and the
    flow it then runs takes it again."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / ".lock"
        self._nested = False

    def held_by_live_process(self) -> bool:
        holder = self._holder()
        if not holder:
            return False
        return holder.get("host") != socket.gethostname() or _alive(int(holder.get("pid", -1)))

    def __enter__(self) -> "WorkdirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self._holder()
                same_host = holder.get("host") == socket.gethostname()
                if same_host and holder.get("pid") == os.getpid():
                    self._nested = True
                    return self
                if holder and same_host and not _alive(int(holder.get("pid", -1))):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise WorkdirBusy(
                    f"workdir {self.path.parent} is in use by pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} since {holder.get('since', '?')}; wait for it, or delete "
                    f"{self.path} if that pipeline is dead") from None
            with os.fdopen(fd, "w") as fh:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": time.strftime("%Y-%m-%d %H:%M:%S")}, fh)
            return self
        raise WorkdirBusy(f"could not take the lock {self.path}")

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc) -> None:
        if not self._nested and self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


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
    record = dict(record, inputs=inputs, sha256=sha256_path(Path(record["path"])),
                  host=socket.gethostname(), pid=os.getpid())
    atomic_write_text(journal_path(step_dir, case_id), json.dumps(record, sort_keys=True))
    return record


def fingerprint(*parts) -> str:
    """Short sha256 of the JSON of `parts` (what a step's output depends on)."""
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]
