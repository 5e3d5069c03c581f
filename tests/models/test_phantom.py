import numpy as np
import pytest

from models.phantom import assign_roles, generate_phantom, partial_label


def test_phantom_has_all_organs_and_plausible_intensities():
    case = generate_phantom(np.random.default_rng(1))
    assert case.image.shape == case.label.shape == (40, 64, 80)
    present = set(np.unique(case.label)) - {0}
    assert set(range(1, 14)) <= present | {14}
    assert set(range(1, 14)) <= set(np.unique(case.organ_label)) - {0}
    liver = case.image[case.label == 1].mean()
    kidney = case.image[case.label == 2].mean()
    assert 70 < liver < 120 and kidney > liver + 50  # contrast-enhanced kidney brighter
    assert case.image[0, 0, 0] < -900  # air outside the body


def test_tumours_sit_inside_their_host_organ():
    for seed in range(6):
        case = generate_phantom(np.random.default_rng(seed))
        tumour = case.label == 14
        assert len(case.tumors) == 0 or tumour.any()
        hosts = set(np.unique(case.organ_label[tumour]))
        assert hosts <= {t["host"] for t in case.tumors}
        assert 0 not in hosts


def test_phantom_is_deterministic_and_varies_between_cases():
    a = generate_phantom(np.random.default_rng([5, 1]))
    b = generate_phantom(np.random.default_rng([5, 1]))
    c = generate_phantom(np.random.default_rng([5, 2]))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert not np.array_equal(a.label, c.label)


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
    kidneys = partial_label(case, (2, 13, 14))
    assert set(np.unique(kidneys)) <= {0, 2, 13, 14}
    assert np.array_equal(kidneys == 2, case.label == 2)
    strong = partial_label(case, tuple(range(1, 14)))
    assert 14 not in np.unique(strong)  # strong cases carry no tumour annotation
    assert np.array_equal(strong, case.organ_label)
