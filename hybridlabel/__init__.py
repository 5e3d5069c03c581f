"""hybridlabel's Python API; the `hybridlabel` command line wraps these functions.

    import hybridlabel
    hybridlabel.run("config.yaml", "work")          # every round not complete yet, then the export
    hybridlabel.status("work")["rounds"]            # what the registry holds
    hybridlabel.predict("work/export/model.hlmodel.zip", "ct.nii.gz", "ct_seg.nii.gz")

The repository's folders install as subpackages (`hybridlabel.models`, `hybridlabel.tasks`,
`hybridlabel.flows`, `hybridlabel.data_registry`). Each function imports what it needs
when called: importing this package loads nothing heavy (nnU-Net's trainer subprocesses
import `hybridlabel.models` through it). Failures raise the project's errors
(`ConfigError`, `DatasetError`, `RoundError`, `RegistryError`, `WorkdirBusy`, ...), each
with a one-line message that says how to fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

__all__ = ["run", "resume", "predict", "evaluate", "status"]


def run(config: str | Path, workdir: str | Path, export: bool = True) -> dict:
    """Run every round of `config` that is not complete in `workdir`, then (unless
    `export=False`) export the lightweight model, and write the workdir's `report.html`.
    Returns {"workdir", "rounds", "export": archive path, "report": report path}."""
    from hybridlabel.flows.runner import run_pipeline

    return _with_report(run_pipeline(Path(config), Path(workdir), None, export), Path(workdir))


def resume(
    round_no: int,
    workdir: str | Path,
    config: str | Path | None = None,
    on_superseded: Callable[[list[int]], None] | None = None,
) -> dict:
    """Check round `round_no - 1`, mark rounds >= `round_no` superseded (their files are
    kept), and run from `round_no`. `config` defaults to the workdir's `config.yaml`."""
    from hybridlabel.data_registry.store import Registry
    from hybridlabel.flows.runner import run_pipeline
    from hybridlabel.models.config import ConfigError

    workdir = Path(workdir)
    config = Path(config) if config else workdir / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"{config} not found; pass the config (--config CONFIG.yaml)")

    def supersede() -> None:  # under the workdir lock, after round N-1 was checked intact
        moved = Registry(workdir).supersede_from(round_no)
        if moved and on_superseded:
            on_superseded(moved)

    return _with_report(run_pipeline(config, workdir, round_no, before_start=supersede), workdir)


def _with_report(result: dict, workdir: Path) -> dict:
    """The run's result and its report, rewritten after every run and resume."""
    from hybridlabel.tasks.report.page import write_report

    return {**result, "report": str(write_report(workdir, workdir / "report.html"))}


def predict(
    model: str | Path,
    source: str | Path,
    output: str | Path,
    device: str = "auto",
    tta: str = "none",
    fast: bool | None = None,
    sha256: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_case: Callable[[str], None] | None = None,
    min_tumor_peak: float | None = None,
) -> list[dict]:
    """Segment a CT file, a DICOM series folder or a folder of them with an exported
    model archive. Returns one record per input: its output and efficiency figures, or
    `error` (the one-line reason) for an input that could not be segmented. The archive
    and the inputs are checked first; then `on_start(number of inputs)`."""
    from hybridlabel.tasks.model.archive import read_archive
    from hybridlabel.tasks.model.predict_files import plan_jobs, predict_files, tumor_rule

    jobs = plan_jobs(Path(source), Path(output))
    loaded = read_archive(Path(model), sha256)  # a bad archive fails before any case
    tumor_rule(loaded[1], min_tumor_peak)  # ... and so does a bad tumour bar
    if on_start:
        on_start(len(jobs))
    return predict_files(
        Path(model),
        Path(source),
        Path(output),
        device,
        tta,
        fast,
        on_case=on_case,
        loaded=loaded,
        min_tumor_peak=min_tumor_peak,
    )


def evaluate(
    pred: str | Path,
    gt: str | Path,
    config: str | Path | None = None,
    classes: set[int] | None = None,
    on_case: Callable[[str], None] | None = None,
):
    """FLARE23 DSC and NSD of predicted label files against ground truth (files, or
    folders of files named alike), scoring only `classes` (default: the label map's).
    Returns (records, summary table, problems: case id -> why it was not scored)."""
    import pandas as pd

    from hybridlabel.models.config import PipelineConfig, load_config
    from hybridlabel.models.metric_summary import summary_table
    from hybridlabel.tasks.evaluate import evaluate_pairs, metric_rules, pair_files

    cfg = load_config(Path(config)) if config else PipelineConfig()
    rules = metric_rules(cfg)
    if classes:
        rules = type(rules)(
            {c: n for c, n in rules.classes.items() if c in classes}, rules.tolerances, rules.labeled_slices_only
        )
    result = evaluate_pairs(pair_files(Path(pred), Path(gt)), rules, on_case=on_case)
    table = (
        summary_table(pd.DataFrame(result.records), cfg.label_map.organ_ids, cfg.label_map.tumor_id)
        if result.records
        else None
    )
    return result.records, table, result.problems


def status(workdir: str | Path) -> dict:
    """The rounds recorded in a workdir's registry (what `hybridlabel status --json` prints)."""
    from hybridlabel.data_registry.store import Registry, RegistryError
    from hybridlabel.tasks.status import status_dict

    workdir = Path(workdir)
    if not (workdir / "registry").is_dir():
        raise RegistryError(
            f"{workdir} holds no registry; run `hybridlabel demo --workdir {workdir}` or `hybridlabel run`"
        )
    damaged = Registry(workdir).damaged(full=False)  # footers: `run` and `resume` read every page
    if damaged:
        raise RegistryError(damaged[0] + (f" ({len(damaged) - 1} more damaged file(s))" if len(damaged) > 1 else ""))
    return status_dict(workdir)
