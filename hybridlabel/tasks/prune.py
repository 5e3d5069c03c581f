"""What old rounds left behind, and deleting it (`hybridlabel prune`).

The registry keeps every row, superseded rounds' included; these files can go:
- model folders that a rerun trained anew and moved aside (`<model>.superseded-<time>`);
- stored label files that no round file links to any more (`tasks/files/content_store`):
  the labels of rounds that were rerun with other results.
Current rounds' files are never touched: their paths in the registry stay valid.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from hybridlabel.tasks.files.content_store import unreferenced
from hybridlabel.tasks.workdir import Layout


@dataclass(frozen=True)
class Leftover:
    path: Path
    bytes: int
    why: str


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def leftovers(workdir: Path) -> list[Leftover]:
    layout = Layout(Path(workdir))
    found = [
        Leftover(p, _size(p), "model of a superseded training")
        for p in sorted((layout.nnunet / "results").glob("*/*.superseded-*"))
        if p.is_dir()
    ]
    found += [Leftover(p, p.stat().st_size, "stored label no round links to") for p in unreferenced(layout.store)]
    return found


def delete(items: list[Leftover]) -> int:
    """Delete the leftovers; returns the bytes freed."""
    freed = 0
    for item in items:
        if item.path.is_dir():
            shutil.rmtree(item.path)
        else:
            item.path.unlink(missing_ok=True)
        freed += item.bytes
    return freed
