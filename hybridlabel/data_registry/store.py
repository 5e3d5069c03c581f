"""The Parquet case registry on disk: atomic round partitions.

Layout under `<workdir>/registry/`: `{cases,rounds,metrics,reviews}/round-NNN/part-0.parquet`.
The round number is a column of every file, and the folder names are deliberately not
hive-style (`round=NNN`): a hive key that is also a column makes pandas refuse to read
the table and DuckDB turn the round into text, so any reader (pandas, pyarrow datasets,
DuckDB, Polars, a glob) reads a whole table with one int32 `round` column.
Registries written with `round=NNN` folders are renamed on the first write.
A partition is written into a dot-prefixed temporary folder beside its final place and
renamed into place, so a reader never sees half of it (pyarrow's dataset discovery also
skips dot-prefixed names). A round is committed by writing its `rounds` partition last:
cases and metrics of a round whose `rounds` row is missing or not `completed` are not
part of a finished round. Superseded rounds are moved, never deleted.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybridlabel.data_registry.frames import decoded as decode_frame
from hybridlabel.data_registry.frames import empty_frame, from_arrow, to_arrow
from hybridlabel.data_registry.schema import KEPT_ON_SUPERSEDE, ROUND_STATUSES, TABLES, value_problem

PART = "part-0.parquet"


class RegistryError(RuntimeError):
    """The registry is missing, damaged or asked for something it does not hold."""


def partition_name(round_no: int) -> str:
    return f"round-{round_no:03d}"


LEGACY_PREFIX = "round="  # hive-style folders of registries written before the rename


def _round_of(folder_name: str) -> int | None:
    for prefix in ("round-", LEGACY_PREFIX):
        if folder_name.startswith(prefix) and folder_name[len(prefix) :].isdigit():
            return int(folder_name[len(prefix) :])
    return None


class Registry:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.root = self.workdir / "registry"

    # -- writing ------------------------------------------------------------------
    def migrate_legacy_names(self) -> None:
        """Rename hive-style `round=NNN` folders (older registries) to `round-NNN`."""
        for base in [self.root, *sorted((self.root / "superseded").glob("*"))]:
            for table in TABLES:
                for part in sorted((base / table).glob(LEGACY_PREFIX + "*")) if (base / table).is_dir() else []:
                    if (r := _round_of(part.name)) is not None and not (part.parent / partition_name(r)).exists():
                        os.rename(part, part.parent / partition_name(r))

    def write_partition(self, table: str, round_no: int, df: pd.DataFrame) -> Path:
        """Write one table's partition of a round atomically (replacing an older one)."""
        if table not in TABLES:
            raise RegistryError(f"unknown registry table {table!r}; expected one of {sorted(TABLES)}")
        self.migrate_legacy_names()
        arrow = to_arrow(df, table)
        table_dir = self.root / table
        table_dir.mkdir(parents=True, exist_ok=True)
        final = table_dir / partition_name(round_no)
        if final.is_dir():
            # the new file beside the old, then one atomic os.replace of the file: the round's
            # data is never absent, not even for a moment (a folder swap takes two renames)
            tmp = final / f".tmp-{uuid.uuid4().hex[:8]}-{PART}"
            try:
                _write_synced(arrow, tmp)
                os.replace(tmp, final / PART)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return final
        tmp = table_dir / f".tmp-{partition_name(round_no)}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _write_synced(arrow, tmp / PART)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def clean_interrupted_writes(self) -> list[str]:
        """Leftovers of writes a kill interrupted: temporary files and folders are deleted; a
        partition that a folder swap of older versions left only as `.old-*` is put back.
        Called at the start of a pipeline, under the workdir lock (no writer is at work)."""
        done = []
        for table in TABLES:
            table_dir = self.root / table
            for entry in sorted(table_dir.iterdir()) if table_dir.is_dir() else []:
                if entry.name.startswith(".old-round-"):
                    final = table_dir / entry.name[len(".old-") :].rsplit("-", 1)[0]
                    if not final.exists() and (entry / PART).is_file():
                        os.rename(entry, final)
                        done.append(f"{table}/{final.name} restored")
                        continue
                if entry.name.startswith((".tmp-", ".old-")):
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                    done.append(f"{table}/{entry.name} removed")
                elif entry.is_dir():
                    for leftover in entry.glob(".tmp-*"):
                        leftover.unlink(missing_ok=True)
                        done.append(f"{table}/{entry.name}/{leftover.name} removed")
        return done

    def round_gaps(self) -> list[int]:
        """Round numbers missing below the last round that has a `rounds` row."""
        present = set(self._partitions("rounds"))
        return [r for r in range(max(present) + 1) if r not in present] if present else []

    def commit_round(
        self, round_no: int, cases: pd.DataFrame, round_row: dict, metrics: pd.DataFrame | None = None
    ) -> None:
        """Write a round: metrics and cases first, its `rounds` row last (the commit mark)."""
        if metrics is not None:
            self.write_partition("metrics", round_no, metrics)
        self.write_partition("cases", round_no, cases)
        self.write_partition("rounds", round_no, pd.DataFrame([{**round_row, "round": round_no}]))

    def set_round_status(self, round_no: int, status: str, **fields) -> None:
        if status not in ROUND_STATUSES:
            raise RegistryError(f"status {status!r} is not one of {ROUND_STATUSES}")
        row = self.round_row(round_no) or {"round": round_no}
        row.update(fields, status=status)
        self.write_partition("rounds", round_no, pd.DataFrame([row]))

    # -- reading ------------------------------------------------------------------
    def _partitions(self, table: str) -> dict[int, Path]:
        table_dir = self.root / table
        if not table_dir.is_dir():
            return {}
        found = {}
        for part in sorted(table_dir.iterdir(), key=lambda p: p.name.startswith(LEGACY_PREFIX)):
            r = _round_of(part.name)
            if r is not None and r not in found and (part / PART).is_file():
                found[r] = part / PART
        return dict(sorted(found.items()))

    def read(self, table: str, round_no: int, columns: list[str] | None = None, decoded: bool = False) -> pd.DataFrame:
        """One round's partition (only `columns`, when given: much less to decode; `decoded`:
        JSON columns as objects, frames.decoded)."""
        frame = from_arrow(self._read_arrow(table, round_no, columns))
        return decode_frame(frame) if decoded else frame

    def _read_arrow(self, table: str, round_no: int, columns: list[str] | None = None) -> pa.Table:
        for _ in range(3):
            path = self._partitions(table).get(round_no)
            if path is None:
                break
            try:
                return _read_table(path, round_no, columns)
            except FileNotFoundError:
                continue  # replaced between listing and opening: look again
        raise RegistryError(f"registry {self.root} holds no {table} partition for round {round_no}")

    def damaged(self, before: int | None = None, full: bool = True) -> list[str]:
        """One line per registry file that cannot be read in full (every table; the rounds
        below `before` only, when given: those a run from there relies on). `full=False`
        reads each file's footer only (a truncated or overwritten file; `status` on
        thousands of cases), where `run` and `resume` decode every page."""
        problems = []
        for table in TABLES:
            for r, path in self._partitions(table).items():
                if before is not None and r >= before:
                    continue
                try:
                    if full:
                        self._read_arrow(table, r)  # every page decoded; no pandas frame needed
                    else:
                        _read_table(path, r, footer_only=True)
                except RegistryError as exc:
                    problems.append(str(exc))
                except FileNotFoundError:
                    continue  # replaced since the listing: a writer is at work, not damage
        return problems

    def read_if_present(self, table: str, round_no: int) -> pd.DataFrame | None:
        """A round's partition, or None where the round has none (a damaged one still raises)."""
        return self.read(table, round_no) if round_no in self._partitions(table) else None

    def reviews_through(self, round_no: int) -> pd.DataFrame | None:
        """Every accepted review of rounds up to `round_no`; None when there is none."""
        frames = [self.read("reviews", r) for r in self._partitions("reviews") if r <= round_no]
        return pd.concat(frames, ignore_index=True) if frames else None

    def read_all(self, table: str) -> pd.DataFrame:
        parts = [self.read(table, r) for r in self._partitions(table)]
        return pd.concat(parts, ignore_index=True) if parts else empty_frame(table)

    def round_row(self, round_no: int, decoded: bool = False) -> dict | None:
        if round_no not in self._partitions("rounds"):
            return None
        return self.read("rounds", round_no, decoded=decoded).iloc[0].to_dict()

    def rounds(self) -> pd.DataFrame:
        """Rows of the active rounds, in order."""
        return self.read_all("rounds")

    def is_complete(self, round_no: int) -> bool:
        row = self.round_row(round_no)
        return bool(row and row["status"] == "completed" and round_no in self._partitions("cases"))

    # -- superseding ----------------------------------------------------------------
    def supersede_from(self, round_no: int) -> list[int]:
        """Move rounds >= round_no aside (kept under superseded/<stamp>/, marked superseded);
        reviews stay: a rerun of a reviewed round takes them as ground truth."""
        self.migrate_legacy_names()
        now = datetime.now(timezone.utc)
        stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
        moved: set[int] = set()
        for table in [t for t in TABLES if t not in KEPT_ON_SUPERSEDE]:
            for r, path in self._partitions(table).items():
                if r < round_no:
                    continue
                if table == "rounds":
                    try:
                        row = self.read("rounds", r).iloc[0].to_dict()
                    except RegistryError:
                        row = None  # a damaged row is moved aside as it is
                    if row is not None:
                        row.update(status="superseded", superseded_at=now)
                        self.write_partition("rounds", r, pd.DataFrame([row]))
                        path = self._partitions("rounds")[r]
                dest = self.root / "superseded" / stamp / table / partition_name(r)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.rename(path.parent, dest)
                moved.add(r)
        return sorted(moved)

    def superseded_rounds(self) -> pd.DataFrame:
        base = self.root / "superseded"
        frames = []
        if base.is_dir():
            for stamp in sorted(base.iterdir()):
                for part in sorted((stamp / "rounds").glob("round*/" + PART)):
                    if (r := _round_of(part.parent.name)) is not None:
                        try:
                            frames.append(from_arrow(_read_table(part, r)))
                        except RegistryError:
                            continue  # moved aside because it was damaged
        return pd.concat(frames, ignore_index=True) if frames else empty_frame("rounds")


def _write_synced(arrow: pa.Table, path: Path) -> None:
    # page checksums: a byte changed inside a compressed page is found on read
    pq.write_table(arrow, path, write_page_checksum=True)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _read_table(
    path: Path, round_no: int, columns: list[str] | None = None, footer_only: bool = False
) -> pa.Table | None:
    """One partition file; a damaged one is named, with what to do, in one line."""
    try:
        # One open file handle for the whole read: a concurrent replacement renames the
        # folder away, and reopening by name could mix the old footer with new pages.
        with open(path, "rb") as fh:
            if footer_only:
                pq.read_metadata(fh)
                return None
            table = pq.read_table(fh, columns=columns, page_checksum_verification=True)
        if problem := value_problem(table, round_no):
            raise ValueError(problem)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, pa.ArrowException) as exc:
        why = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise RegistryError(
            f"registry file {path} is damaged ({why}); restore it from a backup, or redo the round "
            f"with `hybridlabel resume --round {round_no}`"
        ) from None
    return table
