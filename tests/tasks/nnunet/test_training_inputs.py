"""A trained model is reused only for the very inputs it was trained on."""

import json

from hybridlabel.models.config import TrainingConfig
from hybridlabel.models.nnunet.identity import ModelIdentity
from hybridlabel.models.nnunet.spec import TrainingSpec
from hybridlabel.tasks.nnunet.train import _training_inputs


def test_a_changed_label_set_is_a_changed_input(tmp_path):
    """Organs-only turns the tumour (14) into the ignore label (14): every label array
    stays equal, but the network's outputs differ, so the model must not be reused."""
    model = ModelIdentity(tmp_path, 502, "Dataset502_x", "nnUNetPlans_tiny", "2d")
    model.preprocessed.mkdir(parents=True)
    model.plans_file.write_text(json.dumps({"configurations": {"2d": {"data_identifier": "nnUNetPlans_2d"}}}))
    spec = TrainingSpec(TrainingConfig())
    labels = {"background": 0, "liver": 1}
    seen = []
    for last in ({"tumor": 14}, {"ignore": 14}, {"tumor": 14}):
        (model.preprocessed / "dataset.json").write_text(json.dumps({"labels": {**labels, **last}}))
        seen.append(_training_inputs(model, spec))
    assert seen[0] != seen[1] and seen[0] == seen[2]
