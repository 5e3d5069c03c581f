import pytest

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.models.nnunet.dataset_json import dataset_json
from hybridlabel.models.nnunet.plans import plans_name, plans_variant

PLANS = {
    "dataset_name": "Dataset001_x",
    "plans_name": "nnUNetPlans",
    "configurations": {
        "3d_fullres": {
            "batch_size": 2,
            "data_identifier": "nnUNetPlans_3d_fullres",
            "architecture": {
                "arch_kwargs": {
                    "n_stages": 6,
                    "features_per_stage": [32, 64, 128, 256, 320, 320],
                    "n_conv_per_stage": [2] * 6,
                    "n_conv_per_stage_decoder": [2] * 5,
                }
            },
        }
    },
}


def test_lightweight_and_tiny_edit_only_the_network():
    light = plans_variant(PLANS, "lightweight")
    kw = light["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    assert kw["features_per_stage"] == [16, 32, 64, 128, 256, 256]
    assert kw["n_conv_per_stage"] == [2] * 6 and kw["n_conv_per_stage_decoder"] == [2] * 5
    assert light["configurations"]["3d_fullres"]["data_identifier"] == "nnUNetPlans_3d_fullres"  # data reused
    assert light["plans_name"] == "nnUNetPlans_lightweight"
    tiny = plans_variant(PLANS, "tiny", batch_size=4)
    kw = tiny["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    assert kw["features_per_stage"][0] == 16 and kw["n_conv_per_stage"] == [1] * 6
    assert tiny["configurations"]["3d_fullres"]["batch_size"] == 4
    assert PLANS["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"][0] == 32
    assert plans_variant(PLANS, "default")["plans_name"] == plans_name("default") == "nnUNetPlans"
    with pytest.raises(ValueError, match="unknown network"):
        plans_variant(PLANS, "huge")


def test_dataset_json_labels_and_ignore():
    spec = dataset_json(LabelMapConfig(), 10, with_ignore=True)
    assert spec["labels"]["background"] == 0 and spec["labels"]["tumor"] == 14 and spec["labels"]["ignore"] == 15
    organs = dataset_json(LabelMapConfig(), 10, with_ignore=True, tumor=False)
    assert "tumor" not in organs["labels"] and organs["labels"]["ignore"] == 14
    assert spec["channel_names"] == {"0": "CT"} and spec["numTraining"] == 10


def test_a_configuration_the_planner_did_not_write_is_refused_with_the_ones_it_did():
    # nnU-Net plans 3d_lowres only for images much larger than the 3d_fullres patch
    with pytest.raises(ValueError, match="no '3d_lowres' configuration.*it has 3d_fullres.*training.configuration"):
        plans_variant(PLANS, "tiny", configuration="3d_lowres")
    assert plans_variant(PLANS, "tiny", configuration="3d_fullres")["configurations"]["3d_fullres"]
