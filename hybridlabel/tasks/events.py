"""Progress events of a run, as log records of the `hybridlabel.events` logger.

Flows and tasks say what is happening (a round starts, a stage starts with its size, a
step of it is done, a stage ends with its figures); whoever watches attaches a handler:
the CLI's live display, or nothing (the records then only reach the log file and the
Prefect UI as plain lines). Events carry small values only, never volumes.
"""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("hybridlabel.events")
FIELD = "hl_event"


def emit(kind: str, message: str = "", **fields) -> None:
    """One event: `kind` is round | stage | advance | done; `message` is the plain line
    the log file and the Prefect UI show."""
    LOGGER.info(message or kind, extra={FIELD: {"kind": kind, **fields}})


def event_of(record: logging.LogRecord) -> dict | None:
    return getattr(record, FIELD, None)
