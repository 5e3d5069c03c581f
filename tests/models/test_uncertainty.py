import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.models.uncertainty import disagreement_scores, entropy_scores

LABELS = LabelMapConfig()


def one_hot(pred, n=15, sharp=1.0):
    probs = np.full((n,) + pred.shape, (1 - sharp) / (n - 1), np.float32)
    for c in range(n):
        probs[c][pred == c] = sharp
    return probs


def test_entropy_is_zero_for_certain_and_one_for_uniform_predictions():
    pred = np.zeros((4, 4, 4), np.uint8)
    pred[:2] = 1
    pred[3, 3, 3] = 14
    certain = entropy_scores(one_hot(pred), pred, LABELS)
    assert certain["organ_entropy"] == pytest.approx(0, abs=1e-6)
    uniform = np.full((15, 4, 4, 4), 1 / 15, np.float32)
    scores = entropy_scores(uniform, pred, LABELS)
    assert scores["organ_entropy"] == pytest.approx(1.0) and scores["tumor_entropy"] == pytest.approx(1.0)


def test_entropy_groups_are_separate_and_hand_computed():
    pred = np.zeros((2, 2, 2), np.uint8)
    pred[0, 0, 0] = 1
    pred[1, 1, 1] = 14
    probs = one_hot(pred)
    probs[:, 1, 1, 1] = 0
    probs[14, 1, 1, 1] = 0.5
    probs[0, 1, 1, 1] = 0.5  # tumour voxel split half/half with background
    scores = entropy_scores(probs, pred, LABELS)
    assert scores["organ_entropy"] == pytest.approx(0, abs=1e-6)
    assert scores["tumor_entropy"] == pytest.approx(np.log(2) / np.log(15), rel=1e-5)


def test_empty_groups_score_zero():
    pred = np.zeros((3, 3, 3), np.uint8)
    assert entropy_scores(one_hot(pred), pred, LABELS) == {"organ_entropy": 0.0, "tumor_entropy": 0.0}


def test_disagreement_empty_and_hand_computed():
    a = np.zeros((4, 4, 4), np.uint8)
    b = a.copy()
    assert disagreement_scores(a, b, LABELS) == {"organ_disagreement": 0.0, "tumor_disagreement": 0.0}
    b[0, 0, 0] = 14
    assert disagreement_scores(a, b, LABELS)["tumor_disagreement"] == 1.0
    a[0:2] = 1  # 32 voxels
    b[0:1] = 1  # 16 voxels, all agreeing (except the tumour voxel)
    b[0, 0, 0] = 14
    expected = 1 - 2 * 15 / (32 + 15)
    assert disagreement_scores(a, b, LABELS)["organ_disagreement"] == pytest.approx(expected)
    c = a.copy()
    c[c == 1] = 2  # same voxels, other organ: full disagreement
    assert disagreement_scores(a, c, LABELS)["organ_disagreement"] == 1.0


@settings(max_examples=50, deadline=None)
@given(
    a=arrays(np.uint8, (3, 4, 5), elements=st.sampled_from([0, 1, 2, 14])),
    b=arrays(np.uint8, (3, 4, 5), elements=st.sampled_from([0, 1, 2, 14])),
)
def test_disagreement_is_symmetric_bounded_and_zero_on_itself(a, b):
    ab, ba = disagreement_scores(a, b, LABELS), disagreement_scores(b, a, LABELS)
    assert ab == pytest.approx(ba)
    assert all(0.0 <= v <= 1.0 for v in ab.values())
    assert disagreement_scores(a, a, LABELS) == {"organ_disagreement": 0.0, "tumor_disagreement": 0.0}


def test_every_configurable_scorer_is_registered_and_computed_by_name():
    from typing import get_args

    from hybridlabel.models.config import SelectionConfig
    from hybridlabel.models.uncertainty import SCORERS, ScoreInputs, case_scores

    assert set(get_args(SelectionConfig.model_fields["scorer"].annotation)) == set(SCORERS)
    pred = np.zeros((2, 4, 4), np.uint8)
    pred[0, :2, :2] = 1
    other = pred.copy()
    other[0, 0, 0] = 0
    inputs = ScoreInputs(pred, one_hot(pred), other)
    scores = case_scores(inputs, LABELS, SCORERS)
    assert scores == {**entropy_scores(inputs.probs, pred, LABELS), **disagreement_scores(pred, other, LABELS)}
    assert case_scores(inputs, LABELS, ["entropy"]).keys() == {"organ_entropy", "tumor_entropy"}
    with pytest.raises(ValueError, match="needs a second prediction"):
        case_scores(ScoreInputs(pred, inputs.probs), LABELS, ["disagreement"])
    with pytest.raises(ValueError, match="unknown uncertainty scorer 'margin'"):
        case_scores(inputs, LABELS, ["margin"])
