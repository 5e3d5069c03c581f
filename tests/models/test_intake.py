import numpy as np
import pytest

from hybridlabel.models.intake import (
    check_case_id,
    check_intensities,
    check_label_values,
    infer_role,
    parse_annotated,
    resolve_annotated,
)

ORGANS = tuple(range(1, 14))


@pytest.mark.parametrize("case_id", ["a/b", "..", "x..y", "a\\b", ""])
def test_bad_case_ids(case_id):
    assert check_case_id(case_id)


def test_good_case_id():
    assert check_case_id("FLARE23_0001") is None


def test_intensity_checks():
    good = np.arange(64, dtype=np.int16).reshape(4, 4, 4)
    assert check_intensities(good) is None
    assert "3D" in check_intensities(np.zeros((4, 4)) + np.arange(4))
    assert "constant" in check_intensities(np.full((4, 4, 4), 7))
    assert "image is 1x1x2 voxels, too small" in check_intensities(np.arange(2.0).reshape(2, 1, 1))
    nan = good.astype(float)
    nan[0, 0, 0] = np.nan
    assert "NaN" in check_intensities(nan)
    inf = good.astype(float)
    inf[1, 1, 1] = np.inf
    assert "infinite" in check_intensities(inf)


def test_ct_values_outside_the_16_bit_range():
    scan = np.random.default_rng(0).normal(0, 300, (8, 8, 8))
    scan[0, 0, 0] = -3024  # a scanner's padding is a CT value
    assert check_intensities(scan) is None
    edges = scan.copy()
    edges.flat[:10] = -33000  # a handful (interpolated padding) is tolerated
    assert check_intensities(edges) is None
    edges.flat[:11] = -33000
    assert "11 voxel(s) outside -32768..32767 HU" in check_intensities(edges)
    absurd = scan.copy()
    absurd.flat[:2] = 1e30  # a few absurd values would still ruin the fingerprint
    assert "2 voxel(s) outside" in check_intensities(absurd)


def test_label_values_outside_the_map():
    assert check_label_values([0, 1, 14], range(15)) is None
    assert "17" in check_label_values([0, 17], range(15))


def test_roles():
    assert infer_role(ORGANS, True, None, ORGANS, 14) == ("strong", None)
    assert infer_role(ORGANS + (14,), True, None, ORGANS, 14) == ("strong", None)
    assert infer_role((14,), True, None, ORGANS, 14) == ("tumor_only", None)
    assert infer_role((1, 14), True, None, ORGANS, 14) == ("partial", None)
    assert infer_role((), False, None, ORGANS, 14) == ("unlabeled", None)
    assert infer_role(ORGANS + (14,), True, "val", ORGANS, 14) == ("val", None)
    role, why = infer_role((1,), True, "val", ORGANS, 14)
    assert role == "quarantined" and "val" in why
    assert infer_role((1,), True, "bogus", ORGANS, 14)[0] == "quarantined"


def test_annotated_parsing_and_resolution():
    assert parse_annotated("1 14") == (1, 14)
    assert parse_annotated("") is None
    with pytest.raises(ValueError, match="integers"):
        parse_annotated("liver")
    assert resolve_annotated(None, {0: 5, 1: 3, 14: 2}, range(15)) == ((1, 14), None)
    # declared but absent is allowed (a kidney case without tumour)
    assert resolve_annotated((2, 13, 14), {0: 5, 2: 1, 13: 1}, range(15)) == ((2, 13, 14), None)
    assert "does not declare" in resolve_annotated((1,), {1: 1, 2: 1}, range(15))[1]
    assert "not in the label map" in resolve_annotated((99,), {}, range(15))[1]
