"""A real-CT cohort for the learning benchmark and the ablation (a benchmark utility, not
product code): N copies of the shared real abdominal CT (`../shared/data/real-ct/`, its
TotalSegmentator labels mapped to the FLARE23 ids), each under its own random affine
(rotation about the body axis, per-axis scale, shift) and smooth elastic deformation
(B-spline, random control-point displacements) with a contrast/HU shift and noise, then
made FLARE23-like by `hybridlabel simulate-partial` (roles, partial labels, complete
ground truth kept aside). Copies of one patient are not N patients: the cohort measures
whether a configuration learns real anatomy and texture, not generalisation across
patients.

Usage: python benchmarks/realct_cohort.py OUT [--cases 40] [--seed 0] [--iterations 1500]
Writes OUT/full (every copy fully labeled), OUT/cohort (simulate-partial's output:
imagesTr, labelsTr, groundTruth, manifest.csv, simulation.json) and OUT/ablation.yaml (the
phantom ablation's config, `--iterations` per model, on this cohort):
`hybridlabel ablate OUT/ablation.yaml --workdir W --arms teacher,rounds --seeds 1,2,3`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybridlabel.cli.demo import ablation_config  # noqa: E402
from hybridlabel.models.config import LabelMapConfig  # noqa: E402
from hybridlabel.models.config_yaml import render_config_yaml  # noqa: E402
from hybridlabel.tasks.files.atomic import atomic_write_text  # noqa: E402
from hybridlabel.tasks.intake.simulate_partial import simulate_partial  # noqa: E402

SOURCE = ROOT.parent / "shared" / "data" / "real-ct"
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


def deformed_copy(image: sitk.Image, label: sitk.Image, rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image]:
    transform = random_transform(image, rng)
    moved = sitk.Resample(image, image, transform, sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    moved_label = sitk.Resample(label, label, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    hu = sitk.GetArrayFromImage(moved)
    soft = hu > -200  # contrast phase and scanner: tissue HU scaled and shifted, then noise
    hu[soft] = hu[soft] * rng.uniform(0.9, 1.1) + rng.uniform(-20, 20)
    hu += rng.normal(0, rng.uniform(5, 15), hu.shape).astype(np.float32)
    out = sitk.GetImageFromArray(np.clip(np.rint(hu), -1024, 3071).astype(np.int16))
    out.CopyInformation(image)
    return out, moved_label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=1500, help="training iterations per model in ablation.yaml")
    args = ap.parse_args()
    image = sitk.ReadImage(str(SOURCE / "ct_abdomen_3mm.nii.gz"))
    label = flare_labels(sitk.ReadImage(str(SOURCE / "ct_abdomen_3mm_totalseg.nii.gz")))
    full = args.out / "full"
    for sub in ("imagesTr", "labelsTr"):
        (full / sub).mkdir(parents=True, exist_ok=True)
    for i in range(args.cases):
        img, lab = deformed_copy(image, label, np.random.default_rng([args.seed, i]))
        sitk.WriteImage(img, str(full / "imagesTr" / f"realct_{i:03d}_0000.nii.gz"))
        sitk.WriteImage(lab, str(full / "labelsTr" / f"realct_{i:03d}.nii.gz"))
    manifest = simulate_partial(full, args.out / "cohort", args.seed, LabelMapConfig())
    config = ablation_config(args.iterations).model_copy(
        update={"name": "realct_ablation", "dataset": (args.out / "cohort").resolve()}
    )
    atomic_write_text(args.out / "ablation.yaml", render_config_yaml(config))
    present = sorted(int(c) for c in np.unique(sitk.GetArrayFromImage(label)) if c)
    print(
        f"{args.cases} deformed copies of one real CT ({image.GetSize()} at {image.GetSpacing()} mm; "
        f"classes present {present}); cohort: {manifest}; ablation config: {args.out / 'ablation.yaml'}"
    )


if __name__ == "__main__":
    main()
