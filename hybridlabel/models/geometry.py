"""Image/label grid comparison (pure: works on geometry tuples, not on images).

A grid is (size, spacing, origin, direction) in SimpleITK's (x, y, z) order with a
row-major 3x3 direction. Two grids describe the same physical space when the eight
corners of their voxel boxes coincide as a set, whatever the axis order or flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations, product
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Grid:
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def dimension(self) -> int:
        return len(self.size)


GridMatch = Literal["same", "resample", "incompatible"]


def _corners(grid: Grid) -> np.ndarray:
    d = np.asarray(grid.direction, dtype=float).reshape(3, 3)
    spacing = np.asarray(grid.spacing, dtype=float)
    idx = np.array(list(product(*[(-0.5, n - 0.5) for n in grid.size])), dtype=float)
    return np.asarray(grid.origin, dtype=float) + (idx * spacing) @ d.T


def compare_grids(image: Grid, label: Grid) -> tuple[GridMatch, str | None]:
    """`same` (voxel to voxel), `resample` (same space, other grid) or `incompatible`."""
    if image.dimension != 3 or label.dimension != 3:
        return "incompatible", f"label is {label.dimension}D but the image is {image.dimension}D"
    same_size = tuple(image.size) == tuple(label.size)
    if (
        same_size
        and np.allclose(image.spacing, label.spacing, rtol=1e-4, atol=1e-5)
        and np.allclose(image.origin, label.origin, atol=1e-3)
        and np.allclose(image.direction, label.direction, atol=1e-4)
    ):
        return "same", None
    tol = 0.5 * max(max(image.spacing), max(label.spacing))
    ci, cl = _corners(image), _corners(label)
    gaps = np.linalg.norm(ci[:, None, :] - cl[None, :, :], axis=2).min(axis=1)
    if gaps.max() <= tol:
        return "resample", None
    return "incompatible", (
        f"label grid (size {tuple(label.size)}, spacing {_fmt(label.spacing)}) does not cover the image's "
        f"physical space (size {tuple(image.size)}, spacing {_fmt(image.spacing)}; corners up to "
        f"{gaps.max():.1f} mm apart); re-export the label on the image grid"
    )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def slice_gap_problem(
    positions: np.ndarray, normal: np.ndarray, rel_tol: float = 0.05, abs_tol_mm: float = 0.02
) -> str | None:
    """Why a series' slice positions do not make one uniform grid, or None.

    `positions`: (n, 3) slice origins in mm, in the reader's order; `normal`: the slice
    normal. A reader given such a series silently assumes the average spacing, so every
    slice after a gap lands at the wrong height."""
    if len(positions) < 3:
        return None
    heights = np.asarray(positions, float) @ (np.asarray(normal, float) / np.linalg.norm(normal))
    shared = np.flatnonzero(np.diff(np.sort(heights)) <= abs_tol_mm)
    if len(shared):  # a copied file: the reader may sort it anywhere, so look at the sorted heights
        at = float(np.sort(heights)[shared[0]])
        return (
            f"{len(shared)} slice(s) share a position with another (first at {at:.2f} mm along the slice "
            "normal): the series holds duplicate slices; remove the copies"
        )
    steps = np.diff(heights)
    step = float(np.median(steps))
    if abs(step) < 1e-6:
        return "several slices share one position; the series holds duplicate slices"
    off = np.flatnonzero(np.abs(steps - step) > max(rel_tol * abs(step), abs_tol_mm))
    if not len(off):
        return None
    i = int(off[0])
    missing = abs(steps[i]) / abs(step) - 1
    what = (
        f"about {round(missing)} missing slice(s)"
        if missing >= 0.5 and abs(missing - round(missing)) < 0.1
        else "non-uniform slice spacing"
    )
    return (
        f"{what}: {abs(steps[i]):.2f} mm between slices {i} and {i + 1} where the series steps "
        f"{abs(step):.2f} mm ({len(off)} irregular step(s)); export the complete series"
    )


# Documented limits of what a CT file may declare (docs/inputs.md). Clinical CT voxels
# lie between ~0.2 mm (in-plane, small field of view) and ~10 mm (thick slices); outside
# 0.05-50 mm a header is wrong, and one such case makes nnU-Net's resampling target absurd
# for every case (1e30 mm: "Maximum allowed dimension exceeded").
SPACING_RANGE_MM = (0.05, 50.0)
MAX_ORIGIN_MM = 1e6
# 1024^3 voxels (2 GiB as int16, 4 GiB as float32) is beyond any abdominal CT; a header
# declaring more is refused before its voxels are read
MAX_VOXELS = 1 << 30


def geometry_problem(spacing, origin, direction) -> str | None:
    """Why a header's geometry cannot be a scan's, or None: spacing finite and within
    SPACING_RANGE_MM, a finite origin, an orthonormal direction."""
    sp, org, d = (np.asarray(v, dtype=float) for v in (spacing, origin, direction))
    low, high = SPACING_RANGE_MM
    if not np.all(np.isfinite(sp)):
        return f"spacing {_fmt(sp)} is not finite; the header is damaged, fix the conversion that wrote it"
    if np.any(sp < low) or np.any(sp > high):
        return (
            f"spacing {_fmt(sp)} mm lies outside {low:g}-{high:g} mm; the header's voxel size is wrong, "
            "fix the conversion that wrote it"
        )
    if not np.all(np.isfinite(org)) or np.any(np.abs(org) > MAX_ORIGIN_MM):
        return f"origin {_fmt(org)} is not a finite position; the header is damaged"
    n = len(sp)
    if d.size != n * n or not np.all(np.isfinite(d)):
        return "direction matrix is not finite; the header is damaged"
    d = d.reshape(n, n)
    if not np.allclose(d @ d.T, np.eye(n), atol=1e-3):
        return "direction matrix is not orthonormal (sheared or scaled axes); resample the image onto a regular grid"
    return None


def voxel_count_problem(size) -> str | None:
    voxels = int(np.prod([int(s) for s in size], dtype=object))
    if voxels > MAX_VOXELS:
        return (
            f"header declares {'x'.join(str(int(s)) for s in size)} = {voxels:,} voxels, over the "
            f"{MAX_VOXELS:,} limit; crop or downsample it"
        )
    return None


# the patient direction each voxel axis steps toward, DICOM letters (LPS: x to the
# patient's left, y to posterior, z to superior), as SimpleITK's DICOMOrient names them
_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))

# The axis orientation the network sees (`tasks/files/orient.py`): the identity direction,
# SimpleITK's and DICOM's default, so that most scans need no reoriented copy.
MODEL_ORIENTATION = "LPS"
# three letters, one from each of the pairs L/R, P/A, S/I, in any order (48 codes)
ORIENTATION_PATTERN = (
    "^(" + "|".join("".join(f"[{''.join(_AXIS_LETTERS[a])}]" for a in order) for order in permutations(range(3))) + ")$"
)


def orientation_code(direction) -> str | None:
    """The image's axis directions as three letters (the identity is "LPS"; a NIfTI
    written in RAS reads "RAS"): for each voxel axis, the patient axis it is closest to.
    None for an image that is not 3d."""
    d = np.asarray(direction, dtype=float)
    if d.size != 9:
        return None
    d = d.reshape(3, 3)
    letters = []
    for column in d.T:
        axis = int(np.argmax(np.abs(column)))
        letters.append(_AXIS_LETTERS[axis][0 if column[axis] > 0 else 1])
    return "".join(letters)


def orientation_mix(codes: dict[str, str]) -> str | None:
    """A one-line note when a cohort's images (case id -> orientation_code) come in more
    than one orientation, or None: nnU-Net ignores the header's directions, so those not
    in MODEL_ORIENTATION are trained and predicted reoriented (`tasks/files/orient.py`)."""
    counts: dict[str, int] = {}
    for code in codes.values():
        counts[code] = counts.get(code, 0) + 1
    if len(counts) < 2:
        return None
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    odd = sorted(case for case, code in codes.items() if code != MODEL_ORIENTATION)
    named = ", ".join(odd[:3]) + (f" and {len(odd) - 3} more" if len(odd) > 3 else "")
    return (
        f"images in {len(counts)} axis orientations ({', '.join(f'{c}: {n}' for c, n in ranked)}; "
        f"not {MODEL_ORIENTATION}: {named}); nnU-Net ignores the header's directions, so every image is "
        f"trained and predicted in {MODEL_ORIENTATION} (reoriented copies in the workdir) and each label map "
        f"written back in its image's own"
    )
