"""Every merge rule on tiny volumes, the invariants by hypothesis, and a real scan."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hybridlabel.models.config import LabelMapConfig, MergeConfig
from hybridlabel.models.merge import merge_case
from tests.realct import read_flare

LABELS = LabelMapConfig()
NOCLEAN = MergeConfig(clean_gt=False, largest_component_classes=[])
ISO = (1.0, 1.0, 1.0)
LIVER, RKID, SPLEEN, PANCREAS, TUMOR = 1, 2, 3, 4, 14


def vol(shape=(16, 16, 16)):
    return np.zeros(shape, np.uint8)


def test_gt_voxel_is_never_overwritten_by_a_pseudo_label():
    g, p = vol(), vol()
    g[2:8, 2:8, 2:8] = LIVER
    p[2:8, 2:8, 2:8] = SPLEEN  # teacher is wrong about an annotated region
    r = merge_case(g, [LIVER], p, ISO, NOCLEAN, LABELS)
    assert (r.hybrid[2:8, 2:8, 2:8] == LIVER).all()
    assert r.sources[LIVER] == "gt" and r.sources[SPLEEN] == "pseudo"


def test_unannotated_class_fills_background_only_and_never_erases_gt():
    g, p = vol(), vol()
    g[2:6, 2:6, 2:6] = LIVER
    p[4:10, 4:10, 4:10] = SPLEEN  # overlaps the GT liver corner
    r = merge_case(g, [LIVER], p, ISO, NOCLEAN, LABELS)
    assert (r.hybrid[2:6, 2:6, 2:6] == LIVER).all()
    assert (r.hybrid[6:10, 6:10, 6:10] == SPLEEN).all()
    assert r.counts[str(SPLEEN)]["pseudo"] == 6**3 - 2**3


def test_annotated_class_discards_the_pseudo_label():
    g, p = vol(), vol()
    g[2:6, 2:6, 2:6] = LIVER
    p[2:10, 2:10, 2:10] = LIVER  # teacher's liver is bigger: GT says the rest is not liver
    r = merge_case(g, [LIVER], p, ISO, NOCLEAN, LABELS)
    assert np.array_equal(r.hybrid == LIVER, g == LIVER)


def test_tumour_touching_two_organs_goes_to_the_larger_overlap():
    g = vol((20, 20, 20))
    g[2:18, 2:10, 2:18] = LIVER
    g[2:18, 10:18, 2:18] = RKID
    g[8:12, 6:11, 8:12] = TUMOR  # 4 rows in liver side, 1 row in kidney side
    r = merge_case(g, [LIVER, RKID, TUMOR], vol((20, 20, 20)), ISO, NOCLEAN, LABELS)
    (rec,) = r.tumors
    assert rec["organ"] == LIVER and rec["source"] == "gt" and rec["voxels"] == 4 * 5 * 4
    assert rec["volume_mm3"] == 80.0


def test_tie_in_dilated_overlap_goes_to_the_larger_core_overlap():
    labels = np.zeros((9, 9, 21), np.uint8)
    labels[:, :, :10] = LIVER
    labels[:, :, 11:] = SPLEEN
    g = labels.copy()
    g[3:6, 3:6, 9:12] = TUMOR  # symmetric around the gap at x=10
    # symmetric: dilated overlap ties, core overlaps tie -> lower id
    r = merge_case(
        g, [LIVER, SPLEEN, TUMOR], vol(g.shape), ISO, NOCLEAN.model_copy(update={"attribution_mm": 2}), LABELS
    )
    assert r.tumors[0]["organ"] == LIVER
    # shift the tumour one voxel to the spleen side: core overlap now favours the spleen
    g = labels.copy()
    g[3:6, 3:6, 10:13] = TUMOR
    r = merge_case(
        g, [LIVER, SPLEEN, TUMOR], vol(g.shape), ISO, NOCLEAN.model_copy(update={"attribution_mm": 1}), LABELS
    )
    assert r.tumors[0]["organ"] == SPLEEN


def test_anisotropic_spacing_changes_the_attribution_radius():
    g = vol((24, 16, 16))
    g[0:8, :, :] = LIVER
    g[11:14, 6:9, 6:9] = TUMOR  # 3 slices above the liver
    near = merge_case(g, [LIVER, TUMOR], vol(g.shape), (1.0, 1.0, 1.0), NOCLEAN, LABELS)
    far = merge_case(g, [LIVER, TUMOR], vol(g.shape), (3.0, 1.0, 1.0), NOCLEAN, LABELS)
    assert near.tumors[0]["organ"] == LIVER  # 3 mm < 5 mm
    assert far.tumors[0]["organ"] == "extra_organ"  # 9 mm > 5 mm


def test_pseudo_tumour_outside_every_organ_is_dropped():
    p = vol((20, 20, 20))
    p[2:10, 2:10, 2:10] = LIVER
    p[4:6, 4:6, 4:6] = TUMOR  # inside the liver
    p[16:19, 16:19, 16:19] = TUMOR  # far from any organ
    r = merge_case(None, [], p, ISO, NOCLEAN, LABELS)
    assert (r.hybrid[4:6, 4:6, 4:6] == TUMOR).all()
    assert (r.hybrid[16:19, 16:19, 16:19] == 0).all()
    kept = {rec["organ"]: rec["kept"] for rec in r.tumors}
    assert kept == {LIVER: True, "extra_organ": False}


@pytest.mark.parametrize("fallback, expected", [("organ", LIVER), ("background", 0), ("ignore", 15)])
def test_tumour_fallbacks_when_the_case_is_not_tumour_selected(fallback, expected):
    p = vol()
    p[2:10, 2:10, 2:10] = LIVER
    p[4:6, 4:6, 4:6] = TUMOR
    cfg = NOCLEAN.model_copy(update={"tumor_fallback": fallback})
    r = merge_case(None, [], p, ISO, cfg, LABELS, tumor_selected=False)
    assert (r.hybrid[4:6, 4:6, 4:6] == expected).all()
    assert TUMOR not in np.unique(r.hybrid)
    assert r.sources[TUMOR] == ("ignore" if fallback == "ignore" else "none")
    if fallback == "ignore":
        assert r.counts["ignore"]["pseudo"] == 8


@pytest.mark.parametrize("policy", ["pseudo", "gt"])
def test_tumour_bearing_organ_policy(policy):
    g, p = vol(), vol()
    g[2:10, 2:10, 2:10] = LIVER
    g[4:6, 4:6, 4:6] = TUMOR
    p[2:12, 2:12, 2:12] = LIVER  # the teacher's liver is larger
    cfg = NOCLEAN.model_copy(update={"tumor_bearing_organ": policy})
    r = merge_case(g, [LIVER, TUMOR], p, ISO, cfg, LABELS)
    assert (r.hybrid[4:6, 4:6, 4:6] == TUMOR).all()  # G tumour painted last
    liver = r.hybrid == LIVER
    assert liver.sum() == (10**3 - 8 if policy == "pseudo" else 8**3 - 8)
    assert r.sources[LIVER] == policy


def test_low_confidence_pseudo_voxels_become_ignore_never_gt():
    g, p = vol(), vol()
    g[2:6, 2:6, 2:6] = LIVER
    p[8:12, 8:12, 8:12] = SPLEEN
    conf = np.full(g.shape, 0.3, np.float32)
    cfg = NOCLEAN.model_copy(update={"min_voxel_confidence": 0.5})
    r = merge_case(g, [LIVER], p, ISO, cfg, LABELS, max_prob=conf)
    assert (r.hybrid[2:6, 2:6, 2:6] == LIVER).all()
    assert (r.hybrid[8:12, 8:12, 8:12] == LABELS.ignore_id).all()
    assert r.hybrid[0, 0, 0] == LABELS.ignore_id  # pseudo background too


def test_cleaning_drops_small_and_far_gt_components_and_keeps_largest_pseudo_organ():
    g, p = vol((32, 32, 32)), vol((32, 32, 32))
    g[2:12, 2:12, 2:12] = LIVER
    g[20:22, 20:22, 20:22] = LIVER  # 8 mm3 < 150 mm3: dropped
    g[4:10, 4:10, 4:10] = TUMOR  # 216 mm3 inside the liver: kept
    g[28:31, 28:31, 0:3] = TUMOR  # 27 mm3 -> small; also far
    p[14:30, 2:10, 2:10] = SPLEEN
    p[20:22, 20:24, 20:24] = SPLEEN  # a second, smaller spleen component: removed
    r = merge_case(g, [LIVER, TUMOR], p, ISO, MergeConfig(), LABELS)
    assert (r.hybrid[20:22, 20:22, 20:22] == 0).all()
    assert (r.hybrid[28:31, 28:31, 0:3] == 0).all()
    assert (r.hybrid[4:10, 4:10, 4:10] == TUMOR).all()
    assert (r.hybrid == SPLEEN).sum() == 16 * 8 * 8 - 0


def test_far_tumour_is_dropped_even_when_large():
    g = vol((40, 40, 40))
    g[0:8, 0:8, 0:8] = LIVER
    g[30:38, 30:38, 30:38] = TUMOR  # 512 mm3, ~38 mm away
    r = merge_case(g, [LIVER, TUMOR], vol(g.shape), ISO, MergeConfig(), LABELS)
    assert TUMOR not in np.unique(r.hybrid)
    near = merge_case(g, [LIVER, TUMOR], vol(g.shape), ISO, MergeConfig(max_tumor_organ_gap_mm=50), LABELS)
    assert (near.hybrid == TUMOR).sum() == 512


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        merge_case(vol((4, 4, 4)), [1], vol((4, 4, 5)), ISO, NOCLEAN, LABELS)


# ---- invariants ---------------------------------------------------------------------
small_labels = arrays(np.uint8, (6, 7, 8), elements=st.sampled_from([0, 0, 0, 1, 2, 3, 14]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    g=small_labels,
    p=small_labels,
    ann=st.sets(st.sampled_from([1, 2, 3, 14])),
    policy=st.sampled_from(["pseudo", "gt"]),
    selected=st.booleans(),
    fallback=st.sampled_from(["organ", "background", "ignore"]),
    spacing=st.tuples(*[st.sampled_from([0.7, 1.0, 2.5, 5.0])] * 3),
)
def test_merge_invariants(g, p, ann, policy, selected, fallback, spacing):
    g = np.where(np.isin(g, list(ann)), g, 0).astype(np.uint8)  # G holds only annotated classes
    cfg = MergeConfig(clean_gt=False, tumor_bearing_organ=policy, tumor_fallback=fallback)
    r = merge_case(g, ann, p, spacing, cfg, LABELS, tumor_selected=selected)
    fg = g > 0
    # G foreground is never relabelled to another class (pseudo-owned organs may yield to P's)
    assert np.all((r.hybrid[fg] == g[fg]) | ((r.hybrid[fg] == 0) & (policy == "pseudo")))
    if policy == "gt":
        assert np.array_equal(r.hybrid[fg], g[fg])
    if 14 in ann:
        assert np.all(r.hybrid[g == 14] == 14)
    # an annotated class appears only where G has it, unless it is a pseudo-owned organ
    for c in ann - {14}:
        if r.sources[c] == "gt":
            assert np.all(g[r.hybrid == c] == c)
    assert set(np.unique(r.hybrid)) <= set(range(16))
    assert sum(sum(v.values()) for v in r.counts.values()) == g.size


# ---- real scan --------------------------------------------------------------------------
def test_real_scan_merge_class_by_class():
    full, image = read_flare("ct_abdomen_3mm_totalseg.nii.gz")
    pred, _ = read_flare("ct_abdomen_3mm_totalseg_fast.nii.gz")
    spacing = tuple(reversed(image.GetSpacing()))
    # the "ground truth": kidneys + liver from the full model, with a synthetic liver tumour
    gt = np.where(np.isin(full, [LIVER, RKID, 13]), full, 0).astype(np.uint8)
    liver = np.argwhere(gt == LIVER)
    centre = liver[len(liver) // 2]
    zz, yy, xx = np.ogrid[: gt.shape[0], : gt.shape[1], : gt.shape[2]]
    ball = ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) <= 9
    ball &= gt == LIVER
    gt[ball] = TUMOR
    r = merge_case(gt, [LIVER, RKID, 13, TUMOR], pred, spacing, MergeConfig(), LABELS)
    h = r.hybrid
    (rec,) = r.tumors
    assert rec["organ"] == LIVER and rec["voxels"] == int(ball.sum()) and rec["volume_mm3"] == ball.sum() * 27.0
    assert np.array_equal(h == TUMOR, ball)
    for kidney in (RKID, 13):  # annotated, no tumour: exactly G
        assert np.array_equal(h == kidney, gt == kidney) and r.sources[kidney] == "gt"
    # tumour-bearing liver: the teacher's liver (never over the G kidneys)
    assert r.sources[LIVER] == "pseudo"
    assert np.all(pred[h == LIVER] == LIVER)
    for organ in (SPLEEN, PANCREAS, 5, 6, 11):  # unannotated: pseudo fill of G background only
        mask = h == organ
        assert mask.any() and np.all(pred[mask] == organ) and np.all(gt[mask] == 0)
    assert r.sources[SPLEEN] == "pseudo"
    assert sum(sum(v.values()) for v in r.counts.values()) == h.size


def test_read_only_inputs_are_accepted_and_not_modified():
    g, p = vol(), vol()
    g[2:8, 2:8, 2:8] = LIVER
    p[4:12, 4:12, 4:12] = SPLEEN
    p[5, 5, 5] = TUMOR
    g.flags.writeable = False
    p.flags.writeable = False
    before = (g.copy(), p.copy())
    r = merge_case(g, [LIVER], p, ISO, MergeConfig(), LABELS)
    assert np.array_equal(g, before[0]) and np.array_equal(p, before[1])
    assert (r.hybrid == LIVER).sum() == 6**3
