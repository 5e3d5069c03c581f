import numpy as np
import pytest

from hybridlabel.models.label_qc import label_stats
from hybridlabel.models.review_rank import (
    DEFAULT_WEIGHTS,
    SIGNALS,
    class_score,
    gt_evidence,
    percentiles,
    rank_cases,
    review_reference,
    top_of,
    touching_pairs,
)

NAMES = {1: "liver", 2: "kidney", 3: "spleen", 14: "tumor"}


def _truth() -> np.ndarray:
    label = np.zeros((4, 10, 12), np.uint8)
    label[:, 1:5, 1:5] = 1  # liver
    label[:, 1:5, 5:7] = 2  # kidney, touching the liver
    label[:, 6:9, 8:11] = 3  # spleen, apart
    return label


def _reference():
    truth = _truth()
    stats = label_stats(truth, (1.0, 1.0, 1.0))
    return review_reference([stats, stats], [touching_pairs(truth)] * 2, [(1, 2, 3), (1, 2, 3)])


def test_touching_pairs_are_the_classes_that_share_a_face():
    assert touching_pairs(_truth()) == {(1, 2)}
    assert touching_pairs(np.zeros((2, 2, 2), np.uint8)) == set()


def test_gt_evidence_names_the_prediction_on_another_classes_ground_truth():
    gt = _truth()
    pred = gt.copy()
    pred[:, 1:5, 1:3] = 3  # spleen painted over half the liver
    conflict, disagreement = gt_evidence(pred, gt, annotated=(1,))
    assert conflict[3] == pytest.approx(32 / (32 + 36))  # 32 of the spleen's 68 voxels are ground-truth liver
    assert conflict[2] == 0.0
    assert disagreement == pytest.approx(1 - 2 * 32 / (64 + 32))
    assert gt_evidence(pred, gt, annotated=()) == ({}, None)


def _case(case_id, label, entropy=0.1, pseudo=(1, 2, 3), conflict=None, disagreement=None):
    return {
        "case_id": case_id,
        "pseudo": list(pseudo),
        "stats": label_stats(label, (1.0, 1.0, 1.0)),
        "pairs": touching_pairs(label),
        "scores": {"organ_entropy": entropy},
        "conflict": conflict or {},
        "disagreement": disagreement,
    }


def test_the_wrong_cases_rank_first_with_their_reasons():
    ref = _reference()
    good = _case("good", _truth())  # as uncertain as the others, and anatomically right
    missing = _truth()
    missing[missing == 3] = 0
    broken = _truth()
    broken[:, 3, :] = 0  # the liver and the kidney cut in two
    wrong_place = _truth()
    wrong_place[:, 6:9, 6:8] = 2  # a kidney piece against the spleen: pieces and a contact never seen
    rows, findings = rank_cases(
        [good, _case("missing", missing), _case("broken", broken), _case("touch", wrong_place)],
        ref,
        DEFAULT_WEIGHTS,
        NAMES,
        tumor_id=14,
    )
    order = [r["case_id"] for r in rows]
    assert order[-1] == "good" and rows[-1]["why"] == "most uncertain" and findings == []
    by_id = {r["case_id"]: r for r in rows}
    assert by_id["missing"]["classes"] == [3] and "spleen missing" in by_id["missing"]["why"]
    assert set(by_id["broken"]["classes"]) == {1, 2} and "2 pieces" in by_id["broken"]["why"]
    assert "kidney touches spleen" in by_id["touch"]["why"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    only_liver, _ = rank_cases([good, _case("broken", broken)], ref, DEFAULT_WEIGHTS, NAMES, 14, classes=[1])
    assert all(set(r["class_scores"]) == {1} for r in only_liver)


def test_a_flag_most_cases_share_is_the_models_gap_not_the_cases():
    ref = _reference()
    no_spleen = _truth()
    no_spleen[no_spleen == 3] = 0
    cases = [_case(f"c{i}", no_spleen) for i in range(4)] + [_case("broken", _broken())]
    rows, findings = rank_cases(cases, ref, DEFAULT_WEIGHTS, NAMES, 14)
    assert rows[0]["case_id"] == "broken"  # the missing spleen (4 of 5 cases) no longer decides
    assert findings == [
        "spleen: missing flagged in 4 of 5 cases (the model's gap: look at the class, not at single cases)"
    ]
    assert all("spleen missing" not in r["why"] for r in rows)


def _broken() -> np.ndarray:
    broken = _truth()
    broken[:, 3, :] = 0
    return broken


def test_weights_decide_what_counts():
    ref = _reference()
    doubtful = _case("doubtful", _truth(), entropy=0.9)
    plain = _case("plain", _truth(), entropy=0.1, disagreement=0.6)
    only_uncertainty = {**dict.fromkeys(SIGNALS, 0.0), "uncertainty": 1.0}
    only_gt = {**dict.fromkeys(SIGNALS, 0.0), "gt_disagreement": 1.0}
    assert rank_cases([doubtful, plain], ref, only_uncertainty, NAMES, 14)[0][0]["case_id"] == "doubtful"
    assert rank_cases([doubtful, plain], ref, only_gt, NAMES, 14)[0][0]["case_id"] == "plain"
    assert class_score(dict.fromkeys(SIGNALS, 1.0), dict.fromkeys(SIGNALS, 0.0)) == 0.0


def test_percentiles_and_the_top_of_a_ranking():
    assert percentiles({"a": 0.2, "b": 0.9, "c": 0.2}) == {"a": 0.0, "b": 1.0, "c": 0.0}
    rows = [{"rank": i} for i in range(1, 21)]
    assert len(top_of(rows, 3, None)) == 3 and len(top_of(rows, None, 0.1)) == 2
    assert len(top_of(rows, None, 0.001)) == 1 and top_of([], None, 0.5) == []
