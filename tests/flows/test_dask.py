"""A round's per-case work (predict, then merge), in chunks of cases, on a local Dask
cluster of 2 workers."""

import json
from pathlib import Path

import pytest
from prefect import flow

from hybridlabel.flows.fanout import chunks, map_chunks
from hybridlabel.models.config import LabelMapConfig, PipelineConfig, TrainingConfig
from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.tasks.nnunet.dataset import TrainingCase, write_round_dataset
from hybridlabel.tasks.nnunet.preprocess import plan_dataset, preprocess_round
from hybridlabel.tasks.nnunet.train import train_model
from hybridlabel.tasks.round_tasks import merge_cases_task, predict_cases_task

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it


@pytest.fixture(scope="module")
def tiny_model(phantom_cohort, tmp_path_factory):
    truth = json.loads((phantom_cohort / "phantom.json").read_text())["cases"]
    strong = [
        TrainingCase(c, phantom_cohort / "imagesTr" / f"{c}_0000.nii.gz", phantom_cohort / "labelsTr" / f"{c}.nii.gz")
        for c, t in sorted(truth.items())
        if t["role"] == "strong"
    ]
    root = tmp_path_factory.mktemp("dask-nnunet")
    write_round_dataset(root, 31, "dask", strong, LabelMapConfig(), tumor=False)
    plans = plan_dataset(root, 31, log=lambda _: None)
    preprocess_round(root, plans, 31, "dask", strong)
    cfg = TrainingConfig(network="tiny", epochs=1, iterations_per_epoch=2, val_iterations=1, device="cpu", seed=1)
    return train_model(NnunetDataset(root, 31, "dask"), cfg, log=lambda _: None), truth


def test_per_case_tasks_fan_out_on_two_dask_workers(tiny_model, phantom_cohort, tmp_path, prefect_harness):
    from prefect_dask import DaskTaskRunner

    model, truth = tiny_model
    cases = [
        {
            "case_id": c,
            "role": t["role"],
            "image_path": str(phantom_cohort / "imagesTr" / f"{c}_0000.nii.gz"),
            "label_path": str(phantom_cohort / "labelsTr" / f"{c}.nii.gz") if t["annotated"] else None,
            "annotated_classes": t["annotated"],
        }
        for c, t in sorted(truth.items())
        if t["role"] in ("partial", "tumor_only", "unlabeled")
    ]
    config = PipelineConfig(dataset=phantom_cohort)

    @flow(
        task_runner=DaskTaskRunner(
            cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
        )
    )
    def fan_out():
        # workers=1: chunks of 2 cases (flows.fanout.chunks), as a large round sends them
        ids = [c["case_id"] for c in cases]
        preds = map_chunks(
            predict_cases_task,
            1,
            None,
            ids,
            {"cases": cases, "scorers": [("entropy",)] * len(cases)},
            model_dir=str(model),
            out_dir=str(tmp_path / "predict"),
            labels=config.label_map,
            device="cpu",
            tta="none",
            model_sha="m",
            reference_dir=None,
            store=str(tmp_path / "store"),
        )
        return map_chunks(
            merge_cases_task,
            1,
            None,
            ids,
            {"cases": cases, "preds": preds, "tumor_selected": [True] * len(cases)},
            out_dir=str(tmp_path / "merge"),
            merge=config.merge,
            labels=config.label_map,
            targets="organs+tumor",
            store=str(tmp_path / "store"),
        )

    assert [len(c) for c in chunks(cases, 1)] == [2] * (len(cases) // 2) + [1] * (len(cases) % 2)
    assert len(cases) >= 6
    results = fan_out()
    assert [r["case_id"] for r in results] == [c["case_id"] for c in cases]  # in case order
    for r in results:
        assert Path(r["path"]).exists() and len(r["sha256"]) == 64
    # the work was spread: journals record the process that ran each case
    pids = {json.loads(p.read_text())["pid"] for p in (tmp_path / "predict" / "journal").glob("*.json")}
    assert len(pids) == 2
