"""Write a phantom cohort in nnU-Net raw layout, with complete ground truth and a manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.partiality import assign_roles
from hybridlabel.models.phantom import generate_phantom, phantom_partial_label
from hybridlabel.models.phantom_sites import assign_sites, site_profile
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import write_image
from hybridlabel.tasks.intake.cohort_manifest import manifest_row, write_manifest


def _to_image(array: np.ndarray, spacing_zyx) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    spacing = tuple(reversed(spacing_zyx))
    image.SetSpacing(spacing)
    # centred left-right and antero-posterior, like a scanner's table coordinates
    image.SetOrigin((-array.shape[2] * spacing[0] / 2, -array.shape[1] * spacing[1] / 2, 0.0))
    return image


def write_phantom_cohort(
    out_dir: Path,
    n_cases: int,
    seed: int,
    size: str = "small",
    on_case: Callable[[str], None] | None = None,
    sites: int = 1,
) -> Path:
    """Write `n_cases` phantoms scanned at `sites` sites (models/phantom_sites.py: strong
    cases from site 0, partial patterns from their own sites, the last site unseen by any
    labelled case); returns the manifest path."""
    out_dir = Path(out_dir)
    plan = assign_roles(n_cases)
    site_of = assign_sites(plan, sites)
    order = np.random.default_rng(seed).permutation(n_cases)  # mix roles over case ids
    for sub in ("imagesTr", "labelsTr", "groundTruth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    manifest_rows, truth = [], {}
    for i in range(n_cases):
        role, annotated = plan[order[i]]
        case_id = f"phantom_{i:03d}"
        site = site_of[order[i]]
        case = generate_phantom(np.random.default_rng([seed, i]), size=size, site=site_profile(site))
        image = _to_image(case.image, case.spacing)
        write_image(image, out_dir / "imagesTr" / f"{case_id}_0000.nii.gz")
        write_image(_to_image(case.label, case.spacing), out_dir / "groundTruth" / f"{case_id}.nii.gz")
        label_rel = ""
        if annotated is not None:
            label_rel = f"labelsTr/{case_id}.nii.gz"
            write_image(_to_image(phantom_partial_label(case, annotated), case.spacing), out_dir / label_rel)
        manifest_rows.append(
            manifest_row(case_id, f"imagesTr/{case_id}_0000.nii.gz", label_rel, role, annotated, site=site)
        )
        truth[case_id] = {"role": role, "annotated": list(annotated or []), "tumors": case.tumors, "site": site}
        if on_case:
            on_case(case_id)
    manifest = write_manifest(out_dir / "manifest.csv", manifest_rows)
    atomic_write_text(
        out_dir / "phantom.json",
        json.dumps(
            {
                "seed": seed,
                "size": size,
                "cases": truth,
                "sites": {k: site_profile(k).describe() for k in range(sites)},
            },
            indent=1,
            sort_keys=True,
        ),
    )
    return manifest
