"""Stage timing for a round's record (`stage_seconds`), announced as progress events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from hybridlabel.tasks.events import emit


@contextmanager
def timed(stages: dict[str, float], name: str, total: int | None = None, unit: str = "cases") -> Iterator[None]:
    """Add the wall time of the block to `stages[name]`; announce the stage (`total` steps
    of `unit`) and, when it succeeds, its one-line result."""
    emit("stage", f"{name} started", stage=name, total=total, unit=unit)
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        stages[name] = stages.get(name, 0.0) + seconds
    size = (f"{total} s budget, " if unit == "s" else f"{total} {unit}, ") if total else ""
    emit("done", f"  {name}: {size}{duration(seconds)}", stage=name)


def training_size(training) -> tuple[int, str]:
    """What a training's progress bar counts: seconds under a time budget, else iterations."""
    if training.max_train_seconds is not None:
        return int(training.max_train_seconds), "s"
    return training.epochs * training.iterations_per_epoch, "iterations"


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
