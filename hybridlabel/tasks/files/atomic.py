"""Atomic file writes: a temporary name in the same folder, then rename."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from hybridlabel.tasks.files.disk import named_disk_full


def _tmp_for(path: Path) -> Path:
    return path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    try:
        with named_disk_full(path, len(data)), open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(path: Path, table) -> Path:
    """Write a pyarrow Table (or DataFrame) as one Parquet file, atomically."""
    import pandas as pd  # imported here: pandas costs ~0.4 s at start-up of every command
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    tmp = _tmp_for(path)
    try:
        with named_disk_full(path, table.nbytes):
            pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
