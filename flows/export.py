"""The `export` flow: the final lightweight model as one self-contained archive.

When the last round's network already is the export network (config `export.network`),
its model is exported; otherwise a student of that network is trained on the last
round's hybrid labels (its preprocessed dataset is reused). The exported model is
evaluated on the val cases like a round, and recorded as round len(rounds), kind export.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow

from data_registry.frames import dumps
from data_registry.store import Registry, RegistryError
from flows.dashboard import metric_rows, publish_round
from flows.evaluation import evaluate_round
from models.config import PipelineConfig, TrainingConfig, load_config
from tasks.export import write_model_archive
from tasks.registry import code_version, config_record
from tasks.round_tasks import preprocess_task, train_task
from tasks.workdir import Layout


def export_training(config: PipelineConfig) -> TrainingConfig | None:
    """The export student's budget, or None when the last round's model is exported as is."""
    last = config.rounds[-1].training
    if last.network == config.export.network:
        return None
    base = config.export.training or last
    return base.model_copy(update={"network": config.export.network, "init_from_parent": False})


def last_round_val_metrics(reg: Registry, last: int, round_no: int, config: PipelineConfig):
    """Round `last`'s val rows, renumbered as the export round, and their means."""
    from models.metric_summary import mean_metrics

    try:
        metrics = reg.read("metrics", last)
    except RegistryError:  # a round committed before rounds recorded metrics
        return None, {}
    val = metrics[metrics["reference"] == "val_gt"].assign(round=round_no)
    if val.empty:
        return val, {}
    return val, {"val_gt": mean_metrics(val, config.label_map.organ_ids, config.label_map.tumor_id)}


@flow(name="export", flow_run_name="export")
def export_model(config_path: str, workdir: str) -> str:
    config, reg, layout = load_config(Path(config_path)), Registry(Path(workdir)), Layout(Path(workdir))
    last = len(config.rounds) - 1
    row = reg.round_row(last)
    if not reg.is_complete(last) or not row or not row.get("model_dir"):
        raise RuntimeError(f"export needs round {last} completed with a model")
    started, stages, round_no = datetime.now(timezone.utc), {}, len(config.rounds)
    model_dir, source = row["model_dir"], f"round {last}"
    if (training := export_training(config)) is not None:
        dataset_id = config.nnunet_dataset_id + last
        t = time.perf_counter()
        if training.configuration != config.rounds[last].training.configuration:
            preprocess_task(str(layout.nnunet), dataset_id, f"{config.name}_r{last}", config.nnunet_dataset_id,
                            training.configuration)
            stages["preprocess"] = time.perf_counter() - t
            t = time.perf_counter()
        model_dir = train_task(str(layout.nnunet), dataset_id, f"Dataset{dataset_id:03d}_{config.name}_r{last}",
                               training)
        stages["train"] = time.perf_counter() - t
        source = f"{config.export.network} student on round {last}'s hybrid labels"
    cases = reg.read("cases", last).assign(round=round_no)
    t = time.perf_counter()
    if training is not None:
        metrics, means = evaluate_round(config, layout, round_no, cases, model_dir, [],
                                        targets=config.rounds[last].targets)
    else:  # the same model as round `last`: its val metrics already are in the registry
        metrics, means = last_round_val_metrics(reg, last, round_no, config)
    stages["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    archive, info = write_model_archive(Path(model_dir), layout.export_dir, config, last,
                                        val_metrics=means.get("val_gt", {}), source=source)
    stages["archive"] = time.perf_counter() - t
    reg.commit_round(round_no, cases, {
        "name": "export", "kind": "export", "status": "completed", "parent_round": last,
        **config_record(config), "model_dir": str(archive), "counts": dumps(info), "mean_metrics": dumps(means),
        "stage_seconds": dumps(stages), "code_version": code_version(), "started_at": started,
        "finished_at": datetime.now(timezone.utc)}, metrics=metrics)
    rows = metric_rows(metrics, "val_gt")
    publish_round(round_no, _markdown(archive, info, source, rows), None, metrics)
    return str(archive)


def _markdown(archive: Path, info: dict, source: str, rows: list[dict]) -> str:
    lines = [f"# Export: {archive.name}\n", f"- model: {source}", f"- network: {info['network']}, "
             f"{info['parameters']:,} parameters, archive {info['size_bytes'] / 1e6:.1f} MB", "",
             "## Val metrics of the exported model\n"]
    lines += [f"| {r['class']} | {r['DSC']} | {r['NSD']} |" for r in rows] or ["_no val cases_"]
    if rows:
        lines.insert(len(lines) - len(rows), "| class | DSC | NSD |\n|---|---|---|")
    return "\n".join(lines) + "\n"
