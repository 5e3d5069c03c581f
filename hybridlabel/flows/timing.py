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
    # a training's rate: what the next budget in iterations will cost on this machine
    rate = f" ({seconds / total:.2f} s/iteration, start-up included)" if unit == "iterations" and total else ""
    emit("done", f"  {name}: {size}{duration(seconds)}{rate}", stage=name)


def training_size(training) -> tuple[int, str]:
    """What a training's progress bar counts: seconds under a time budget, else iterations."""
    if training.max_train_seconds is not None:
        return int(training.max_train_seconds), "s"
    return training.epochs * training.iterations_per_epoch, "iterations"


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def budget_line(rounds, start_round: int = 0) -> str:
    """The training budget of the rounds to run, said before any of it is spent."""
    parts, iterations, seconds = [], 0, 0.0
    for spec in rounds[start_round:]:
        size, unit = training_size(spec.training)
        parts.append(f"{spec.name} {size} {unit}")
        iterations += size if unit == "iterations" else 0
        seconds += size if unit == "s" else 0
    total = " + ".join(
        x for x in (f"{iterations} iterations" if iterations else "", duration(seconds) if seconds else "") if x
    )
    return f"training budget: {total} ({', '.join(parts)}); each training's line gives this machine's rate"
