"""Hybrid label merging of one case (the six merge rules of the design), pure.

Inputs are (z, y, x) arrays: the partial ground truth G with its annotated classes A,
the teacher's argmax P and optionally its per-voxel max probability; spacing in mm in
the same axis order. Work happens inside the bounding box of G and P's foreground;
class decisions are lookup tables indexed by label value, so each rule is one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from models.attribution import EXTRA_ORGAN, attribute_tumors
from models.components import (
    Components, apply_keep, drop_small_components, find_components, foreground_box,
    keep_largest_per_class, near_any,
)
from models.config import LabelMapConfig, MergeConfig

LUT_SIZE = 256


@dataclass
class MergeResult:
    hybrid: np.ndarray  # uint8, image grid
    sources: dict[int, str]  # class id -> gt | pseudo | ignore | none
    tumors: list[dict] = field(default_factory=list)  # attribution records
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # class -> source -> voxels


def _lut(ids: Iterable[int]) -> np.ndarray:
    lut = np.zeros(LUT_SIZE, dtype=bool)
    lut[list(ids)] = True
    return lut


def merge_case(gt: np.ndarray | None, annotated: Iterable[int], pred: np.ndarray, spacing,
               merge: MergeConfig, labels: LabelMapConfig, max_prob: np.ndarray | None = None,
               tumor_selected: bool = True) -> MergeResult:
    """Hybrid label, per-class sources, tumour records and voxel counts of one case."""
    if gt is not None and gt.shape != pred.shape:
        raise ValueError(f"ground truth shape {gt.shape} differs from prediction shape {pred.shape}")
    if max_prob is not None and max_prob.shape != pred.shape:
        raise ValueError(f"probability shape {max_prob.shape} differs from prediction shape {pred.shape}")
    tumor, organs = labels.tumor_id, labels.organ_ids
    ann = set(int(c) for c in annotated) if gt is not None else set()
    all_known = set(labels.labels) - {0} <= ann
    hybrid = np.zeros(pred.shape, dtype=np.uint8)
    gt_mask = np.zeros(pred.shape, dtype=bool)  # voxels whose label comes from G
    box = foreground_box(gt, pred)
    tumors: list[dict] = []
    attributed: set[int] = set()
    pseudo_tumor_kept = False
    if box is not None:
        g = gt[box] if gt is not None else np.zeros(pred[box].shape, dtype=np.uint8)
        p = _postprocess_prediction(pred[box], merge, organs)
        g, g_comps = _clean_gt(g, p, ann, spacing, merge, labels)
        out, from_gt, tumors, attributed, pseudo_tumor_kept = _merge_box(
            g, g_comps, p, ann, spacing, merge, labels, tumor_selected)
        hybrid[box], gt_mask[box] = out, from_gt
    if all_known:
        gt_mask[:] = True  # every class annotated: G's background is known background too
    if merge.min_voxel_confidence is not None and max_prob is not None:
        hybrid[(max_prob < merge.min_voxel_confidence) & ~gt_mask] = labels.ignore_id
    sources = _sources(labels, ann, attributed, merge, tumor_selected, pseudo_tumor_kept)
    return MergeResult(hybrid, sources, tumors, _counts(hybrid, gt_mask, labels))


def _postprocess_prediction(p: np.ndarray, merge: MergeConfig, organs) -> np.ndarray:
    """Rule 2: largest component of each configured organ; tumour is never reduced."""
    classes = [c for c in merge.largest_component_classes if c in organs]
    if not classes or not _lut(classes)[p].any():
        return p
    comps = find_components(p)
    return apply_keep(p, comps, keep_largest_per_class(comps, classes))


def _clean_gt(g, p, ann, spacing, merge: MergeConfig, labels: LabelMapConfig
              ) -> tuple[np.ndarray, Components | None]:
    """Rule 1: drop small G components and G tumours far from every organ."""
    if not g.any():
        return g, None
    comps = find_components(g)
    keep = np.ones(comps.n + 1, dtype=bool)
    if merge.clean_gt:
        keep = drop_small_components(comps, spacing, merge.min_component_mm3)
        tumor_ids = [c for c in comps.ids_of(labels.tumor_id) if keep[c]]
        if tumor_ids:
            organ_lut = _lut(labels.organ_ids)
            organ_mask = (organ_lut[g] & keep[comps.cc]) | organ_lut[p]
            for cid in tumor_ids:
                if not near_any(comps, int(cid), organ_mask, spacing, merge.max_tumor_organ_gap_mm):
                    keep[cid] = False
    cleaned = apply_keep(g, comps, keep)
    comps.classes = np.where(keep, comps.classes, 0)  # dropped components belong to no class
    return cleaned, comps


def _merge_box(g, g_comps, p, ann, spacing, merge: MergeConfig, labels: LabelMapConfig,
               tumor_selected: bool):
    tumor, organs = labels.tumor_id, labels.organ_ids
    n_classes = max(labels.labels) + 2
    unannotated_organs = _lut([c for c in organs if c not in ann])
    tumors: list[dict] = []
    # Rule 3: G tumours against G's organs, and P's unannotated organs elsewhere.
    if tumor in ann and g_comps is not None and (g_comps.classes == tumor).any():
        organ_map = np.where(_lut(organs)[g], g, np.where(unannotated_organs[p], p, 0)).astype(np.uint8)
        tumors = [{**r, "source": "gt", "kept": True}
                  for r in attribute_tumors(g_comps, tumor, organ_map, spacing, merge.attribution_mm, n_classes)]
    attributed = {r["organ"] for r in tumors if r["organ"] != EXTRA_ORGAN}
    # Rule 4: G organs, then pseudo fills (never over other G foreground).
    pseudo_owned = {c for c in attributed if c in ann} if merge.tumor_bearing_organ == "pseudo" else set()
    gt_take = _lut([c for c in organs if c in ann and c not in pseudo_owned])
    out = np.where(gt_take[g], g, 0).astype(np.uint8)
    from_gt = gt_take[g]
    fill = _lut([c for c in organs if c not in ann] + sorted(pseudo_owned))
    fill_here = fill[p] & (out == 0) & ((g == 0) | (g == tumor) | (g == p))
    out[fill_here] = p[fill_here]
    # Rule 5: tumour.
    pseudo_tumor_kept = False
    if tumor in ann:
        is_tumor = g == tumor
        out[is_tumor] = tumor
        from_gt |= is_tumor
    elif (p == tumor).any():
        tumors, pseudo_tumor_kept = _pseudo_tumors(out, g, p, ann, spacing, merge, labels, tumor_selected, n_classes)
    return out, from_gt, tumors, attributed, pseudo_tumor_kept


def _pseudo_tumors(out, g, p, ann, spacing, merge: MergeConfig, labels: LabelMapConfig, selected: bool, n_classes):
    """P's tumour components inside merged organs: kept, or replaced by the fallback."""
    tumor = labels.tumor_id
    comps = find_components(np.where(p == tumor, p, 0).astype(np.uint8))
    organ_map = np.where(_lut(labels.organ_ids)[out], out, 0).astype(np.uint8)
    records = attribute_tumors(comps, tumor, organ_map, spacing, merge.attribution_mm, n_classes)
    free = g == 0  # a pseudo tumour never overwrites G foreground
    kept_any = False
    for rec in records:
        inside_organ = rec["organ"] != EXTRA_ORGAN
        rec.update(source="pseudo", kept=bool(inside_organ and selected))
        if not inside_organ:
            continue  # tumour outside every organ is discarded
        where = (comps.cc == rec["component"]) & free
        if selected:
            out[where] = tumor
            kept_any = True
        elif merge.tumor_fallback == "organ" and rec["organ"] not in ann:
            # an annotated organ is G's alone: where G says "not this organ", so be it
            out[where] = rec["organ"]
        elif merge.tumor_fallback == "ignore":
            out[where] = labels.ignore_id
    return records, kept_any


def _sources(labels: LabelMapConfig, ann, attributed, merge: MergeConfig, selected, pseudo_tumor_kept) -> dict[int, str]:
    sources: dict[int, str] = {0: "gt" if set(labels.labels) - {0} <= ann else "pseudo"}
    for c in labels.organ_ids:
        pseudo_owned = c in attributed and c in ann and merge.tumor_bearing_organ == "pseudo"
        sources[c] = "gt" if c in ann and not pseudo_owned else "pseudo"
    t = labels.tumor_id
    if t in ann:
        sources[t] = "gt"
    elif selected:
        sources[t] = "pseudo"
    else:
        sources[t] = "ignore" if merge.tumor_fallback == "ignore" else "none"
    return sources


def _counts(hybrid: np.ndarray, gt_mask: np.ndarray, labels: LabelMapConfig) -> dict[str, dict[str, int]]:
    """Voxels per class and source, in one bincount over (label, from-G) pairs."""
    pairs = np.bincount((hybrid.ravel().astype(np.int64) << 1) | gt_mask.ravel(), minlength=2 * LUT_SIZE)
    counts: dict[str, dict[str, int]] = {}
    for value in np.flatnonzero(pairs[0::2] + pairs[1::2]):
        name = "ignore" if value == labels.ignore_id else str(int(value))
        counts[name] = {k: int(v) for k, v in (("gt", pairs[2 * value + 1]), ("pseudo", pairs[2 * value])) if v}
    return counts
