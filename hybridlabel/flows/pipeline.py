"""The `pipeline` flow: the rounds of a config, in order, from any round, then export."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from hybridlabel.data_registry.store import Registry
from hybridlabel.flows.dashboard import publish_pipeline_overview
from hybridlabel.flows.export import export_model
from hybridlabel.flows.gate import review_gate
from hybridlabel.flows.rounds import student_round, teacher_round
from hybridlabel.flows.stopping import stop_requested
from hybridlabel.flows.timing import budget_line
from hybridlabel.models.config import load_config
from hybridlabel.models.config_yaml import render_config_yaml
from hybridlabel.tasks.events import emit
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.registry import config_record
from hybridlabel.tasks.round_inputs import RoundError, parent_model
from hybridlabel.tasks.workdir import Layout, WorkdirLock


def task_runner(config):
    """Threads by default; a Dask cluster (local, or at `dask_address`) when configured."""
    if config.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if config.dask_address:
            return DaskTaskRunner(address=config.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": config.workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=config.workers)


def first_round_to_run(workdir: Path, config) -> int:
    """The first round that is not completed under this very config."""
    reg = Registry(workdir)
    sha = config_record(config)["config_sha256"]
    for r in range(len(config.rounds)):
        row = reg.round_row(r)
        if not reg.is_complete(r) or row.get("config_sha256") != sha:
            return r
    return len(config.rounds)


def check_start(config, workdir: Path, start_round: int) -> None:
    """Fail before any work: a missing dataset, or a start whose parent is incomplete."""
    if not Path(config.dataset).is_dir():
        raise RoundError(f"dataset folder {config.dataset} not found; fix `dataset:` in the config")
    if not 0 <= start_round <= len(config.rounds):
        raise RoundError(f"round {start_round} is not in the config (rounds 0-{len(config.rounds) - 1})")
    if start_round > 0:
        parent_model(workdir, start_round - 1)


@flow(name="pipeline", flow_run_name="pipeline-from-round-{start_round}")
def pipeline(config_path: str, workdir: str, start_round: int = 0, export: bool = True) -> dict:
    """Run rounds start_round.. of the config, then export the final model."""
    config = load_config(Path(config_path))
    work = Path(workdir)
    check_start(config, work, start_round)
    with WorkdirLock(work):
        layout = Layout(work)
        if Path(config_path).resolve() != layout.config.resolve():
            # the workdir keeps the config it ran with (paths made absolute), for resume;
            # the rounds get it as a rerun will read it back, so their fingerprints match
            atomic_write_text(layout.config, render_config_yaml(config))
            config = load_config(layout.config)
        if start_round < len(config.rounds):
            emit("done", budget_line(config.rounds, start_round))
        for r in range(start_round, len(config.rounds)):
            emit(
                "round",
                f"round {r}: {config.rounds[r].name}",
                round=r,
                rounds=len(config.rounds),
                name=config.rounds[r].name,
            )
            try:
                if r == 0:
                    teacher_round(config, str(work))
                else:  # per-case tasks fan out on the configured runner (threads or Dask)
                    student_round.with_options(task_runner=task_runner(config))(config, str(work), r)
                publish_pipeline_overview(work)
                if r > 0 and config.review.gate and r < len(config.rounds) - 1:  # the next round takes corrections
                    review_gate(config, work, r)
                    publish_pipeline_overview(work)
            except BaseException:
                reg = Registry(work)
                if not stop_requested() and reg.round_row(r) and not reg.is_complete(r):
                    reg.set_round_status(r, "failed")
                raise
        if export:
            emit("round", "export", round=len(config.rounds), rounds=len(config.rounds), name="export")
        archive = export_model(config, str(work)) if export else None
    return {"workdir": str(work), "rounds": len(config.rounds), "export": archive}


@flow(name="single-round", flow_run_name="round-{round_no}")
def single_round(config_path: str, workdir: str, round_no: int) -> dict:
    """One round (for the single-round deployment): its parent must be complete."""
    config = load_config(Path(config_path))
    check_start(config, Path(workdir), round_no)
    with WorkdirLock(Path(workdir)):
        if round_no == 0:
            return teacher_round(config, workdir)
        return student_round.with_options(task_runner=task_runner(config))(config, workdir, round_no)
