"""Tumour-organ attribution by dilation in millimetres (rule 3 of the design).

Each tumour component is dilated by `attribution_mm` with a Euclidean distance
transform that honours anisotropic spacing, computed only inside the component's box
grown by the radius; it goes to the organ its dilation overlaps most (ties: larger
overlap of the undilated component, then the lower class id), or to `extra_organ`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hybridlabel.models.components import Components, distance_from, grown_box

EXTRA_ORGAN = "extra_organ"


OrganMapIn = Callable[[tuple[slice, ...]], np.ndarray]


def attribute_component(
    comps: Components, comp_id: int, organ_map_in: OrganMapIn, spacing, attribution_mm: float, n_classes: int, shape
) -> dict:
    """Attribution record of one tumour component; `organ_map_in(box)` gives the organ
    map (0 = no organ) inside a box, so it is only ever built around the tumour."""
    box = grown_box(comps, comp_id, attribution_mm, spacing, shape)
    inside = comps.mask_in(box, comp_id)
    dilated = distance_from(inside, spacing) <= attribution_mm
    organs = organ_map_in(box)
    ring = np.bincount(organs[dilated].ravel(), minlength=n_classes)
    core = np.bincount(organs[inside].ravel(), minlength=n_classes)
    ring[0] = core[0] = 0
    voxels = int(comps.voxels[comp_id])
    record = {
        "component": int(comp_id),
        "voxels": voxels,
        "volume_mm3": round(voxels * float(np.prod(spacing)), 3),
        "organ": EXTRA_ORGAN,
        "overlap_voxels": 0,
    }
    if ring.max() > 0:
        # lexsort: last key is primary -> most ring overlap, then most core overlap, then lowest id
        ids = np.arange(len(ring))
        best = np.lexsort((ids, -core, -ring))[0]
        record.update(organ=int(best), overlap_voxels=int(ring[best]))
    return record


def attribute_tumors(
    comps: Components, tumor_id: int, organ_map_in: OrganMapIn, spacing, attribution_mm: float, n_classes: int, shape
) -> list[dict]:
    """Records for every tumour component of `comps`, in component order."""
    return [
        attribute_component(comps, int(cid), organ_map_in, spacing, attribution_mm, n_classes, shape)
        for cid in comps.ids_of(tumor_id)
    ]
