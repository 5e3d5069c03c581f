"""The `export` flow: the last round's model as one self-contained archive."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prefect import flow

from data_registry.frames import dumps
from data_registry.store import Registry
from models.config import load_config
from tasks.export import write_model_archive
from tasks.registry import code_version, config_record


@flow(name="export", flow_run_name="export")
def export_model(config_path: str, workdir: str) -> str:
    config = load_config(Path(config_path))
    reg = Registry(Path(workdir))
    last = len(config.rounds) - 1
    row = reg.round_row(last)
    if not reg.is_complete(last) or not row or not row.get("model_dir"):
        raise RuntimeError(f"export needs round {last} completed with a model")
    started = datetime.now(timezone.utc)
    archive, info = write_model_archive(Path(row["model_dir"]), Path(workdir) / "export", config, last)
    round_no = len(config.rounds)
    reg.commit_round(round_no, reg.read("cases", last).assign(round=round_no), {
        "name": "export", "kind": "export", "status": "completed", "parent_round": last,
        **config_record(config), "model_dir": str(archive), "counts": dumps(info),
        "code_version": code_version(), "started_at": started, "finished_at": datetime.now(timezone.utc)})
    return str(archive)
