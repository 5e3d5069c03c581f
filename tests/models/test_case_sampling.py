import pytest

from hybridlabel.models.case_sampling import case_probabilities, class_factors, patch_class_probabilities


def test_cases_holding_a_rare_class_are_drawn_as_if_it_were_common():
    annotated = {"s1": [1, 2, 7], "s2": [1, 2, 7], **{f"p{i}": [1, 2] for i in range(8)}}
    cases = sorted(annotated)
    p = dict(zip(cases, case_probabilities(cases, annotated, 1.0)))
    # class 7 in 2 of 10 cases: factor 5 for s1 and s2, 1 for the others
    assert p["s1"] == p["s2"] == pytest.approx(5 / 18) and p["p0"] == pytest.approx(1 / 18)
    assert sum(p.values()) == pytest.approx(1)
    assert p["s1"] + p["s2"] == pytest.approx(10 / 18)  # class 7 in over half of the draws


def test_uniform_when_every_class_is_common_or_nothing_is_recorded():
    annotated = {"a": [0, 1, 2], "b": [1, 2]}  # background does not count
    assert case_probabilities(["a", "b"], annotated, 1.0) == [0.5, 0.5]
    assert case_probabilities(["a", "b"], annotated, None) is None
    assert case_probabilities(["a", "b"], {}, 1.0) is None
    # a case without annotations (an unlabeled case sitting out of every class) keeps factor 1
    assert case_probabilities(["a", "x"], {"a": [1]}, 0.5) == [0.5, 0.5]


def test_a_foreground_patch_centres_on_a_rare_annotated_class_by_its_factor():
    annotated = {"s1": [1, 2, 7], "s2": [1, 2, 7], **{f"p{i}": [1, 2] for i in range(8)}}
    factor = class_factors(sorted(annotated), annotated, 1.0)
    assert factor == {1: 1.0, 2: 1.0, 7: 5.0}
    # a strong case: the adrenal (7) weighs 5, the others 1
    assert patch_class_probabilities([1, 2, 7], annotated["s1"], factor) == pytest.approx([1 / 7, 1 / 7, 5 / 7])
    # present in the label but not annotated for this case's loss (a distrusted pseudo label): 1
    assert patch_class_probabilities([1, 2, 7], annotated["p0"], factor) == pytest.approx([1 / 3] * 3)
    # annotations not recorded: uniform, as nnU-Net
    assert patch_class_probabilities([1, 7], None, factor) == [0.5, 0.5]
