"""Connected components of multi-label volumes (cc3d, one pass) and the cleaning rules.

Arrays are (z, y, x) with spacing in the same order, in mm. Work is done inside the
bounding box of the foreground and, for distances, inside each component's box grown
by the distance of interest: never a full-volume distance transform.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cc3d
import edt
import fastremap
import numpy as np


@dataclass
class Components:
    """Components of a label volume (or of a crop of it at `origin`): ids in `cc`, with
    per-id class, size and box; boxes are in the coordinates of the full volume."""

    cc: np.ndarray
    classes: np.ndarray  # class of each component id (index 0 = background)
    voxels: np.ndarray  # voxel count of each component id
    boxes: np.ndarray | None  # (N+1, 6): zmin, zmax, ymin, ymax, xmin, xmax (inclusive, absolute)
    origin: tuple[int, int, int] = (0, 0, 0)

    @property
    def n(self) -> int:
        return len(self.classes) - 1

    def ids_of(self, class_id: int) -> np.ndarray:
        return np.flatnonzero(self.classes == class_id)

    def mask_in(self, box: tuple[slice, ...], comp_id: int) -> np.ndarray:
        """Boolean mask of a component inside an absolute box (which may exceed the crop)."""
        out = np.zeros(tuple(b.stop - b.start for b in box), dtype=bool)
        src, dst = [], []
        for b, o, n in zip(box, self.origin, self.cc.shape):
            lo, hi = max(b.start, o), min(b.stop, o + n)
            if hi <= lo:
                return out
            src.append(slice(lo - o, hi - o))
            dst.append(slice(lo - b.start, hi - b.start))
        out[tuple(dst)] = self.cc[tuple(src)] == comp_id
        return out


def find_components(label: np.ndarray, box: tuple[slice, ...] | None = None, with_boxes: bool = True) -> Components:
    """26-connected components of every class at once, of `label[box]` when a box is given.

    Bounding boxes cost a full statistics pass (the slowest step on a large crop): ask
    for them only where components will be visited one by one (tumours)."""
    crop = label[box] if box is not None else label
    origin = tuple(b.start for b in box) if box is not None else (0, 0, 0)
    cc, n = cc3d.connected_components(crop, connectivity=26, return_N=True)
    classes = np.zeros(n + 1, dtype=np.int64)
    for comp, cls in fastremap.component_map(cc, crop).items():
        classes[int(comp)] = int(cls)
    boxes = None
    if with_boxes:
        stats = cc3d.statistics(cc, no_slice_conversion=True)
        voxels = np.asarray(stats["voxel_counts"], dtype=np.int64)
        boxes = np.asarray(stats["bounding_boxes"], dtype=np.int64).reshape(n + 1, 6)
        boxes += np.repeat(np.asarray(origin, dtype=np.int64), 2)
    else:
        voxels = np.zeros(n + 1, dtype=np.int64)
        ids, counts = fastremap.unique(cc, return_counts=True)
        voxels[ids.astype(np.int64)] = counts
    return Components(cc, classes, voxels, boxes, origin)


def foreground_box(*labels: np.ndarray) -> tuple[slice, ...] | None:
    """Smallest box holding the foreground of all arrays (None when all are empty).

    Two reductions per array (over z, then over y-x of the projection), never a
    volume-sized temporary."""
    z_any = yx_any = None
    for lab in labels:
        if lab is None:
            continue
        yx = lab.any(axis=0)
        z = lab.reshape(lab.shape[0], -1).any(axis=1)
        yx_any = yx if yx_any is None else (yx_any | yx)
        z_any = z if z_any is None else (z_any | z)
    if z_any is None or not z_any.any():
        return None
    box = []
    for hit in (z_any, yx_any.any(axis=1), yx_any.any(axis=0)):
        idx = np.flatnonzero(hit)
        box.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(box)


def grown_box(comps: Components, comp_id: int, margin_mm: float, spacing, shape) -> tuple[slice, ...]:
    """A component's box grown by `margin_mm` (in voxels per axis) and clipped to `shape`."""
    b = comps.boxes[comp_id]
    out = []
    for axis in range(3):
        pad = int(np.ceil(margin_mm / spacing[axis])) + 1
        out.append(slice(max(0, int(b[2 * axis]) - pad), min(shape[axis], int(b[2 * axis + 1]) + 1 + pad)))
    return tuple(out)


def component_box(comps: Components, comp_id: int) -> tuple[slice, ...]:
    b = comps.boxes[comp_id]
    return tuple(slice(int(b[2 * a]), int(b[2 * a + 1]) + 1) for a in range(3))


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
    """A copy of `label` with the voxels of unkept components set to background.

    Few dropped components are cleared inside their own boxes; many at once with one
    gather over the crop."""
    out = label.copy()
    dropped = np.flatnonzero(~keep)
    if len(dropped) == 0:
        return out
    if len(dropped) > 64 or comps.boxes is None:
        crop = tuple(slice(o, o + n) for o, n in zip(comps.origin, comps.cc.shape))
        out[crop][~keep[comps.cc]] = 0
        return out
    for cid in dropped:
        box = component_box(comps, int(cid))
        out[box][comps.mask_in(box, int(cid))] = 0
    return out


def near_any(
    comps: Components, comp_id: int, target_in: Callable[[tuple[slice, ...]], np.ndarray], spacing, max_mm: float, shape
) -> bool:
    """Is component `comp_id` within `max_mm` of any voxel of the mask `target_in(box)`?"""
    box = grown_box(comps, comp_id, max_mm, spacing, shape)
    sub_target = target_in(box)
    if not sub_target.any():
        return False
    dist = distance_from(sub_target, spacing)
    return bool(dist[comps.mask_in(box, comp_id)].min() <= max_mm)
