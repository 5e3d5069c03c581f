"""Files kept once by content: identical outputs of different rounds share one copy.

A round writes its per-case files where it always did (`rounds/rNNN/merge/<case>.nii.gz`,
the preprocessed labels of its nnU-Net dataset), so every path in the registry and the
journals stays valid; `dedupe` then turns the file into a hard link to
`<workdir>/store/sha256/<ab>/<sha256><suffix>` (`Layout.store`), the one copy of that content. A round
that changes no label adds directory entries, not bytes.

Hard links are safe because every writer here replaces a file by renaming a new one over
it (`tasks/files/atomic`, `write_image`), never by writing into it. A stored file that
nothing links to any more (its rounds' files replaced or deleted) has a link count of 1:
`unreferenced` lists those for `hybridlabel prune`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from hybridlabel.tasks.files.imageio import sha256_path


def _suffix(path: Path) -> str:
    name = path.name
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix


def dedupe(path: Path, store: Path, sha: str | None = None) -> str:
    """Make `path` a hard link to the stored copy of its content (storing it first when
    new); returns its sha256. Where hard links are not possible (another filesystem) the
    file stays as it is."""
    path, store = Path(path), Path(store)
    sha = sha or sha256_path(path)
    blob = store / sha[:2] / f"{sha}{_suffix(path)}"
    tmp = None
    try:
        if blob.exists():
            if os.path.samefile(blob, path):
                return sha
            tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
            os.link(blob, tmp)
            os.replace(tmp, path)  # the same bytes, now one copy on disk
        else:
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp = blob.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{blob.name}")
            os.link(path, tmp)
            os.replace(tmp, blob)
    except OSError:  # no hard links here (another filesystem): the file stays a copy of its own
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return sha


def unreferenced(store: Path) -> Iterator[Path]:
    """Stored files that no round file links to any more."""
    store = Path(store)
    if not store.is_dir():
        return
    for sub in sorted(store.iterdir()):
        for blob in sorted(sub.iterdir()) if sub.is_dir() else []:
            if blob.is_file() and blob.stat().st_nlink == 1:
                yield blob
