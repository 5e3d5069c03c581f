"""Predicted tumours the model is nowhere sure of take their next-ranked class."""

import numpy as np
import pytest
import torch

from hybridlabel.models.nnunet.fast_predictor import logits_to_labels
from hybridlabel.models.tumor_filter import drop_unsure_tumors, unsure_tumor_voxels

TUMOR = 3  # classes 0 background, 1 liver, 2 kidney, 3 tumour


def _case():
    """A liver holding a confident tumour (peak 0.95) and an unsure speck (peak 0.6) in
    the kidney; probabilities (4, z, y, x) whose argmax is the label map."""
    probs = np.zeros((4, 6, 12, 12), dtype=np.float32)
    probs[0] = 1.0
    probs[:, :, 1:6, 1:6] = np.array([0, 1, 0, 0])[:, None, None, None]  # liver
    probs[:, :, 7:11, 7:11] = np.array([0, 0, 1, 0])[:, None, None, None]  # kidney
    probs[:, 2:4, 2:4, 2:4] = np.array([0.0, 0.3, 0.0, 0.7])[:, None, None, None]  # tumour, border 0.7
    probs[:, 3, 3, 3] = [0.0, 0.05, 0.0, 0.95]  # ... and a sure core
    probs[:, 2, 8:10, 8] = np.array([0.0, 0.0, 0.4, 0.6])[:, None]  # a speck, 0.6 at most
    return probs.argmax(0).astype(np.uint8), probs


def test_an_unsure_speck_takes_its_host_organ_and_a_sure_tumour_stays_whole():
    seg, probs = _case()
    out, changed = drop_unsure_tumors(seg, probs, [0, 1, 2, 3], TUMOR, 0.9)
    assert changed == 2
    assert (out[2, 8:10, 8] == 2).all()  # the speck is kidney again, no hole
    assert (out[2:4, 2:4, 2:4] == TUMOR).all()  # every voxel of the sure tumour, its 0.7 border too
    assert (out[seg != TUMOR] == seg[seg != TUMOR]).all()  # nothing else touched
    assert drop_unsure_tumors(seg, probs, [0, 1, 2, 3], TUMOR, 0.5)[1] == 0  # a lower bar keeps both


def test_channels_follow_the_models_classes():
    seg, probs = _case()
    lut = np.array([0, 1, 2, 14], dtype=np.uint8)  # the tumour is class 14, channel 3
    out, changed = drop_unsure_tumors(lut[seg], probs, [0, 1, 2, 14], 14, 0.9)
    assert changed == 2 and (out[2, 8:10, 8] == 2).all() and (out[3, 3, 3] == 14)
    organs_only = probs[:3]  # a model without the tumour class: nothing to do
    assert drop_unsure_tumors(seg, organs_only, [0, 1, 2], TUMOR, 0.9)[1] == 0


def test_a_probability_map_of_another_grid_is_refused():
    seg, probs = _case()
    with pytest.raises(ValueError, match="differs"):
        unsure_tumor_voxels(seg, probs[TUMOR][:-1], TUMOR, 0.9)


def test_the_fast_path_gives_the_tumour_probability_and_the_runner_up():
    seg, probs = _case()
    logits = torch.from_numpy(np.log(probs + 1e-4))
    labels, (tumor_prob, runner_up) = logits_to_labels(logits, seg.shape, TUMOR)
    assert (labels == seg).all()
    assert abs(float(tumor_prob[3, 3, 3]) - 0.95) < 0.01 and float(tumor_prob[2, 8, 8]) < 0.7
    assert runner_up[2, 8, 8] == 2 and runner_up[3, 3, 3] == 1
    unsure = unsure_tumor_voxels(labels, tumor_prob, TUMOR, 0.9)
    assert unsure.sum() == 2 and unsure[2, 8:10, 8].all()
