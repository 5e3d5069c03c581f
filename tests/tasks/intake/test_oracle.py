"""The oracle arm's manifest: every case with a complete label trains on it as a strong
case; val cases, and cases without a complete label, stay as they were."""

import pytest

from hybridlabel.flows.ablation import AblationError, arm_config, plan_arms
from hybridlabel.models.config import LabelMapConfig, load_config
from hybridlabel.tasks.intake.audit import DatasetError, audit_dataset
from hybridlabel.tasks.intake.oracle import write_oracle_manifest
from tests.conftest import tiny_config_yaml


def test_every_case_with_a_complete_label_becomes_strong_and_val_stays_val(phantom_cohort, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(tiny_config_yaml(phantom_cohort))
    config = load_config(path)
    before = audit_dataset(phantom_cohort, LabelMapConfig()).set_index("case_id")
    without = sorted(before.index)[0]
    (tmp_path / "gt").mkdir()  # complete labels of every case but one, named by the config
    for f in (phantom_cohort / "groundTruth").iterdir():
        if not f.name.startswith(without):
            (tmp_path / "gt" / f.name).symlink_to(f)
    config = config.model_copy(
        update={"evaluation": config.evaluation.model_copy(update={"complete_labels": tmp_path / "gt"})}
    )
    manifest = write_oracle_manifest(config, tmp_path / "arms" / "oracle-manifest.csv")
    oracle = arm_config(config, "oracle", 7, manifest)
    assert oracle.manifest == manifest and oracle.allow_paths_outside_dataset  # the user's own folder
    (spec,) = oracle.rounds
    assert spec.targets == "organs+tumor" and spec.train_roles == ["strong"]
    after = audit_dataset(phantom_cohort, LabelMapConfig(), manifest, allow_outside=True).set_index("case_id")
    assert after["quarantine_reason"].isna().all()
    for case, row in before.iterrows():
        if row["role"] == "val" or case == without:
            assert after.loc[case, "role"] == row["role"]
        else:
            assert after.loc[case, "role"] == "strong", case
            assert sorted(after.loc[case, "annotated_classes"]) == list(range(1, 15))
    assert (after["role"] == "strong").sum() > (before["role"] == "strong").sum()


def test_the_oracle_refuses_a_dataset_without_complete_labels(phantom_cohort, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(tiny_config_yaml(phantom_cohort))
    config = load_config(path)
    config = config.model_copy(
        update={"evaluation": config.evaluation.model_copy(update={"complete_labels": tmp_path / "none"})}
    )
    with pytest.raises(DatasetError, match="the oracle arm needs complete labels"):
        write_oracle_manifest(config, tmp_path / "m.csv")
    with pytest.raises(AblationError, match="needs its manifest"):
        arm_config(config, "oracle", 1)
    with pytest.raises(AblationError, match="takes the teacher's plans"):
        plan_arms(["oracle"], [1])
    assert plan_arms(["oracle", "teacher_long"], [1]) == [("teacher_long", 1), ("oracle", 1)]
    assert plan_arms(["oracle", "teacher"], [1]) == [("teacher", 1), ("oracle", 1)]
