"""Surface distances and the normalised surface Dice (NSD) of two binary masks.

The algorithm is DeepMind's (the one FLARE's evaluation uses): surface elements live on
the corner grid between voxels; the code of a corner is its 2x2x2 neighbourhood (8
bits); a corner whose neighbourhood is neither all-out nor all-in is on the surface;
its area comes from the marching-cubes triangulation of that neighbourhood, and its
distance to the other surface from a Euclidean distance transform that honours the
spacing. It is re-derived here, not copied: the area table is built from marching cubes
(Lorensen's table, no ambiguity resolution), and for neighbourhoods with more than four
corners inside the surface of the complement is used, which is exactly how DeepMind's
table treats them (tested against the `surface-distance` package). Faster than the
reference because it never sorts the distances (the NSD does not need them) and the
distance transform is `edt`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import edt
import numpy as np


@lru_cache(maxsize=1)
def _unit_triangles() -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes triangles of each of the 256 neighbourhood codes on a unit cube:
    (T, 3 vertices, 3 coords) and the code of each triangle."""
    from skimage.measure import marching_cubes

    tris, owner = [], []
    for code in range(1, 255):
        inside = code if bin(code).count("1") <= 4 else 255 - code
        cube = np.array([(inside >> (7 - bit)) & 1 for bit in range(8)], dtype=np.float64).reshape(2, 2, 2)
        verts, faces, _, _ = marching_cubes(cube, 0.5, method="lorensen")
        tris.append(verts[faces])
        owner.append(np.full(len(faces), code))
    return np.concatenate(tris), np.concatenate(owner)


@lru_cache(maxsize=64)
def surfel_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """Surface area (mm^2) of the surface element of each neighbourhood code."""
    tris, owner = _unit_triangles()
    scaled = tris * np.asarray(spacing, dtype=np.float64)
    cross = np.cross(scaled[:, 1] - scaled[:, 0], scaled[:, 2] - scaled[:, 0])
    table = np.zeros(256, dtype=np.float64)
    np.add.at(table, owner, 0.5 * np.linalg.norm(cross, axis=1))
    return table


def _codes(padded: np.ndarray) -> np.ndarray:
    """Neighbourhood code of every corner of a zero-padded uint8 mask: bit 7 is the
    (-1, -1, -1) neighbour, bit 0 the (0, 0, 0) one, as in DeepMind's kernel."""
    z, y, x = (s - 1 for s in padded.shape)
    code = np.zeros((z, y, x), dtype=np.uint8)
    for bit in range(8):
        a, b, c = (bit >> 2) & 1, (bit >> 1) & 1, bit & 1
        code |= padded[a : a + z, b : b + y, c : c + x] << np.uint8(7 - bit)
    return code


@dataclass(frozen=True)
class SurfaceDistances:
    """Per surface element: distance (mm) to the other surface and area (mm^2)."""

    gt_to_pred: np.ndarray
    gt_areas: np.ndarray
    pred_to_gt: np.ndarray
    pred_areas: np.ndarray


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    slices = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        slices.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(slices)


def _distance_to(borders: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    if not borders.any():
        return np.full(borders.shape, np.inf)
    # edt measures the distance of every non-zero voxel to the nearest zero: the border
    return edt.edt(np.logical_not(borders), anisotropy=spacing, black_border=False, parallel=1).astype(np.float64)


def surface_distances(gt: np.ndarray, pred: np.ndarray, spacing) -> SurfaceDistances:
    """Distances between the surfaces of two 3D boolean masks with voxel spacing (mm)
    in the arrays' axis order."""
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(f"masks must be 3D and of one shape, got {gt.shape} and {pred.shape}")
    spacing = tuple(float(s) for s in spacing)
    box = _bounding_box(gt | pred)
    if box is None:
        empty = np.zeros(0)
        return SurfaceDistances(empty, empty, empty, empty)
    table = surfel_area_table(spacing)
    codes, borders = [], []
    for mask in (gt, pred):
        code = _codes(np.pad(mask[box].astype(np.uint8), 1))
        codes.append(code)
        borders.append((code != 0) & (code != 255))
    to_gt, to_pred = _distance_to(borders[0], spacing), _distance_to(borders[1], spacing)
    return SurfaceDistances(
        to_pred[borders[0]], table[codes[0][borders[0]]], to_gt[borders[1]], table[codes[1][borders[1]]]
    )


def surface_dice(distances: SurfaceDistances, tolerance_mm: float) -> float:
    """Share of both surfaces (by area) within the tolerance of the other surface.
    NaN when both surfaces are empty (the caller's empty rules decide)."""
    total = distances.gt_areas.sum() + distances.pred_areas.sum()
    if total == 0:
        return float("nan")
    near = (
        distances.gt_areas[distances.gt_to_pred <= tolerance_mm].sum()
        + distances.pred_areas[distances.pred_to_gt <= tolerance_mm].sum()
    )
    return float(near / total)
