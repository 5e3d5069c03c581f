"""The `export` flow: the final lightweight model as one self-contained archive.

When the last round's network already is the export network (config `export.network`),
its model is exported; otherwise a student of that network is trained on the last
round's hybrid labels (its preprocessed dataset is reused). The exported model is
evaluated on the val cases like a round, and recorded as round len(rounds), kind export.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prefect import flow

from hybridlabel.data_registry.frames import dumps
from hybridlabel.data_registry.store import Registry, RegistryError
from hybridlabel.flows.dashboard import metric_rows, round_line
from hybridlabel.flows.evaluation import evaluate_round
from hybridlabel.flows.round_end import finish_round, round_means
from hybridlabel.flows.timing import timed, training_size
from hybridlabel.models.config import PipelineConfig, TrainingConfig
from hybridlabel.models.nnunet.identity import round_dataset
from hybridlabel.models.round_rules import training_label_paths
from hybridlabel.tasks.model.export import write_model_archive, write_nnunet_folder
from hybridlabel.tasks.model.qc import training_label_reference
from hybridlabel.tasks.registry import code_version, config_record
from hybridlabel.tasks.round_inputs import parent_model
from hybridlabel.tasks.round_tasks import preprocess_task, train_task
from hybridlabel.tasks.workdir import Layout


def export_training(config: PipelineConfig) -> TrainingConfig | None:
    """The export student's budget, or None when the last round's model is exported as is."""
    last = config.rounds[-1].training
    if last.network == config.export.network:
        return None
    base = config.export.training or last
    return base.model_copy(update={"network": config.export.network, "init_from_parent": False})


def last_round_val_metrics(reg: Registry, last: int, round_no: int, config: PipelineConfig):
    """Round `last`'s val rows, renumbered as the export round, and their means."""
    from hybridlabel.models.metric_summary import mean_metrics

    try:
        metrics = reg.read("metrics", last)
    except RegistryError:  # a round committed before rounds recorded metrics
        return None, {}
    val = metrics[metrics["reference"] == "val_gt"].assign(round=round_no)
    if val.empty:
        return val, {}
    return val, {"val_gt": mean_metrics(val, config.label_map.organ_ids, config.label_map.tumor_id)}


@flow(name="export", flow_run_name="export")
def export_model(config: PipelineConfig, workdir: str) -> str:
    reg, layout = Registry(Path(workdir)), Layout(Path(workdir))
    last = len(config.rounds) - 1
    started, stages, round_no = datetime.now(timezone.utc), {}, len(config.rounds)
    model_dir, source = parent_model(Path(workdir), last), f"round {last}"
    if (training := export_training(config)) is not None:
        dataset = round_dataset(layout.nnunet, config.nnunet_dataset_id, config.name, last)
        if training.configuration != config.rounds[last].training.configuration:
            with timed(stages, "preprocess"):
                preprocess_task(
                    dataset,
                    config.nnunet_dataset_id,
                    training.configuration,
                    config.planner_gpu_memory_gb,
                )
        with timed(stages, "train", *training_size(training)):
            model_dir = train_task(dataset, training)
        source = f"{config.export.network} student on round {last}'s hybrid labels"
    cases = reg.read("cases", last).assign(round=round_no)
    with timed(stages, "evaluate"):
        if training is not None:
            metrics, means = evaluate_round(
                config, layout, round_no, cases, model_dir, [], targets=config.rounds[last].targets
            )
        else:  # the same model as round `last`: its val metrics already are in the registry
            metrics, means = last_round_val_metrics(reg, last, round_no, config)
    with timed(stages, "label ranges"):  # what predict checks its outputs against
        label_qc = training_label_reference(training_label_paths(reg.read("cases", last)))
    with timed(stages, "archive"):
        archive, info = write_model_archive(
            Path(model_dir),
            layout.export_dir,
            config,
            last,
            config.export.network,
            val_metrics=means.get("val_gt", {}),
            source=source,
            label_qc=label_qc,
        )
        info["nnunet_folder"] = str(
            write_nnunet_folder(
                Path(model_dir), archive.with_name(archive.name.removesuffix(".hlmodel.zip") + ".nnunet")
            )
        )
    finish_round(
        reg,
        round_no,
        cases,
        {
            "name": "export",
            "kind": "export",
            "status": "completed",
            "parent_round": last,
            **config_record(config),
            "model_dir": str(archive),
            "counts": dumps(info),
            "mean_metrics": dumps(means),
            "stage_seconds": dumps(stages),
            "code_version": code_version(),
            "started_at": started,
            "finished_at": datetime.now(timezone.utc),
        },
        metrics,
        round_line(
            round_no,
            f"export ({info['network']}, {info['parameters'] / 1e6:.1f} M parameters, "
            f"{info['size_bytes'] / 1e6:.1f} MB)",
            {},
            means,
            round_means(reg, last),
            stages,
        ),
        _markdown(archive, info, source, metric_rows(metrics, "val_gt")),
    )
    return str(archive)


def _markdown(archive: Path, info: dict, source: str, rows: list[dict]) -> str:
    lines = [
        f"# Export: {archive.name}\n",
        f"- model: {source}",
        f"- network: {info['network']}, {info['parameters']:,} parameters, archive {info['size_bytes'] / 1e6:.1f} MB",
        f"- as a plain nnU-Net model folder: `{info['nnunet_folder']}` "
        "(`nnUNetv2_predict_from_modelfolder -m FOLDER -f all -i IN -o OUT`)",
        "",
        "## Val metrics of the exported model\n",
    ]
    lines += [f"| {r['class']} | {r['DSC']} | {r['NSD']} |" for r in rows] or ["_no val cases_"]
    if rows:
        lines.insert(len(lines) - len(rows), "| class | DSC | NSD |\n|---|---|---|")
    return "\n".join(lines) + "\n"
