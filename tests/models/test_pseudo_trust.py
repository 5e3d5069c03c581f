import numpy as np
import pandas as pd
import pytest

from hybridlabel.models.pseudo_trust import (
    class_dice,
    class_overlap,
    loss_annotated,
    trust_evidence,
    untrusted_classes,
    val_dice,
)


def _volumes():
    gt = np.zeros((4, 6, 6), np.uint8)
    pred = np.zeros_like(gt)
    gt[1:3, 1:4, 1:4] = 1  # 18 voxels
    pred[1:3, 1:4, 2:5] = 1  # 18 voxels, 12 shared
    gt[0, 0, 0] = 5  # annotated, never predicted
    pred[3, 5, 5] = 7  # predicted, not annotated: not scored
    return gt, pred


def test_overlap_counts_only_annotated_classes():
    gt, pred = _volumes()
    assert class_overlap(gt, pred, [1, 5]) == {1: [12, 18, 18], 5: [0, 0, 1]}
    assert class_overlap(np.zeros_like(gt), np.zeros_like(pred), [2]) == {2: [0, 0, 0]}
    with pytest.raises(ValueError, match="shape"):
        class_overlap(gt, pred[:2], [1])


def test_dice_pools_voxels_over_cases_and_skips_empty_classes():
    cases = [{1: [12, 18, 18], 5: [0, 0, 1]}, {"1": [6, 6, 6], "9": [0, 0, 0]}, {}]
    assert class_dice(cases) == {1: round(2 * 18 / 48, 4), 5: 0.0}


def test_untrusted_below_threshold_or_without_evidence_and_none_turns_it_off():
    dice = {1: 0.9, 5: 0.0, 10: 0.49}
    assert untrusted_classes(dice, 0.5) == [5, 10]
    assert untrusted_classes(dice, 0.5, classes=[0, 1, 2]) == [2, 5, 10]  # 2: nothing vouches for it
    assert untrusted_classes(dice, None, classes=[2]) == []


def test_evidence_ignores_cases_the_parent_trained_on_and_falls_back_to_val():
    merged = [
        {"case_id": "seen", "overlap": {"1": [10, 10, 10], "2": [10, 10, 10]}},  # flattering: trained on
        {"case_id": "new", "overlap": {"1": [3, 10, 10]}},
    ]
    evidence = trust_evidence(merged, ["seen"], {1: 0.8, 2: 0.6, 3: 0.1})
    assert evidence == {1: (0.3, "unseen cases"), 2: (0.6, "val"), 3: (0.1, "val")}
    assert trust_evidence(merged, [], {}) == {1: (round(26 / 40, 4), "unseen cases"), 2: (1.0, "unseen cases")}


def test_val_dice_averages_val_cases_where_the_class_is_present():
    metrics = pd.DataFrame(
        {
            "class_id": [1, 1, 1, 2, 1],
            "dsc": [0.8, 0.6, 1.0, 0.5, 0.0],
            "gt_present": [True, True, False, True, True],
            "reference": ["val_gt", "val_gt", "val_gt", "val_gt", "train_gt"],
        }
    )
    assert val_dice(metrics) == {1: 0.7, 2: 0.5}
    assert val_dice(None) == {} and val_dice(metrics.iloc[:0]) == {}


def test_loss_annotations_keep_gt_and_trusted_pseudo():
    sources = {"0": "pseudo", "1": "gt", "5": "pseudo", "10": "pseudo", "14": "ignore", "2": "none"}
    assert loss_annotated(sources, [5]) == [1, 10]
    assert loss_annotated(sources, []) == [1, 5, 10]
    assert loss_annotated({1: "gt", 5: "pseudo"}, [1, 5]) == [1]  # ground truth is never distrusted
