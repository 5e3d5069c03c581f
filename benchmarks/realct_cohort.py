"""A real-CT cohort for the learning benchmark and the ablation (a benchmark utility, not
product code): N copies of the shared real abdominal CT (`../shared/data/real-ct/`, its
TotalSegmentator labels mapped to the FLARE23 ids), each under its own random affine
(rotation about the body axis, per-axis scale, shift) and smooth elastic deformation
(B-spline, random control-point displacements) with a contrast/HU shift and noise, then
made FLARE23-like by `hybridlabel simulate-partial` (roles, partial labels, complete
ground truth kept aside). Copies of one patient are not N patients: the cohort measures
whether a configuration learns real anatomy and texture, not generalisation across
patients.

`--cross-patient` builds FLARE's premise from the two patients there are: the strong cases
are copies of the abdomen CT (patient A), every partial, unlabeled and val case a copy of
the other scan (patient B: the DICOM series, another patient's upper abdomen, 40 mm thick,
7 of the 13 organs; resampled to 3 x 3 x 2 mm and cropped to the body, its labels
resampled onto it), each copy with 0-2 inserted low-contrast tumours (liver, kidneys,
spleen, pancreas). The val cases come from a patient no labelled-organ case came from.
The manifest's `site` column says which patient (0 = A, 1 = B).

Usage: python benchmarks/realct_cohort.py OUT [--cases 40] [--seed 0] [--iterations 1500]
                                             [--cross-patient]
Writes OUT/cohort (imagesTr, labelsTr, groundTruth, manifest.csv; simulate-partial's
output, from OUT/full with every copy fully labeled, unless --cross-patient),
OUT/ablation.yaml (the phantom ablation's config, `--iterations` per model) and OUT/cpu.yaml
(`init --preset cpu`'s config), both on this cohort:
`hybridlabel ablate OUT/cpu.yaml --workdir W --arms teacher_long,rounds --seeds 1,2,3`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybridlabel.cli.demo import ablation_config  # noqa: E402
from hybridlabel.models.config import LabelMapConfig  # noqa: E402
from hybridlabel.models.config_yaml import render_config_yaml  # noqa: E402
from hybridlabel.models.partiality import assign_roles, partial_label, tumor_as_organ  # noqa: E402
from hybridlabel.models.presets import cpu_preset  # noqa: E402
from hybridlabel.tasks.files.atomic import atomic_write_text  # noqa: E402
from hybridlabel.tasks.intake.cohort_manifest import manifest_row, write_manifest  # noqa: E402
from hybridlabel.tasks.intake.simulate_partial import simulate_partial  # noqa: E402

SOURCE = ROOT.parent / "shared" / "data" / "real-ct"
TUMOUR_HOSTS = (1, 2, 13, 3, 4)  # liver, kidneys, spleen, pancreas
TOTALSEG_TO_FLARE = {5: 1, 2: 2, 1: 3, 7: 4, 52: 5, 63: 6, 8: 7, 9: 8, 4: 9, 15: 10, 6: 11, 19: 12, 3: 13}


def flare_labels(totalseg: sitk.Image) -> sitk.Image:
    lut = np.zeros(256, dtype=np.uint8)
    for ts, flare in TOTALSEG_TO_FLARE.items():
        lut[ts] = flare
    out = sitk.GetImageFromArray(lut[sitk.GetArrayFromImage(totalseg).astype(np.int64).clip(0, 255)])
    out.CopyInformation(totalseg)
    return out


def random_transform(image: sitk.Image, rng: np.random.Generator) -> sitk.Transform:
    """Affine about the volume's centre, then a B-spline deformation (~4 mm displacements)."""
    size, spacing, origin = np.array(image.GetSize()), np.array(image.GetSpacing()), np.array(image.GetOrigin())
    centre = origin + (size - 1) * spacing / 2  # axis-aligned scans: direction is the identity
    affine = sitk.AffineTransform(3)
    affine.SetCenter(centre.tolist())
    angle = np.deg2rad(rng.uniform(-8, 8))
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine.SetMatrix((rotation @ np.diag(rng.uniform(0.9, 1.1, 3))).ravel().tolist())
    affine.SetTranslation(rng.uniform(-6, 6, 3).tolist())
    bspline = sitk.BSplineTransformInitializer(image, [4, 4, 2])
    params = np.asarray(bspline.GetParameters())
    bspline.SetParameters((params + rng.normal(0, 4.0, params.shape)).tolist())
    return sitk.CompositeTransform([affine, bspline])


def second_patient() -> tuple[sitk.Image, sitk.Image]:
    """Patient B: the DICOM series at 3 x 3 x 2 mm in its own axis directions (LPS, where
    patient A's NIfTI is RAS: hybridlabel reorients, `tasks/files/orient.py`), cropped to
    the body, and its labels resampled onto that grid (their own direction flips y:
    array-to-array would be wrong)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(SOURCE / "dicom_series")))
    image = reader.Execute()
    spacing = (3.0, 3.0, 2.0)
    size = [int(round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    grid = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        spacing,
        image.GetDirection(),
        -1024.0,
        sitk.sitkInt16,
    )
    label = sitk.Resample(
        flare_labels(sitk.ReadImage(str(SOURCE / "dicom_series_totalseg.nii.gz"))),
        grid,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
        sitk.sitkUInt8,
    )
    body = np.argwhere(sitk.GetArrayFromImage(grid) > -500)  # z, y, x
    lo, hi = np.maximum(body.min(0) - 3, 0), body.max(0) + 4
    index, extent = [int(v) for v in lo[::-1]], [int(v) for v in (hi - lo)[::-1]]
    extent = [min(e, n - i) for e, n, i in zip(extent, grid.GetSize(), index)]
    return sitk.RegionOfInterest(grid, extent, index), sitk.RegionOfInterest(label, extent, index)


def insert_tumours(
    hu: np.ndarray, label: np.ndarray, spacing_zyx, rng: np.random.Generator, count: int | None = None
) -> None:
    """`count` (default: 0-2 at random) low-contrast tumours (8-18 mm radius, 25-45 HU below
    their organ, a soft rim) inside organs the copy has, in place; label 14 where the tumour
    lies."""
    hosts = [h for h in TUMOUR_HOSTS if (label == h).sum() >= 30]
    if not hosts:  # before any draw, so that a cohort's random stream stays as it was
        return
    for _ in range(int(rng.choice([0, 1, 1, 2])) if count is None else count):
        host = int(rng.choice(hosts))
        organ = label == host
        centre = np.argwhere(organ)[rng.integers(int(organ.sum()))]
        radii = rng.uniform(8.0, 18.0) * rng.uniform(0.8, 1.2, 3)
        zz, yy, xx = np.ogrid[tuple(slice(0, n) for n in label.shape)]
        inside = organ & (
            sum(((g - c) * s / r) ** 2 for g, c, s, r in zip((zz, yy, xx), centre, spacing_zyx, radii)) <= 1.0
        )
        dip = np.where(inside, -rng.uniform(25.0, 45.0), 0.0)
        hu += ndimage.gaussian_filter(dip, 0.6).astype(np.float32)
        label[inside] = 14


def deformed_copy(
    image: sitk.Image, label: sitk.Image, rng: np.random.Generator, tumours: bool = False, count: int | None = None
) -> tuple[sitk.Image, sitk.Image]:
    transform = random_transform(image, rng)
    moved = sitk.Resample(image, image, transform, sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    moved_label = sitk.Resample(label, label, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    hu = sitk.GetArrayFromImage(moved)
    if tumours:
        lab = sitk.GetArrayFromImage(moved_label)
        insert_tumours(hu, lab, image.GetSpacing()[::-1], rng, count)
        moved_label = sitk.GetImageFromArray(lab)
        moved_label.CopyInformation(label)
    soft = hu > -200  # contrast phase and scanner: tissue HU scaled and shifted, then noise
    hu[soft] = hu[soft] * rng.uniform(0.9, 1.1) + rng.uniform(-20, 20)
    hu += rng.normal(0, rng.uniform(5, 15), hu.shape).astype(np.float32)
    out = sitk.GetImageFromArray(np.clip(np.rint(hu), -1024, 3071).astype(np.int16))
    out.CopyInformation(image)
    return out, moved_label


def cross_patient_cohort(out: Path, n_cases: int, seed: int, labels: LabelMapConfig) -> Path:
    """Strong cases from patient A, every other role from patient B (module docstring)."""
    patients = {
        0: (
            sitk.ReadImage(str(SOURCE / "ct_abdomen_3mm.nii.gz")),
            flare_labels(sitk.ReadImage(str(SOURCE / "ct_abdomen_3mm_totalseg.nii.gz"))),
        ),
        1: second_patient(),
    }
    plan = assign_roles(n_cases, organs=labels.organ_ids, tumor_id=labels.tumor_id)
    order = np.random.default_rng(seed).permutation(n_cases)
    for sub in ("imagesTr", "labelsTr", "groundTruth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_cases):
        role, annotated = plan[order[i]]
        site = 0 if role == "strong" else 1
        case_id = f"realct_{i:03d}"
        image, truth = deformed_copy(*patients[site], np.random.default_rng([seed, i]), tumours=True)
        sitk.WriteImage(image, str(out / "imagesTr" / f"{case_id}_0000.nii.gz"))
        sitk.WriteImage(truth, str(out / "groundTruth" / f"{case_id}.nii.gz"))
        label_rel = ""
        if annotated is not None:
            full = sitk.GetArrayFromImage(truth)
            partial = sitk.GetImageFromArray(
                partial_label(full, tumor_as_organ(full, labels.tumor_id), annotated, labels.tumor_id)
            )
            partial.CopyInformation(truth)
            label_rel = f"labelsTr/{case_id}.nii.gz"
            sitk.WriteImage(partial, str(out / label_rel))
        rows.append(manifest_row(case_id, f"imagesTr/{case_id}_0000.nii.gz", label_rel, role, annotated, site=site))
    return write_manifest(out / "manifest.csv", rows)


def second_patient_test_cases(n_cases: int, seed: int, like: Path) -> list[tuple[sitk.Image, sitk.Image]]:
    """Fresh copies of patient B (image, complete label), every other one tumour-free, the
    rest with 1-2 tumours, in the axis directions of `like` (a patient-B image of the
    cohort the models trained on: the cohort's B copies were written in patient A's
    directions before hybridlabel reoriented, so models of such a cohort saw B that way)."""
    header = sitk.ReadImage(str(like))
    patient = second_patient()
    if header.GetSize() != patient[0].GetSize():
        raise SystemExit(f"{like} is {header.GetSize()}, patient B's grid is {patient[0].GetSize()}: not a B copy")
    cases = []
    for i in range(n_cases):
        rng = np.random.default_rng([seed, i])
        image, label = deformed_copy(*patient, rng, tumours=i % 2 == 1, count=int(rng.integers(1, 3)))
        for part in (image, label):
            part.SetDirection(header.GetDirection())
            part.SetOrigin(header.GetOrigin())
        cases.append((image, label))
    return cases


def single_patient_cohort(out: Path, n_cases: int, seed: int, labels: LabelMapConfig) -> Path:
    image = sitk.ReadImage(str(SOURCE / "ct_abdomen_3mm.nii.gz"))
    label = flare_labels(sitk.ReadImage(str(SOURCE / "ct_abdomen_3mm_totalseg.nii.gz")))
    full = out / "full"
    for sub in ("imagesTr", "labelsTr"):
        (full / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_cases):
        img, lab = deformed_copy(image, label, np.random.default_rng([seed, i]))
        sitk.WriteImage(img, str(full / "imagesTr" / f"realct_{i:03d}_0000.nii.gz"))
        sitk.WriteImage(lab, str(full / "labelsTr" / f"realct_{i:03d}.nii.gz"))
    return simulate_partial(full, out / "cohort", seed, labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=1500, help="training iterations per model in ablation.yaml")
    ap.add_argument("--cross-patient", action="store_true", help="strong cases from one patient, the rest from another")
    args = ap.parse_args()
    labels = LabelMapConfig()
    cohort = args.out / "cohort"
    if args.cross_patient:
        manifest = cross_patient_cohort(cohort, args.cases, args.seed, labels)
    else:
        manifest = single_patient_cohort(args.out, args.cases, args.seed, labels)
    update = {"name": "realct_ablation", "dataset": cohort.resolve()}
    atomic_write_text(
        args.out / "ablation.yaml", render_config_yaml(ablation_config(args.iterations).model_copy(update=update))
    )
    atomic_write_text(args.out / "cpu.yaml", render_config_yaml(cpu_preset().model_copy(update=update)))
    sites = np.loadtxt(manifest, delimiter=",", skiprows=1, usecols=5, dtype=int) if args.cross_patient else None
    print(
        f"{args.cases} deformed copies of real CT"
        + (
            f" (strong: {int((sites == 0).sum())} of patient A; {int((sites == 1).sum())} of patient B)"
            if sites is not None
            else " (one patient)"
        )
        + f"; cohort: {manifest}; configs: {args.out / 'ablation.yaml'}, {args.out / 'cpu.yaml'}"
    )


if __name__ == "__main__":
    main()
