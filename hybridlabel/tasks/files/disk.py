"""A full disk, named as such: torch reports it as `enforce fail at inline_container.cc
... unexpected pos`, other writers as errno 28; the user needs the path and the space."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# what torch.save's zip writer says when a write came up short
TORCH_SHORT_WRITE = ("unexpected pos", "file write failed")


class DiskFullError(OSError):
    """No space left where a file was being written; the message names the path and the space."""

    def __str__(self) -> str:  # the sentence alone, without OSError's "[Errno 28]"
        return str(self.strerror)


def _free_mb(path: Path) -> str:
    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            return f"{shutil.disk_usage(folder).free / 2**20:,.0f} MB"
    return "no"


@contextmanager
def named_disk_full(path: Path, needed_bytes: int | None = None) -> Iterator[None]:
    """Turn a write that failed for want of space into one DiskFullError line."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
            isinstance(exc, RuntimeError) and any(s in str(exc) for s in TORCH_SHORT_WRITE)
        )
        if not full:
            raise
        needed = f", about {needed_bytes / 2**20:,.0f} MB needed" if needed_bytes else ""
        raise DiskFullError(
            errno.ENOSPC,
            f"no space left on the device writing {path} ({_free_mb(path)} free "
            f"there{needed}); free disk space and run the command again",
        ) from None
