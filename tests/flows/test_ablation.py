"""`hybridlabel ablate`: arms as real pipeline subflows at test budgets, the table, resume."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hybridlabel.cli.main import app
from hybridlabel.flows.ablation import AblationError, arm_config, plan_arms
from hybridlabel.models.config import load_config
from tests.conftest import tiny_config_yaml

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it


def test_arms_share_data_val_and_budget_and_differ_where_they_should(tmp_path, phantom_cohort):
    path = tmp_path / "c.yaml"
    path.write_text(tiny_config_yaml(phantom_cohort))
    config = load_config(path)
    teacher, naive, ta, rounds = (arm_config(config, a, 5) for a in ("teacher", "naive", "target_adaptive", "rounds"))
    assert [len(c.rounds) for c in (teacher, naive, ta, rounds)] == [1, 1, 1, len(config.rounds)]
    assert teacher.rounds[0].train_roles == ["strong"]
    assert (
        naive.rounds[0].train_roles == ["strong", "partial", "tumor_only"] and naive.rounds[0].training.loss == "naive"
    )
    assert ta.rounds[0].training.loss == "target_adaptive" and ta.rounds[0].targets == "organs+tumor"
    budget = config.rounds[0].training.model_dump(exclude={"seed", "loss"})
    long = arm_config(config, "teacher_long", 5).rounds[0].training.model_dump(exclude={"seed", "loss"})
    for cfg in (teacher, naive, ta, rounds):
        assert cfg.dataset == config.dataset and cfg.label_map == config.label_map
        assert all(r.training.seed == 5 for r in cfg.rounds)
    assert teacher.rounds[0].training.model_dump(exclude={"seed", "loss"}) == budget
    # the arms on every labelled case train as long as the teacher trained as long: equal compute
    assert [c.rounds[0].training.model_dump(exclude={"seed", "loss"}) for c in (naive, ta)] == [long, long]
    assert long["epochs"] > budget["epochs"]
    # the arms that take the teacher's plans run after one that makes them
    assert plan_arms(["naive", "teacher", "rounds"], [1, 2]) == [
        ("rounds", 1),
        ("naive", 1),
        ("rounds", 2),
        ("naive", 2),
    ]  # teacher = rounds' round 0
    with pytest.raises(AblationError, match="unknown arm"):
        plan_arms(["teacher", "bogus"], [1])
    with pytest.raises(AblationError, match="the naive and merge_max arms take the teacher's plans"):
        plan_arms(["merge_max", "naive"], [1])
    assert plan_arms(["naive"], [3], teacher_planned=True) == [("naive", 3)]  # from an earlier run's teacher


def test_an_arm_on_every_labelled_case_takes_the_teacher_plans_of_any_seed(tmp_path, phantom_cohort):
    from hybridlabel.flows.ablation import _adopt_teacher_plans, teacher_arms_ran
    from hybridlabel.models.nnunet.identity import round_dataset

    path = tmp_path / "c.yaml"
    path.write_text(tiny_config_yaml(phantom_cohort))
    config, work = load_config(path), tmp_path / "w"

    def dataset(arm, seed):
        return round_dataset(
            work / "arms" / f"{arm}-s{seed}" / "nnunet", config.nnunet_dataset_id, f"{config.name}_{arm}", 0
        )

    with pytest.raises(AblationError, match="run teacher, teacher_long or rounds first"):
        _adopt_teacher_plans(config, work, "naive", 1)
    teacher = dataset("teacher_long", 2).preprocessed
    teacher.mkdir(parents=True)
    (teacher / "nnUNetPlans.json").write_text(
        json.dumps({"dataset_name": "x", "configurations": {"2d": {"batch_size": 6}}})
    )
    assert teacher_arms_ran(work) == [work / "arms" / "teacher_long-s2"]
    _adopt_teacher_plans(config, work, "naive", 1)  # seed 1 has no teacher: seed 2's plans are the same
    adopted = json.loads((dataset("naive", 1).preprocessed / "nnUNetPlans.json").read_text())
    assert adopted["configurations"] == {"2d": {"batch_size": 6}}
    assert adopted["dataset_name"] == dataset("naive", 1).folder_name
    own = dataset("merge_max", 1).preprocessed  # an arm planned on its own cases, as before
    own.mkdir(parents=True)
    (own / "nnUNetPlans.json").write_text(
        json.dumps({"dataset_name": "y", "configurations": {"2d": {"batch_size": 135}}})
    )
    with pytest.raises(
        AblationError, match="merge_max-s1 was planned otherwise than the teacher .*move that folder aside"
    ):
        _adopt_teacher_plans(config, work, "merge_max", 1)
    assert json.loads((own / "nnUNetPlans.json").read_text())["configurations"]["2d"]["batch_size"] == 135  # untouched


def test_the_long_teacher_trains_as_long_as_every_round_together(tmp_path, phantom_cohort):
    path = tmp_path / "c.yaml"
    path.write_text(tiny_config_yaml(phantom_cohort))  # 3 rounds of 1 epoch x 2 iterations
    config = load_config(path)
    longer = config.rounds[2].training.model_copy(update={"iterations_per_epoch": 5})
    config = config.model_copy(
        update={"rounds": config.rounds[:2] + [config.rounds[2].model_copy(update={"training": longer})]}
    )
    long = arm_config(config, "teacher_long", 4)
    (teacher,) = arm_config(config, "teacher", 4).rounds
    (spec,) = long.rounds
    assert spec.train_roles == teacher.train_roles == ["strong"] and spec.targets == teacher.targets
    assert spec.training.epochs * spec.training.iterations_per_epoch >= 2 + 2 + 5  # every round's iterations
    assert spec.training.epochs == 5 and spec.training.max_train_seconds is None
    assert spec.training.model_dump(exclude={"epochs"}) == teacher.training.model_dump(exclude={"epochs"})
    capped = config.model_copy(
        update={
            "rounds": [
                r.model_copy(update={"training": r.training.model_copy(update={"max_train_seconds": 60.0})})
                for r in config.rounds
            ]
        }
    )
    assert arm_config(capped, "teacher_long", 4).rounds[0].training.max_train_seconds == 180.0
    assert plan_arms(["teacher_long", "rounds"], [1]) == [("teacher_long", 1), ("rounds", 1)]


def test_the_cutmix_arm_turns_cutmix_on_in_the_tumour_rounds_only():
    from hybridlabel.cli.demo import ablation_config
    from hybridlabel.models.config import CutMixConfig

    config = ablation_config(100)
    assert not any(r.training.cutmix for r in config.rounds)
    # students start from their parent, as the demo's and the presets' do (teacher_long is the control)
    assert [r.training.init_from_parent for r in config.rounds] == [False, True, True]
    cutmix, rounds = arm_config(config, "cutmix", 2), arm_config(config, "rounds", 2)
    assert [r.training.cutmix for r in cutmix.rounds] == [
        CutMixConfig() if r.targets == "organs+tumor" else None for r in config.rounds
    ]
    assert any(r.training.cutmix for r in cutmix.rounds) and not any(r.training.cutmix for r in rounds.rounds)
    # everything else equal: the arms differ by CutMix alone
    assert [r.training.model_copy(update={"cutmix": None}) for r in cutmix.rounds] == [
        r.training for r in rounds.rounds
    ]
    own = config.model_copy(
        update={
            "rounds": [
                r.model_copy(
                    update={"training": r.training.model_copy(update={"cutmix": CutMixConfig(probability=0.9)})}
                )
                if r.targets == "organs+tumor"
                else r
                for r in config.rounds
            ]
        }
    )
    assert arm_config(own, "cutmix", 2).rounds[-1].training.cutmix.probability == 0.9  # the config's own settings
    organs_only = config.model_copy(update={"rounds": config.rounds[:2]})
    with pytest.raises(AblationError, match="organs\\+tumor"):
        arm_config(organs_only, "cutmix", 1)


def test_ablate_runs_records_prints_and_resumes(tmp_path, phantom_cohort, prefect_harness):
    config = tmp_path / "c.yaml"
    config.write_text(tiny_config_yaml(phantom_cohort, rounds=2, name="abl", dataset_id=700))
    work = tmp_path / "abl"
    args = [
        "ablate",
        str(config),
        "--workdir",
        str(work),
        "--arms",
        "teacher,teacher_long,naive,target_adaptive,rounds,oracle",
        "--seeds",
        "3",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for text in ("teacher", "naive", "target_adaptive", "round 1", "organ DSC", "tumour DSC", "labels DSC"):
        assert text in result.output, text
    assert "…" not in result.output.split("ablation in")[1]  # the table fits an 80-column terminal uncut
    assert "Equal compute: round 1 (" in " ".join(result.output.split())  # the payoff against teacher_long
    rows = pd.read_parquet(work / "ablation.parquet")
    assert list(rows["arm"]) == ["teacher", "teacher_long", "naive", "target_adaptive", "round 1", "oracle"]
    # the ceiling: every non-val case on its complete label, as long as teacher_long, with the teacher's plans
    assert "The ceiling (every training case with its complete labels, as long)" in " ".join(result.output.split())
    assert rows["organ_dsc"].between(0, 1).all() and (rows["seed"] == 3).all()
    assert rows["organ_dsc_present"].between(0, 1).all()  # judged over the classes present
    # complete labels: only the student round makes them (its hybrid labels and the teacher's raw predictions)
    labelled = rows.set_index("arm")[["labels_dsc_present", "raw_labels_dsc_present"]]
    assert labelled.loc["round 1"].between(0, 1).all() and labelled.drop("round 1").isna().all().all()
    per_model = rows.set_index("arm")["trained_iterations"]
    assert per_model["oracle"] == per_model["teacher_long"]
    from hybridlabel.data_registry.store import Registry

    oracle, teacher = (Registry(work / "arms" / f"{a}-s3").round_row(0, decoded=True) for a in ("oracle", "rounds"))
    assert oracle["counts"]["trained"] > teacher["counts"]["trained"]  # more cases ...
    plans = [
        json.loads(next((work / "arms" / f"{a}-s3").rglob("nnUNetPlans.json")).read_text())["configurations"]
        for a in ("teacher_long", "oracle", "naive", "target_adaptive")
    ]
    assert plans[1:] == plans[:1] * 3  # ... at the teacher's batch and patch: equal iterations, equal compute
    long_arms = ["teacher_long", "oracle", "naive", "target_adaptive"]
    assert rows[~rows["arm"].isin(long_arms)]["iterations"].nunique() == 1  # one budget for every other model
    assert per_model["teacher_long"] == per_model["teacher"] + per_model["round 1"]  # as long as both rounds
    assert (per_model[long_arms] == per_model["teacher_long"]).all()
    assert rows.loc[rows["arm"] == "teacher", "tumor_dsc"].isna().all()  # organs-only teacher
    assert rows.loc[rows["arm"] == "naive", "tumor_dsc"].notna().all()
    # both tumour figures, where the model outputs a tumour: found (% of val cases with one), false alarms
    figures = rows.set_index("arm")[["tumor_found_pct", "tumor_false_alarm_pct"]]
    assert figures.loc["teacher"].isna().all() and figures.loc["naive"].notna().any()
    shown = figures.to_numpy(dtype=float).ravel()
    assert ((shown[~np.isnan(shown)] >= 0) & (shown[~np.isnan(shown)] <= 100)).all()
    # each arm is a pipeline run recorded in its own registry, with its loss in the config
    ta = Registry(work / "arms" / "target_adaptive-s3").round_row(0)
    assert json.loads(ta["config_json"])["rounds"][0]["training"]["loss"] == "target_adaptive"
    checkpoint = next((work / "arms" / "naive-s3").rglob("checkpoint_final.pth"))
    stamp = checkpoint.stat().st_mtime_ns
    again = CliRunner().invoke(app, args)  # everything complete: nothing is trained again
    assert again.exit_code == 0, again.output
    assert checkpoint.stat().st_mtime_ns == stamp
    assert len(pd.read_parquet(work / "ablation.parquet")) == 6
    report = CliRunner().invoke(app, ["report", "--workdir", str(work)])
    assert report.exit_code == 0, report.output
    html = (work / "report.html").read_text()
    assert "Ablation: teacher-only vs naive" in html and "target_adaptive" in html
