"""What the registry records about a run: the code version, the config and its sha256, the audit as Parquet."""

from __future__ import annotations

import hashlib
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from hybridlabel.data_registry.frames import to_arrow
from hybridlabel.models.config import PipelineConfig
from hybridlabel.tasks.files.atomic import atomic_write_parquet


def code_version() -> str:
    try:
        v = version("hybridlabel")
    except PackageNotFoundError:
        v = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{v}+{commit}" if commit else v


def write_audit_parquet(cases: pd.DataFrame, out: Path) -> Path:
    return atomic_write_parquet(out, to_arrow(cases, "cases"))


def config_record(config: PipelineConfig) -> dict:
    text = config.model_dump_json()
    return {"config_json": text, "config_sha256": hashlib.sha256(text.encode()).hexdigest()}
