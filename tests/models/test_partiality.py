import numpy as np
import pytest

from hybridlabel.models.partiality import assign_roles, partial_label, tumor_as_organ
from hybridlabel.models.phantom import generate_phantom, phantom_partial_label


def test_roles_follow_flare23_patterns():
    plan = assign_roles(24)
    roles = [r for r, _ in plan]
    assert roles.count("val") >= 1 and roles.count("strong") >= 2 and roles.count("unlabeled") >= 1
    assert roles.count("tumor_only") >= roles.count("strong")  # many tumour-only cases
    patterns = {a for r, a in plan if r == "partial"}
    assert {(1, 14), (2, 13, 14), (4, 14)} <= patterns
    with pytest.raises(ValueError, match="at least 5"):
        assign_roles(4)


def test_partial_label_keeps_only_annotated_classes():
    case = generate_phantom(np.random.default_rng(7))
    kidneys = phantom_partial_label(case, (2, 13, 14))
    assert set(np.unique(kidneys)) <= {0, 2, 13, 14}
    assert np.array_equal(kidneys == 2, case.label == 2)
    strong = phantom_partial_label(case, tuple(range(1, 14)))
    assert 14 not in np.unique(strong)  # strong cases carry no tumour annotation
    assert np.array_equal(strong, case.organ_label)


def test_a_tumour_not_annotated_is_drawn_as_its_nearest_organ():
    label = np.zeros((1, 6, 10), np.uint8)
    label[0, 1:5, 1:4] = 1  # liver
    label[0, 1:5, 6:9] = 2  # kidney
    label[0, 2:4, 2:4] = 14  # tumour inside the liver
    label[0, 2, 8] = 14  # and one inside the kidney
    organs = tumor_as_organ(label, 14)
    assert organs[0, 2, 2] == 1 and organs[0, 3, 3] == 1 and organs[0, 2, 8] == 2 and 14 not in organs
    liver_only = partial_label(label, organs, (1,))
    assert np.array_equal(liver_only == 1, organs == 1) and set(np.unique(liver_only)) == {0, 1}
    with_tumour = partial_label(label, organs, (1, 14))
    assert (with_tumour == 14).sum() == 5 and 2 not in with_tumour
