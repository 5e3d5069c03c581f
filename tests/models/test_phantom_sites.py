import numpy as np
import pytest

from hybridlabel.models.partiality import assign_roles
from hybridlabel.models.phantom import generate_phantom
from hybridlabel.models.phantom_sites import REFERENCE_SITE, assign_sites, site_profile


def test_site_zero_is_the_reference_scanner_and_sites_are_fixed_and_differ():
    assert site_profile(0) == REFERENCE_SITE
    assert site_profile(3) == site_profile(3)  # the world's centres, not the cohort's
    others = [site_profile(k) for k in range(1, 6)]
    assert len({s.noise_hu for s in others}) == 5 and len({s.hu_offset for s in others}) == 5
    with pytest.raises(ValueError, match=">= 0"):
        site_profile(-1)


def test_roles_come_from_their_own_sites_and_the_last_site_is_unseen():
    plan = assign_roles(24)
    sites = assign_sites(plan, 4)
    by_role: dict[str, set[int]] = {}
    for (role, annotated), site in zip(plan, sites):
        by_role.setdefault(role, set()).add(site)
    assert by_role["strong"] == {0}
    labelled = by_role["strong"] | by_role["partial"] | by_role["tumor_only"]
    assert 3 not in labelled  # no labelled case from the last site
    assert 3 in by_role["val"] and 3 in by_role["unlabeled"]
    assert by_role["unlabeled"] == {0, 1, 2, 3}
    pattern_sites: dict[tuple, set[int]] = {}
    for (role, annotated), site in zip(plan, sites):
        if role in ("partial", "tumor_only"):
            pattern_sites.setdefault(annotated, set()).add(site)
    assert all(len(s) == 1 for s in pattern_sites.values())  # each pattern from one site
    assert set().union(*pattern_sites.values()) == {1, 2}
    assert assign_sites(plan, 1) == [0] * 24
    with pytest.raises(ValueError, match="at least 1 site"):
        assign_sites(plan, 0)


def test_a_site_changes_the_grid_noise_and_calibration_not_the_patient():
    rng = lambda: np.random.default_rng([9, 2])  # noqa: E731
    ref = generate_phantom(rng())
    site = site_profile(2)  # chest to pelvis, finer slices, coarser in-plane, +14 HU
    case = generate_phantom(rng(), site=site)
    assert case.spacing == pytest.approx(
        (5.0 * site.slice_factor, 4.0 * site.inplane_factor, 4.0 * site.inplane_factor)
    )
    assert case.image.shape[0] > ref.image.shape[0] * 1.3  # longer coverage in thinner slices
    assert case.image.shape[2] * case.spacing[2] == pytest.approx(80 * 4.0, rel=0.03)  # same field of view in mm
    fat_ref = ref.image[(ref.image > -300) & (ref.image < 0) & (ref.label == 0)]
    fat = case.image[(case.image > -300) & (case.image < 0) & (case.label == 0)]
    assert np.median(fat) - np.median(fat_ref) == pytest.approx(site.hu_offset, abs=4)
    assert set(np.unique(case.organ_label)) - {0} == set(range(1, 14))  # the same anatomy, scanned elsewhere
