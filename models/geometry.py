"""Image/label grid comparison (pure: works on geometry tuples, not on images).

A grid is (size, spacing, origin, direction) in SimpleITK's (x, y, z) order with a
row-major 3x3 direction. Two grids describe the same physical space when the eight
corners of their voxel boxes coincide as a set, whatever the axis order or flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
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
    if (same_size
            and np.allclose(image.spacing, label.spacing, rtol=1e-4, atol=1e-5)
            and np.allclose(image.origin, label.origin, atol=1e-3)
            and np.allclose(image.direction, label.direction, atol=1e-4)):
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
