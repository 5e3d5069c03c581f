"""Predicted tumours the model is nowhere sure of are dropped, pure.

A tumour the network has learned is confident somewhere inside it: its core's tumour
probability is near 1 even where its border is not. The false alarms of our models are
specks (tens to hundreds of mm3, at an organ's edge) whose tumour probability peaks at
0.30-0.84 (docs/benchmarks.md). So a predicted tumour component (26-connected)
whose highest tumour probability is below `min_peak` is given the class the model ranks
next at each of its voxels: an organ where the speck sat in one, background elsewhere.
"""

from __future__ import annotations

import cc3d
import numpy as np


def unsure_tumor_voxels(seg: np.ndarray, tumor_prob: np.ndarray, tumor_id: int, min_peak: float) -> np.ndarray:
    """Boolean mask of the voxels of every tumour component of `seg` whose highest
    `tumor_prob` (same grid, probabilities in [0, 1]) is below `min_peak`."""
    if tumor_prob.shape != seg.shape:
        raise ValueError(f"tumour probability shape {tumor_prob.shape} differs from the label map's {seg.shape}")
    is_tumor = np.ascontiguousarray(seg == tumor_id)
    if not is_tumor.any():
        return is_tumor
    comps, n = cc3d.connected_components(is_tumor, connectivity=26, return_N=True)
    ids = comps[is_tumor]
    peak = np.zeros(n + 1, dtype=np.float32)
    np.maximum.at(peak, ids, tumor_prob[is_tumor].astype(np.float32))
    unsure = peak < min_peak
    unsure[0] = False
    out = np.zeros(seg.shape, dtype=bool)
    out[is_tumor] = unsure[ids]
    return out


def drop_unsure_tumors(
    seg: np.ndarray, probs: np.ndarray, classes: list[int], tumor_id: int, min_peak: float
) -> tuple[np.ndarray, int]:
    """(label map, voxels changed): `seg` (z, y, x) with its unsure tumour components given
    their next-ranked class from `probs` (C, z, y, x), whose channel c is class `classes[c]`."""
    if tumor_id not in classes:
        return seg, 0  # a model without a tumour class
    channel = classes.index(tumor_id)
    drop = unsure_tumor_voxels(seg, probs[channel], tumor_id, min_peak)
    n = int(drop.sum())
    if not n:
        return seg, 0
    rest = probs[:, drop].astype(np.float32)
    rest[channel] = -1.0
    out = seg.copy()
    out[drop] = np.asarray(classes, dtype=seg.dtype)[rest.argmax(axis=0)]
    return out, n
