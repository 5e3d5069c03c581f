"""Context-aware tumour CutMix (pure): annotated tumours cut out with their surroundings
and pasted into training patches of cases that carry no tumour label.

Most tumour annotations come from tumour-only cases, while most training cases of a
round (strong cases, cases whose pseudo tumour fell back, organ-kept unlabeled cases)
carry no trustworthy tumour label, so the network meets few labelled tumours. Following
the FLARE23 runner-up, every ground-truth tumour component becomes a *context-aware
tumour object* (CTO): the tumour with a random margin of its neighbourhood, image and
label, at the training resolution (margins in mm, so that they mean the same context at
any spacing). During training a CTO replaces the content of a box
of a tumour-free case's patch, centred inside an organ (the CTO's own host organ when the
patch shows it).

A pasted box is known ground truth for the tumour class, and only there: the rest of the
recipient's patch still does not say whether it holds a tumour. The paste marks its box
in the training target (label + PASTED) and the partial-label loss annotates the tumour
class voxel-wise inside the box (models/nnunet/losses.py).

Arrays are (C, z, y, x) images and (z, y, x) labels, as nnU-Net preprocesses them; a 2D
patch (C, y, x) receives one axial slice of a CTO. `rng` is anything with numpy's
`choice` and `random` (np.random itself in nnU-Net's data loaders, so that a seeded
training stays deterministic).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from hybridlabel.models.attribution import attribute_component
from hybridlabel.models.components import component_box, find_components

EXAMPLES_FILE = "cutmix_examples.npz"  # pasted patches a training kept, beside its checkpoint
PASTED = 1000  # offset of a training target's values inside a pasted box (int16 holds it)


@dataclass(frozen=True)
class TumorObject:
    image: np.ndarray  # (C, z, y, x) float32, the training data's intensities
    label: np.ndarray  # (z, y, x) int16, the donor's training label (no negative values)
    record: dict  # case, tumour voxels, box in the donor, host organ


def _margin(rng, low_mm: float, high_mm: float, spacing: float) -> int:
    return int(round((low_mm + rng.random() * (high_mm - low_mm)) / spacing))


def cut_objects(
    case_id: str,
    image: np.ndarray,
    seg: np.ndarray,
    tumor_id: int,
    organ_ids,
    spacing,
    margins,
    min_voxels: int,
    host_organs,
    attribution_mm: float,
    rng,
) -> list[TumorObject]:
    """The CTOs of one donor case: each tumour component of `seg` of at least `min_voxels`
    (and attributed to one of `host_organs`, when given), cropped with a margin drawn per
    object from `margins` ((z min, z max), (in-plane min, in-plane max), mm; `spacing` is
    the training data's, (z, y, x) mm)."""
    label = np.where(seg < 0, 0, seg).astype(np.int16)  # nnU-Net's -1 (outside the body crop) is background
    comps = find_components(label.astype(np.uint16))
    organs = np.zeros(int(label.max()) + 1, dtype=np.int16)
    organs[[c for c in organ_ids if c < len(organs)]] = [c for c in organ_ids if c < len(organs)]

    def organ_map_in(box):
        return organs[label[box]]

    objects = []
    for cid in comps.ids_of(tumor_id):
        if comps.voxels[cid] < min_voxels:
            continue
        host = attribute_component(comps, int(cid), organ_map_in, spacing, attribution_mm, len(organs), label.shape)
        if host_organs is not None and host["organ"] not in host_organs:
            continue
        (z_lo, z_hi), (p_lo, p_hi) = margins
        pads = (
            _margin(rng, z_lo, z_hi, spacing[0]),
            _margin(rng, p_lo, p_hi, spacing[1]),
            _margin(rng, p_lo, p_hi, spacing[2]),
        )
        box = tuple(
            slice(max(0, b.start - p), min(n, b.stop + p))
            for b, p, n in zip(component_box(comps, int(cid)), pads, label.shape)
        )
        crop = label[box].copy()
        objects.append(
            TumorObject(
                np.ascontiguousarray(image[(slice(None), *box)], dtype=np.float32),
                crop,
                {
                    "case_id": case_id,
                    "voxels": int(comps.voxels[cid]),
                    "host_organ": host["organ"],
                    "box": [[b.start, b.stop] for b in box],
                    "shape": [b.stop - b.start for b in box],
                    "tumor_slices": np.flatnonzero((crop == tumor_id).any(axis=(1, 2))).tolist(),
                },
            )
        )
    return objects


def paste_centre(seg: np.ndarray, host, organ_ids, rng, placement: str) -> tuple[int, ...] | None:
    """A voxel of the patch to centre a paste on: one of the CTO's host organ when the patch
    shows it, else (`placement` any_organ, or a tumour outside every organ) one of any
    organ; None when there is none."""
    hosted = [[host]] if isinstance(host, int) else []
    for wanted in hosted + ([list(organ_ids)] if placement == "any_organ" or not hosted else []):
        where = np.flatnonzero(np.isin(seg, wanted))
        if where.size:
            return tuple(int(i) for i in np.unravel_index(where[rng.choice(where.size)], seg.shape))
    return None


def paste(image: np.ndarray, seg: np.ndarray, obj: TumorObject, centre: tuple[int, ...], rng) -> tuple[slice, ...]:
    """Paste `obj` into the patch in place, its centre on `centre`, clipped to the patch.
    The box's target values become label + PASTED. A 2D patch gets one axial slice of
    the object, drawn among those that hold tumour. Returns the box in the patch."""
    obj_image, obj_label = obj.image, obj.label
    if seg.ndim == 2:
        slices = obj.record["tumor_slices"]
        z = int(slices[rng.choice(len(slices))])
        obj_image, obj_label = obj_image[:, z], obj_label[z]
    dst, src = [], []
    for c, size, n in zip(centre, obj_label.shape, seg.shape):
        lo = c - size // 2
        a, b = max(0, lo), min(n, lo + size)
        dst.append(slice(a, b))
        src.append(slice(a - lo, b - lo))
    dst, src = tuple(dst), tuple(src)
    image[(slice(None), *dst)] = obj_image[(slice(None), *src)]
    seg[dst] = obj_label[src] + PASTED
    return dst


def paste_random(
    image: np.ndarray, seg: np.ndarray, pool: list[TumorObject], organ_ids, rng, placement: str
) -> dict | None:
    """One CTO drawn from `pool`, pasted into the patch at a centre inside an organ (its
    host organ only, with `placement` host_organ); the record of what was pasted where, or
    None when the patch has no such place."""
    index = int(rng.choice(len(pool)))
    obj = pool[index]
    centre = paste_centre(seg, obj.record["host_organ"], organ_ids, rng, placement)
    if centre is None:
        return None
    box = paste(image, seg, obj, centre, rng)
    return {"object": index, "case_id": obj.record["case_id"], "box": [[b.start, b.stop] for b in box]}


def pool_arrays(objects: list[TumorObject], tumor_id: int) -> dict[str, np.ndarray]:
    """A pool as plain arrays (np.savez; read back without unpickling anything)."""
    arrays = {"records": np.array(json.dumps({"tumor_id": int(tumor_id), "objects": [o.record for o in objects]}))}
    for i, o in enumerate(objects):
        arrays[f"image_{i}"], arrays[f"label_{i}"] = o.image, o.label
    return arrays


def pool_from_arrays(arrays) -> tuple[list[TumorObject], int]:
    """The pool and its tumour id from `pool_arrays`' arrays (an np.load of the file)."""
    meta = json.loads(str(arrays["records"]))
    return (
        [
            TumorObject(np.asarray(arrays[f"image_{i}"], dtype=np.float32), np.asarray(arrays[f"label_{i}"]), r)
            for i, r in enumerate(meta["objects"])
        ],
        int(meta["tumor_id"]),
    )
