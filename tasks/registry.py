"""Registry writes of the intake: the audit as Parquet, round 0's intake partition."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from data_registry.frames import role_counts, to_arrow
from data_registry.store import Registry
from models.config import PipelineConfig
from tasks.audit import summarize
from tasks.files import atomic_write_parquet


def code_version() -> str:
    try:
        v = version("hybridlabel")
    except PackageNotFoundError:
        v = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{v}+{commit}" if commit else v


def write_audit_parquet(cases: pd.DataFrame, out: Path) -> Path:
    return atomic_write_parquet(out, to_arrow(cases, "cases"))


def config_record(config: PipelineConfig) -> dict:
    text = config.model_dump_json()
    return {"config_json": text, "config_sha256": hashlib.sha256(text.encode()).hexdigest()}


def commit_intake(workdir: Path, cases: pd.DataFrame, config: PipelineConfig, started_at: datetime,
                  audit_seconds: float) -> None:
    """Record the intake audit as round 0's case partition (the teacher round adds its model)."""
    row = {
        "name": "intake", "kind": "intake", "status": "completed", "parent_round": None,
        **config_record(config), "stage_seconds": json.dumps({"audit": round(audit_seconds, 3)}),
        "counts": json.dumps({**summarize(cases), "roles": role_counts(cases)}, sort_keys=True),
        "code_version": code_version(), "started_at": started_at,
        "finished_at": datetime.now(timezone.utc),
    }
    Registry(workdir).commit_round(0, cases, row)
