"""A dataset given another's plans keeps them: plan_dataset then plans nothing anew, so a
model trained on more cases trains with the same batch, patch and normalisation."""

import json

import pytest

from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.tasks.nnunet.preprocess import NnunetError, adopt_plans, plan_dataset


def test_the_target_keeps_the_source_plans_under_its_own_name(tmp_path):
    source, target = NnunetDataset(tmp_path / "a", 500, "run_r0"), NnunetDataset(tmp_path / "b", 500, "oracle_r0")
    with pytest.raises(NnunetError, match="Dataset500_run_r0 has no plans"):
        adopt_plans(source, target)
    source.preprocessed.mkdir(parents=True)
    plans = {"dataset_name": source.folder_name, "configurations": {"2d": {"batch_size": 6, "patch_size": [64, 80]}}}
    (source.preprocessed / "nnUNetPlans.json").write_text(json.dumps(plans))
    (source.preprocessed / "nnUNetPlans.planner.json").write_text(json.dumps({"gpu_memory_gb": None}))
    fingerprint = {"foreground_intensity_properties_per_channel": {}}
    (source.preprocessed / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    made = adopt_plans(source, target)
    assert json.loads(made.read_text()) == {**plans, "dataset_name": "Dataset500_oracle_r0"}
    assert json.loads((target.preprocessed / "dataset_fingerprint.json").read_text()) == fingerprint
    target.raw.mkdir(parents=True)  # plan_dataset finds the raw folder and keeps the plans it holds
    assert plan_dataset(target.root, target.id, log=lambda _: None) == made
    assert adopt_plans(source, target) == made  # again: the same plans, kept
    plans["configurations"]["2d"]["batch_size"] = 35  # the source planned anew: never swap under cached data
    (source.preprocessed / "nnUNetPlans.json").write_text(json.dumps(plans))
    with pytest.raises(NnunetError, match="was planned otherwise"):
        adopt_plans(source, target)
