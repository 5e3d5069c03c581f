"""Rich progress bars for long CLI work (cases, epochs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class BarOnStart:
    """A case bar that appears only once the work starts (`start(total)`), so that what
    fails before (a refused archive) is one line, without an empty bar above it."""

    def __init__(self, description: str):
        self.description, self.progress, self.task = description, None, None

    def start(self, total: int) -> None:
        self.progress = _bar()
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=total)

    def advance(self, *_) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def case_progress(description: str, total: int) -> Iterator[Callable[[], None]]:
    """Yield an `advance()` callable that moves a bar of `total` steps."""
    with _bar() as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)


def _bar() -> Progress:
    """A bar with its count, elapsed and remaining time; it stays on screen when done."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
