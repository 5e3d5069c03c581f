"""Connected components of multi-label volumes (cc3d, one pass) and the cleaning rules.

Arrays are (z, y, x) with spacing in the same order, in mm. Work is done inside the
bounding box of the foreground and, for distances, inside each component's box grown
by the distance of interest: never a full-volume distance transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import edt
import fastremap
import numpy as np


@dataclass
class Components:
    """Components of a label volume: ids in `cc`, with per-id class, size and box."""
    cc: np.ndarray
    classes: np.ndarray  # class of each component id (index 0 = background)
    voxels: np.ndarray  # voxel count of each component id
    boxes: np.ndarray  # (N+1, 6): zmin, zmax, ymin, ymax, xmin, xmax (inclusive)

    @property
    def n(self) -> int:
        return len(self.classes) - 1

    def ids_of(self, class_id: int) -> np.ndarray:
        return np.flatnonzero(self.classes == class_id)


def find_components(label: np.ndarray) -> Components:
    """26-connected components of every class at once."""
    cc, n = cc3d.connected_components(label, connectivity=26, return_N=True)
    stats = cc3d.statistics(cc, no_slice_conversion=True)
    classes = np.zeros(n + 1, dtype=np.int64)
    for comp, cls in fastremap.component_map(cc, label).items():
        classes[int(comp)] = int(cls)
    boxes = np.asarray(stats["bounding_boxes"], dtype=np.int64).reshape(n + 1, 6)
    return Components(cc, classes, np.asarray(stats["voxel_counts"], dtype=np.int64), boxes)


def foreground_box(*labels: np.ndarray) -> tuple[slice, ...] | None:
    """Smallest box holding the foreground of all arrays (None when all are empty)."""
    fg = None
    for lab in labels:
        if lab is not None:
            fg = (lab > 0) if fg is None else (fg | (lab > 0))
    if fg is None or not fg.any():
        return None
    box = []
    for axis in range(fg.ndim):
        other = tuple(a for a in range(fg.ndim) if a != axis)
        hit = np.flatnonzero(fg.any(axis=other))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def grown_box(comps: Components, comp_id: int, margin_mm: float, spacing, shape) -> tuple[slice, ...]:
    """A component's box grown by `margin_mm` (in voxels per axis) and clipped to the volume."""
    b = comps.boxes[comp_id]
    out = []
    for axis in range(3):
        pad = int(np.ceil(margin_mm / spacing[axis])) + 1
        out.append(slice(max(0, int(b[2 * axis]) - pad), min(shape[axis], int(b[2 * axis + 1]) + 1 + pad)))
    return tuple(out)


def distance_from(mask: np.ndarray, spacing) -> np.ndarray:
    """Euclidean distance in mm of every voxel of the box to the nearest voxel of `mask`."""
    return edt.edt(np.logical_not(mask), anisotropy=tuple(float(s) for s in spacing), black_border=False)


def drop_small_components(comps: Components, spacing, min_mm3: float) -> np.ndarray:
    """Component ids kept (boolean per id) after dropping those under `min_mm3`."""
    voxel_mm3 = float(np.prod(spacing))
    keep = comps.voxels * voxel_mm3 >= min_mm3
    keep[0] = True
    return keep


def keep_largest_per_class(comps: Components, classes) -> np.ndarray:
    """Boolean per component id: False for all but the largest component of each listed class."""
    keep = np.ones(comps.n + 1, dtype=bool)
    for cls in classes:
        ids = comps.ids_of(cls)
        if len(ids) > 1:
            largest = ids[np.argmax(comps.voxels[ids])]
            keep[ids] = False
            keep[largest] = True
    return keep


def apply_keep(label: np.ndarray, comps: Components, keep: np.ndarray) -> np.ndarray:
    """A copy of `label` with the voxels of unkept components set to background."""
    if keep.all():
        return label.copy()
    dropped = ~keep[comps.cc]
    out = label.copy()
    out[dropped] = 0
    return out


def near_any(comps: Components, comp_id: int, target: np.ndarray, spacing, max_mm: float) -> bool:
    """Is component `comp_id` within `max_mm` of any voxel of the boolean `target`?"""
    box = grown_box(comps, comp_id, max_mm, spacing, comps.cc.shape)
    sub_target = target[box]
    if not sub_target.any():
        return False
    dist = distance_from(sub_target, spacing)
    return bool(dist[comps.cc[box] == comp_id].min() <= max_mm)
