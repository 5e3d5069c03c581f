"""Phantom sites (pure): centres that scan differently, and which roles come from which.

FLARE23's premise is a gap between where the strong labels come from and where the model
must work: its 4,000 scans come from many centres, the fully labelled ones from few of them,
each partial-label source from its own centres, and the test cases from centres no labelled
case came from. A phantom cohort with sites carries that gap:

- a site differs the way centres do: noise and reconstruction blur, slice thickness and
  in-plane spacing, HU calibration, contrast timing, field of view (abdomen only or chest to
  pelvis), its population's habitus and how often tumours occur;
- strong cases come from site 0, each partial-label pattern from its own sites (1 .. N-2),
  unlabeled and val cases from every site, and the last site is seen by no labelled case.

Site 0 is the single-site phantom's own scanner, so `--sites 1` is the cohort of old.
Sites are the world's centres, not the cohort's: site k is the same for every cohort seed
(drawn from SITE_SEED), and cohorts differ only in the patients they draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SITE_SEED = 20230  # FLARE23


@dataclass(frozen=True)
class Site:
    index: int
    noise_hu: float = 8.0  # standard deviation of the image noise
    blur_voxels: float = 0.6  # reconstruction kernel: Gaussian sigma in voxels
    slice_factor: float = 1.0  # slice thickness relative to the size's
    inplane_factor: float = 1.0  # in-plane spacing relative to the size's (the field of view in mm is kept)
    coverage: float = 1.0  # scan length relative to the size's: 1 abdomen, 1.4 chest to pelvis
    hu_offset: float = 0.0  # calibration: added to every voxel
    enhancement: tuple[float, float] = (0.8, 1.2)  # contrast timing: range of the enhancement factor
    habitus: float = 1.0  # body size relative to the size's body-fill ranges
    max_tumors: int = 3  # tumours per case drawn from 0 .. this: tumour-free share 1 / (this + 1)

    def describe(self) -> str:
        return (
            f"site {self.index}: noise {self.noise_hu:.0f} HU, blur {self.blur_voxels:.1f} vx, slices x"
            f"{self.slice_factor:.2f}, in-plane x{self.inplane_factor:.2f}, coverage x{self.coverage:.1f}, "
            f"HU {self.hu_offset:+.0f}, enhancement {self.enhancement[0]:.2f}-{self.enhancement[1]:.2f}, "
            f"habitus x{self.habitus:.2f}, tumours 0-{self.max_tumors}"
        )


REFERENCE_SITE = Site(0)


def site_profile(index: int) -> Site:
    """Site `index` of the world (0 = the reference scanner); the same on every call."""
    if index < 0:
        raise ValueError(f"a site index is >= 0, got {index}")
    if index == 0:
        return REFERENCE_SITE
    rng = np.random.default_rng([SITE_SEED, index])
    centre = float(rng.uniform(0.75, 1.25))  # arterial-ish .. delayed
    return Site(
        index=index,
        noise_hu=round(float(rng.uniform(5.0, 18.0)), 1),
        blur_voxels=round(float(rng.uniform(0.4, 1.1)), 2),
        slice_factor=round(float(rng.uniform(0.7, 1.4)), 2),
        inplane_factor=round(float(rng.uniform(0.85, 1.2)), 2),
        coverage=1.4 if rng.random() < 0.5 else 1.0,
        hu_offset=round(float(rng.uniform(-20.0, 20.0)), 1),
        enhancement=(round(centre - 0.08, 2), round(centre + 0.08, 2)),
        habitus=round(float(rng.uniform(0.88, 1.06)), 2),
        max_tumors=int(rng.integers(1, 6)),
    )


def assign_sites(plan: list[tuple[str, tuple[int, ...] | None]], n_sites: int) -> list[int]:
    """The site of each planned case (`partiality.assign_roles`' plan): strong from site 0,
    each partial pattern from its own site among 1 .. N-2 (N-1 when N = 2), unlabeled and val
    round-robin over every site starting with the last, which no labelled case comes from
    (from N = 3 on)."""
    if n_sites < 1:
        raise ValueError(f"a cohort needs at least 1 site, got {n_sites}")
    if n_sites == 1:
        return [0] * len(plan)
    partial_sites = list(range(1, max(2, n_sites - 1)))
    patterns: list[tuple[int, ...]] = []
    turns = {"val": 0, "unlabeled": 0}
    sites = []
    for role, annotated in plan:
        if role == "strong":
            sites.append(0)
        elif role in turns:
            sites.append((n_sites - 1 + turns[role]) % n_sites)
            turns[role] += 1
        else:
            if annotated not in patterns:
                patterns.append(annotated)
            sites.append(partial_sites[patterns.index(annotated) % len(partial_sites)])
    return sites
