"""Rich progress bars for long CLI work (cases, epochs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def case_progress(description: str, total: int) -> Iterator[Callable[[], None]]:
    """Yield an `advance()` callable that moves a bar of `total` steps."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)
