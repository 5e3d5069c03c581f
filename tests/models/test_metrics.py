"""FLARE23 metrics against DeepMind's surface-distance package (the algorithm FLARE's
evaluation uses), on the real CT label maps and on anisotropic synthetic cases."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hybridlabel.models.labels import FLARE23_LABELS, FLARE23_NSD_TOLERANCE_MM
from hybridlabel.models.metrics import MetricRules, score_case
from hybridlabel.models.surface import surface_dice, surface_distances, surfel_area_table
from tests.realct import REAL_CT, read_flare

RULES = MetricRules(
    {c: n for c, n in FLARE23_LABELS.items() if c}, dict(FLARE23_NSD_TOLERANCE_MM), frozenset({5, 6, 10})
)


@pytest.fixture()
def deepmind(monkeypatch):
    from surface_distance import lookup_tables, metrics

    monkeypatch.setattr(np, "Inf", np.inf, raising=False)  # the 0.1 release predates numpy 2
    return metrics, lookup_tables


def _reference_case(pred, gt, spacing, dm) -> dict[int, tuple[float, float]]:
    """FLARE23's evaluation loop, written out plainly on full volumes with the reference."""
    out = {}
    for cls in RULES.classes:
        g, p = gt == cls, pred == cls
        if not g.any() and not p.any():
            out[cls] = (1.0, 1.0)
            continue
        if not g.any() or not p.any():
            out[cls] = (0.0, 0.0)
            continue
        if cls in RULES.labeled_slices_only:
            zs = np.flatnonzero(g.any(axis=(1, 2)))
            g, p = g[zs[0] : zs[-1] + 1], p[zs[0] : zs[-1] + 1]
        dsc = dm.compute_dice_coefficient(g, p)
        sd = dm.compute_surface_distances(g, p, spacing)
        nsd = dm.compute_surface_dice_at_tolerance(sd, RULES.tolerances[cls]) if p.any() else 0.0
        out[cls] = (dsc, nsd)
    return out


def test_area_table_equals_deepminds_for_any_spacing(deepmind):
    _, tables = deepmind
    for spacing in [(1.0, 1.0, 1.0), (3.0, 0.8, 0.8), (0.7, 2.5, 1.3)]:
        ours = surfel_area_table(spacing)
        ref = tables.create_table_neighbour_code_to_surface_area(spacing)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("spacing", [None, (5.0, 0.7, 0.7), (0.8, 2.5, 1.2)])
def test_real_label_maps_agree_with_deepmind(deepmind, spacing):
    """The TotalSegmentator full and fast maps of one scan against each other: every
    class's NSD at every FLARE tolerance within 1e-3 of the reference."""
    dm, _ = deepmind
    a, image = read_flare("ct_abdomen_3mm_totalseg.nii.gz")
    b, _ = read_flare("ct_abdomen_3mm_totalseg_fast.nii.gz")
    spacing = spacing or image.GetSpacing()[::-1]
    compared = 0
    for cls in range(1, 14):
        g, p = a == cls, b == cls
        if not (g.any() and p.any()):
            continue
        ref_sd = dm.compute_surface_distances(g, p, spacing)
        ours = surface_distances(g, p, spacing)
        for tol in (1, 2, 3, 5, 7):
            ref = dm.compute_surface_dice_at_tolerance(ref_sd, tol)
            assert abs(surface_dice(ours, tol) - ref) < 1e-3, (cls, tol)
        compared += 1
    assert compared >= 8  # the scan holds most organs: the test is not vacuous


def test_real_dicom_label_at_its_anisotropic_spacing(deepmind):
    """0.98 x 0.98 x 2 mm: the series' map against itself shifted by one slice."""
    dm, _ = deepmind
    image = sitk.ReadImage(str(REAL_CT / "dicom_series_totalseg.nii.gz"))
    label = sitk.GetArrayFromImage(image)
    spacing = image.GetSpacing()[::-1]
    shifted = np.roll(label, 1, axis=0)
    classes = [int(c) for c in np.unique(label) if c][:6]
    assert classes
    for cls in classes:
        g, p = label == cls, shifted == cls
        ref = dm.compute_surface_dice_at_tolerance(dm.compute_surface_distances(g, p, spacing), 2)
        assert abs(surface_dice(surface_distances(g, p, spacing), 2) - ref) < 1e-3


def test_synthetic_anisotropic_cases_agree_with_deepmind(deepmind):
    dm, _ = deepmind
    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[:24, :40, :36]
    for _ in range(6):
        spacing = tuple(rng.uniform(0.5, 4.0, 3))
        c1, c2 = rng.uniform(8, 16, 3), rng.uniform(8, 16, 3)
        r1, r2 = rng.uniform(4, 9), rng.uniform(4, 9)
        g = ((z - c1[0]) ** 2 + (y - c1[1]) ** 2 + (x - c1[2]) ** 2) < r1**2
        p = ((z - c2[0]) ** 2 + (y - c2[1]) ** 2 + (x - c2[2]) ** 2) < r2**2
        p ^= rng.random(p.shape) < 0.02  # ragged, non-convex surfaces
        for tol in (1, 2, 5):
            ref = dm.compute_surface_dice_at_tolerance(dm.compute_surface_distances(g, p, spacing), tol)
            assert abs(surface_dice(surface_distances(g, p, spacing), tol) - ref) < 1e-3


def test_score_case_follows_the_flare_rules_on_the_real_scan(deepmind):
    dm, _ = deepmind
    gt, image = read_flare("ct_abdomen_3mm_totalseg.nii.gz")
    pred, _ = read_flare("ct_abdomen_3mm_totalseg_fast.nii.gz")
    pred = pred.copy()
    pred[pred == 9] = 0  # a missed gallbladder: one empty -> 0
    pred[:2][pred[:2] == 0] = 5  # aorta painted on slices the GT may not label
    gt = gt.copy()
    gt[gt == 8] = 0
    pred[pred == 8] = 0  # both empty -> 1
    spacing = image.GetSpacing()[::-1]
    ours = {r["class_id"]: (r["dsc"], r["nsd"]) for r in score_case(pred, gt, spacing, RULES)}
    ref = _reference_case(pred, gt, spacing, dm)
    assert set(ours) == set(range(1, 15))
    for cls in ours:
        assert ours[cls] == pytest.approx(ref[cls], abs=1e-3), cls
    assert ours[8] == (1.0, 1.0) and ours[14] == (1.0, 1.0)
    if (gt == 9).any():
        assert ours[9] == (0.0, 0.0)


def test_labeled_slices_only_ignores_prediction_outside_the_gt_slab():
    gt = np.zeros((20, 16, 16), np.uint8)
    gt[5:10, 4:12, 4:12] = 5
    pred = gt.copy()
    pred[12:18, 4:12, 4:12] = 5  # below the labelled slab: ignored for the aorta
    rules_aorta = score_case(pred, gt, (2.0, 1.0, 1.0), RULES, classes=[5])[0]
    assert rules_aorta["dsc"] == 1.0 and rules_aorta["nsd"] == 1.0
    pred[pred == 5] = 1
    gt[gt == 5] = 1  # the liver is scored on every slice
    liver = score_case(pred, gt, (2.0, 1.0, 1.0), RULES, classes=[1])[0]
    assert liver["dsc"] == pytest.approx(2 * 320 / (320 + 704))
    assert liver["nsd"] < 1.0


def test_one_empty_is_zero_and_grids_must_match():
    gt = np.zeros((8, 8, 8), np.uint8)
    pred = gt.copy()
    pred[2:4, 2:4, 2:4] = 14
    rec = score_case(pred, gt, (1, 1, 1), RULES, classes=[14])[0]
    assert (rec["dsc"], rec["nsd"]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="not on one grid"):
        score_case(pred[:4], gt, (1, 1, 1), RULES)


def test_an_empty_prediction_cannot_flatter_the_present_class_mean():
    """Liver is the only class in the ground truth; the prediction is all background.
    FLARE's organ mean counts the 12 absent organs as 1 (12/13); the mean over present
    classes is 0."""
    import pandas as pd

    from hybridlabel.models.metric_summary import ORGAN_MEAN, ORGAN_MEAN_PRESENT, rounds_by_class, summary_table

    gt = np.zeros((8, 8, 8), np.uint8)
    gt[2:6, 2:6, 2:6] = 1
    records = score_case(np.zeros_like(gt), gt, (1, 1, 1), RULES, classes=list(range(1, 14)))
    assert [r["gt_present"] for r in records] == [True] + [False] * 12
    frame = pd.DataFrame(records).assign(case_id="a", round=0, reference="val_gt")
    table = summary_table(frame, range(1, 14), 14).set_index("class")
    assert table.loc[ORGAN_MEAN, "dsc_mean"] == pytest.approx(12 / 13)
    assert table.loc[ORGAN_MEAN_PRESENT, "dsc_mean"] == 0.0
    assert rounds_by_class(frame, range(1, 14), 14).loc[0, ORGAN_MEAN_PRESENT] == 0.0
