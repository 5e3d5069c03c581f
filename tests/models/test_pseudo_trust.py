import numpy as np
import pytest

from hybridlabel.models.pseudo_trust import class_dice, class_overlap, loss_annotated, untrusted_classes


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


def test_untrusted_below_threshold_and_none_turns_it_off():
    dice = {1: 0.9, 5: 0.0, 10: 0.49}
    assert untrusted_classes(dice, 0.5) == [5, 10]
    assert untrusted_classes(dice, None) == []


def test_loss_annotations_keep_gt_and_trusted_pseudo():
    sources = {"0": "pseudo", "1": "gt", "5": "pseudo", "10": "pseudo", "14": "ignore", "2": "none"}
    assert loss_annotated(sources, [5]) == [1, 10]
    assert loss_annotated(sources, []) == [1, 5, 10]
    assert loss_annotated({1: "gt", 5: "pseudo"}, [1, 5]) == [1]  # ground truth is never distrusted
