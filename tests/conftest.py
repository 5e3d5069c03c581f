"""Shared fixtures: the real CT copied into tests/data/real-ct (licence beside it), and
a small phantom cohort written once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_CT = Path(__file__).parent / "data" / "real-ct"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def real_ct() -> Path:
    return REAL_CT


@pytest.fixture(scope="session")
def phantom_cohort(tmp_path_factory) -> Path:
    from hybridlabel.tasks.intake.phantom import write_phantom_cohort

    out = tmp_path_factory.mktemp("phantom")
    write_phantom_cohort(out, n_cases=12, seed=3)
    return out


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One Prefect test server for the session (PREFECT_HOME in a temporary folder)."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


DUPLICATED = "phantom_001"  # a partial case of the test cohort (seed 3)


@pytest.fixture(scope="session")
def finished(phantom_cohort, tmp_path_factory, prefect_harness):
    """The whole pipeline (3 rounds + export) at test budgets, run once per session."""
    from hybridlabel.flows.pipeline import pipeline

    work = tmp_path_factory.mktemp("work")
    config = work.parent / f"{work.name}.yaml"
    # the cohort's manifest with one case id given twice: the audit quarantines the second
    # row, and the round's results must land on the first (the real case)
    manifest = work.parent / f"{work.name}-manifest.csv"
    rows = (phantom_cohort / "manifest.csv").read_text().replace(",imagesTr/", f",{phantom_cohort}/imagesTr/")
    rows = rows.replace(",labelsTr/", f",{phantom_cohort}/labelsTr/")
    manifest.write_text(rows + f"{DUPLICATED},{phantom_cohort}/imagesTr/{DUPLICATED}_0000.nii.gz,,,\n")
    config.write_text(
        tiny_config_yaml(phantom_cohort) + f"manifest: {manifest}\n"
        "evaluation: {holdout_fraction: 0.34, holdout_seed: 1}\n"
    )
    result = pipeline(str(config), str(work), 0, True)
    return {"work": work, "config": config, "result": result}


def tiny_config_yaml(dataset, rounds: int = 3, name: str = "t", dataset_id: int = 800) -> str:
    """A pipeline config with CPU-test budgets (seconds per round). The third round trains
    nnU-Net's 2d configuration (the others 3d_fullres), so the pipeline test covers both:
    training, prediction, evaluation, the export and `predict --fast` of a 2d model; it
    trains with CutMix."""
    budget = "{network: tiny, epochs: 1, iterations_per_epoch: 2, val_iterations: 1, device: cpu, seed: 3}"
    # the tumour round pastes tumours into every patch of a case without a tumour label (CutMix)
    budget_2d = budget.replace(
        "{",
        "{configuration: 2d, cutmix: {probability: 1.0, margins: [[0, 10], [4, 12]], "
        "placement: any_organ, min_voxels: 1}, ",
    )
    specs = [
        f"  - {{name: teacher, kind: teacher, predict_roles: [], train_roles: [strong], training: {budget}}}",
        f"  - {{name: organs, predict_roles: [partial, tumor_only], train_roles: [strong, partial, tumor_only], "
        f"training: {budget}}}",
        f"  - {{name: tumours, predict_roles: [strong, partial, tumor_only, unlabeled], "
        f"train_roles: [strong, partial, tumor_only, unlabeled], targets: organs+tumor, training: {budget_2d}}}",
    ][:rounds]
    return (
        f"name: {name}\nnnunet_dataset_id: {dataset_id}\ndataset: {dataset}\nworkers: 2\n"
        f"selection: {{organ_keep: 0.67, tumor_keep: 1}}\nrounds:\n" + "\n".join(specs) + "\n"
    )
