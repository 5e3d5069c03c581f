"""`simulate-partial` on a fully labeled dataset: FLARE23 roles, labels that hold only
the annotated classes, complete labels aside, and a dataset the audit reads as intended."""

import json
import os

import numpy as np
import SimpleITK as sitk
from typer.testing import CliRunner

from hybridlabel.cli.main import app
from hybridlabel.models.config import LabelMapConfig
from hybridlabel.tasks.intake.audit import audit_dataset

runner = CliRunner()


def test_a_full_dataset_becomes_flare23_like(phantom_cohort, tmp_path):
    full = tmp_path / "full"
    (full / "imagesTr").mkdir(parents=True)
    (full / "labelsTr").mkdir()
    for image in sorted((phantom_cohort / "imagesTr").glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        os.symlink(image, full / "imagesTr" / image.name)
        os.symlink(phantom_cohort / "groundTruth" / f"{case}.nii.gz", full / "labelsTr" / f"{case}.nii.gz")
    out = tmp_path / "simulated"
    result = runner.invoke(app, ["simulate-partial", str(full), str(out), "--seed", "5"])
    assert result.exit_code == 0, result.output
    plan = json.loads((out / "simulation.json").read_text())["cases"]
    roles = [p["role"] for p in plan.values()]
    assert len(plan) == 12 and {"val", "strong", "unlabeled"} <= set(roles) and roles.count("tumor_only") >= 1
    for case, p in plan.items():
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "groundTruth" / f"{case}.nii.gz")))
        label = out / "labelsTr" / f"{case}.nii.gz"
        if p["role"] == "unlabeled":
            assert not label.exists()
            continue
        partial = sitk.GetArrayFromImage(sitk.ReadImage(str(label)))
        assert set(np.unique(partial)) - {0} <= set(p["annotated"])
        for c in p["annotated"]:
            if c != 14 and 14 in p["annotated"]:
                assert np.array_equal(partial == c, truth == c)  # an annotated organ is drawn whole
        if 14 in p["annotated"]:
            assert np.array_equal(partial == 14, truth == 14)
    cases = audit_dataset(out, LabelMapConfig()).set_index("case_id")
    assert cases["quarantine_reason"].isna().all()
    assert {c: r for c, r in cases["role"].items()} == {c: p["role"] for c, p in plan.items()}
