"""What the terminal shows during a run: a live display of the round, its stage and a
progress bar, one line per finished stage and round; everything else (Prefect's and
nnU-Net's output, library warnings) goes to a log file in the workdir.

The display follows the run's events (`tasks.events`); `verbose` keeps the full log on
the terminal too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hybridlabel.tasks.events import LOGGER as EVENTS
from hybridlabel.tasks.events import event_of

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class LiveDisplay(logging.Handler):
    """Turns events into bars and lines (thread-safe: logging serialises `emit`)."""

    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.bars: dict[str, int] = {}
        self.round = ""

    def emit(self, record: logging.LogRecord) -> None:
        event = event_of(record)
        if event is None:
            return
        kind = event["kind"]
        if kind == "round":
            self.round = (
                f"round {event['round']} of {event['rounds'] - 1}: {event['name']}"
                if event["round"] < event["rounds"]
                else "export"
            )
            self.console.print(f"[bold]{self.round}[/]", highlight=False)
        elif kind == "stage":
            self._close(event["stage"])
            total = event.get("total")
            self.bars[event["stage"]] = self.progress.add_task(
                f"  {event['stage']} ({event.get('unit', 'steps')})", total=total if total else None, info=""
            )
        elif kind == "advance" and event["stage"] in self.bars:
            self.progress.update(self.bars[event["stage"]], advance=event.get("n", 1), info=event.get("info", ""))
        elif kind == "done":
            if "stage" in event:
                self._close(event["stage"])
            self.console.print(record.getMessage(), highlight=False)

    def _close(self, stage: str) -> None:
        if stage in self.bars:
            self.progress.remove_task(self.bars.pop(stage))


def _console_handlers() -> list[logging.Handler]:
    """The handlers that write to the terminal: Prefect's console handler (shared by the
    root, uvicorn and fastapi loggers) and any plain stream handler."""
    seen, out = set(), []
    for name in (None, "prefect", "uvicorn", "fastapi"):
        for h in logging.getLogger(name).handlers:
            if id(h) not in seen and isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                seen.add(id(h))
                out.append(h)
    return out


@contextmanager
def live_run(console: Console, workdir: Path, command: str, verbose: bool = False) -> Iterator[Path]:
    """Run the block with the live display and the log file `W/logs/<command>-<time>.log`
    (yielded); the terminal's log handlers are quiet unless `verbose`."""
    import prefect  # noqa: F401  (its logging set-up first: the handlers to quiet exist after it)

    log_path = Path(workdir) / "logs" / f"{command}-{datetime.now():%Y%m%d-%H%M%S}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    quieted = [] if verbose else [(h, h.level) for h in _console_handlers()]
    for h, _ in quieted:
        h.setLevel(logging.ERROR)
    display = LiveDisplay(console)
    old_root_level, old_events_level = root.level, EVENTS.level
    chatty = [(logging.getLogger(name), logging.getLogger(name).level) for name in ("httpx", "httpcore")]
    for logger, _ in chatty:  # one line per Prefect API call: not worth a log line
        logger.setLevel(logging.WARNING)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    EVENTS.setLevel(logging.INFO)
    root.addHandler(file_handler)
    EVENTS.addHandler(display)
    logging.captureWarnings(True)
    display.progress.start()
    try:
        yield log_path
    finally:
        display.progress.stop()
        logging.captureWarnings(False)
        EVENTS.removeHandler(display)
        root.removeHandler(file_handler)
        file_handler.close()
        root.setLevel(old_root_level)
        for logger, level in chatty:
            logger.setLevel(level)
        EVENTS.setLevel(old_events_level)
        for h, level in quieted:
            h.setLevel(level)
