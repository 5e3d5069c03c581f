"""Hybrid label merging of one case (the six merge rules of the design), pure.

Inputs are (z, y, x) arrays: the partial ground truth G with its annotated classes A,
the teacher's argmax P and optionally its per-voxel max probability; spacing in mm in
the same axis order. Work happens inside the bounding box of G and P's foreground;
class decisions are lookup tables indexed by label value, so each rule is one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import fastremap
import numpy as np

from hybridlabel.models.attribution import EXTRA_ORGAN, attribute_tumors
from hybridlabel.models.components import (
    Components,
    apply_keep,
    component_box,
    drop_small_components,
    find_components,
    foreground_box,
    keep_largest_per_class,
    near_any,
)
from hybridlabel.models.config import LabelMapConfig, MergeConfig

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


def _values(ids: Iterable[int]) -> np.ndarray:
    """LUT mapping each listed class to itself and everything else to 0."""
    lut = np.zeros(LUT_SIZE, dtype=np.uint8)
    ids = list(ids)
    lut[ids] = ids
    return lut


def merge_case(
    gt: np.ndarray | None,
    annotated: Iterable[int],
    pred: np.ndarray,
    spacing,
    merge: MergeConfig,
    labels: LabelMapConfig,
    max_prob: np.ndarray | None = None,
    tumor_selected: bool = True,
) -> MergeResult:
    """Hybrid label, per-class sources, tumour records and voxel counts of one case."""
    if gt is not None and gt.shape != pred.shape:
        raise ValueError(f"ground truth shape {gt.shape} differs from prediction shape {pred.shape}")
    if max_prob is not None and max_prob.shape != pred.shape:
        raise ValueError(f"probability shape {max_prob.shape} differs from prediction shape {pred.shape}")
    ann = set(int(c) for c in annotated) if gt is not None else set()
    all_known = set(labels.labels) - {0} <= ann
    hybrid = np.zeros(pred.shape, dtype=np.uint8)
    box = foreground_box(gt, pred)
    tumors: list[dict] = []
    attributed: set[int] = set()
    pseudo_tumor_kept = False
    gt_counts: dict[int, int] = {}
    totals: dict[int, int] | None = {}
    gt_box = None
    if box is not None:
        # contiguous copies of the box: every later pass is over these, flat
        # contiguous, writable copies of the box (inputs may be read-only views of images)
        g = np.require(gt[box], requirements=["C", "W"]) if gt is not None else np.zeros(pred[box].shape, np.uint8)
        p = _postprocess_prediction(np.require(pred[box], requirements=["C", "W"]), merge, labels.organ_ids)
        g, g_comps = _clean_gt(g, p, spacing, merge, labels)
        out, gt_box, gt_counts, totals, tumors, attributed, pseudo_tumor_kept = _merge_box(
            g, g_comps, p, ann, spacing, merge, labels, tumor_selected
        )
        hybrid[box] = out
    if merge.min_voxel_confidence is not None and max_prob is not None and not all_known:
        low = max_prob < merge.min_voxel_confidence
        if gt_box is not None:
            low[box] &= ~gt_box  # never G
        hybrid[low] = labels.ignore_id
        totals = None  # rule 6 touched voxels outside the gathered foreground: count anew
    if totals is None:
        values, counts = fastremap.unique(hybrid, return_counts=True)
        totals = {int(v): int(n) for v, n in zip(values, counts)}
    else:
        totals = {**totals, 0: totals.get(0, 0) + hybrid.size - sum(totals.values())}
    sources = _sources(labels, ann, attributed, merge, tumor_selected, pseudo_tumor_kept)
    return MergeResult(hybrid, sources, tumors, _counts(totals, gt_counts, all_known, labels))


def _postprocess_prediction(p: np.ndarray, merge: MergeConfig, organs) -> np.ndarray:
    """Rule 2: largest component of each configured organ; tumour is never reduced."""
    classes = [c for c in merge.largest_component_classes if c in organs]
    if not classes or not p.any():
        return p
    comps = find_components(p, with_boxes=False)
    keep = keep_largest_per_class(comps, classes)
    return apply_keep(p, comps, keep) if not keep.all() else p


def _clean_gt(g, p, spacing, merge: MergeConfig, labels: LabelMapConfig) -> tuple[np.ndarray, Components | None]:
    """Rule 1: drop small G components, then G tumours far from every organ. Returns the
    cleaned G and the components of its tumour (with boxes, for attribution)."""
    gbox = foreground_box(g)
    if gbox is None:
        return g, None
    tumor = labels.tumor_id
    if merge.clean_gt:
        comps = find_components(g, gbox, with_boxes=False)
        keep = drop_small_components(comps, spacing, merge.min_component_mm3)
        if not keep.all():
            g = apply_keep(g, comps, keep)
    is_tumor = (g == tumor).view(np.uint8)
    tbox = foreground_box(is_tumor)
    if tbox is None:
        return g, None
    tumors = find_components(is_tumor, tbox)
    tumors.classes = np.where(tumors.classes > 0, tumor, 0)
    if merge.clean_gt:
        organ_lut = _lut(labels.organ_ids)
        keep = np.ones(tumors.n + 1, dtype=bool)
        for cid in range(1, tumors.n + 1):
            keep[cid] = near_any(
                tumors,
                cid,
                lambda box: organ_lut[g[box]] | organ_lut[p[box]],
                spacing,
                merge.max_tumor_organ_gap_mm,
                g.shape,
            )
        if not keep.all():
            g = apply_keep(g, tumors, keep)
            tumors.classes = np.where(keep, tumors.classes, 0)  # dropped: no class any more
    return g, tumors


def _merge_box(g, g_comps, p, ann, spacing, merge: MergeConfig, labels: LabelMapConfig, tumor_selected: bool):
    tumor, organs = labels.tumor_id, labels.organ_ids
    n_classes = max(labels.labels) + 2
    organ_values = _values(organs)
    unannotated_values = _values([c for c in organs if c not in ann])
    tumors: list[dict] = []
    # Rule 3: G tumours against G's organs, and P's unannotated organs elsewhere.
    if tumor in ann and g_comps is not None and (g_comps.classes == tumor).any():

        def organ_map_in(box):
            sub = organ_values[g[box]]
            return np.where(sub > 0, sub, unannotated_values[p[box]])

        tumors = [
            {**r, "source": "gt", "kept": True}
            for r in attribute_tumors(g_comps, tumor, organ_map_in, spacing, merge.attribution_mm, n_classes, g.shape)
        ]
    attributed = {r["organ"] for r in tumors if r["organ"] != EXTRA_ORGAN}
    # Rule 4 on the foreground voxels only (gathered flat): G organs, then pseudo fills.
    pseudo_owned = {c for c in attributed if c in ann} if merge.tumor_bearing_organ == "pseudo" else set()
    take = _values([c for c in organs if c in ann and c not in pseudo_owned])
    fill = _values([c for c in organs if c not in ann] + sorted(pseudo_owned))
    fg = np.flatnonzero(np.bitwise_or(g, p).ravel())
    gv, pv = g.ravel()[fg], p.ravel()[fg]
    ov = take[gv]
    candidate = fill[pv]
    ok = (ov == 0) & (candidate != 0) & ((gv == 0) | (gv == tumor) | (gv == candidate))
    ov[ok] = candidate[ok]
    from_gt = take[gv] > 0
    if tumor in ann:  # rule 5, annotated tumour: painted last, over everything
        is_tumor = gv == tumor
        ov[is_tumor] = tumor
        from_gt |= is_tumor
    out = np.zeros(g.shape, dtype=np.uint8)
    out.ravel()[fg] = ov
    gt_box = None
    if merge.min_voxel_confidence is not None:  # only rule 6 needs G's voxels as a volume
        gt_box = np.zeros(g.shape, dtype=bool)
        gt_box.ravel()[fg[from_gt]] = True
    gt_values, gt_totals = fastremap.unique(ov[from_gt], return_counts=True) if from_gt.any() else ([], [])
    gt_counts = {int(v): int(n) for v, n in zip(gt_values, gt_totals)}
    pseudo_tumor_kept = False
    if tumor not in ann and (pv == tumor).any():
        tumors, pseudo_tumor_kept = _pseudo_tumors(out, g, p, ann, spacing, merge, labels, tumor_selected, n_classes)
    final_values, final_totals = fastremap.unique(out.ravel()[fg], return_counts=True)
    fg_counts = {int(v): int(n) for v, n in zip(final_values, final_totals)}
    return out, gt_box, gt_counts, fg_counts, tumors, attributed, pseudo_tumor_kept


def _pseudo_tumors(out, g, p, ann, spacing, merge: MergeConfig, labels: LabelMapConfig, selected: bool, n_classes):
    """P's tumour components inside merged organs: kept, or replaced by the fallback."""
    tumor = labels.tumor_id
    is_tumor = (p == tumor).view(np.uint8)
    comps = find_components(is_tumor, foreground_box(is_tumor))
    comps.classes = np.where(comps.classes > 0, tumor, 0)
    organ_values = _values(labels.organ_ids)
    records = attribute_tumors(
        comps, tumor, lambda box: organ_values[out[box]], spacing, merge.attribution_mm, n_classes, out.shape
    )
    kept_any = False
    for rec in records:
        inside_organ = rec["organ"] != EXTRA_ORGAN
        rec.update(source="pseudo", kept=bool(inside_organ and selected))
        if not inside_organ:
            continue  # tumour outside every organ is discarded
        box = component_box(comps, rec["component"])
        where = comps.mask_in(box, rec["component"]) & (g[box] == 0)  # never over G foreground
        if selected:
            out[box][where] = tumor
            kept_any = True
        elif merge.tumor_fallback == "organ" and rec["organ"] not in ann:
            # an annotated organ is G's alone: where G says "not this organ", so be it
            out[box][where] = rec["organ"]
        elif merge.tumor_fallback == "ignore":
            out[box][where] = labels.ignore_id
    return records, kept_any


def _sources(
    labels: LabelMapConfig, ann, attributed, merge: MergeConfig, selected, pseudo_tumor_kept
) -> dict[int, str]:
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


def _counts(
    totals: dict[int, int], gt_counts: dict[int, int], all_known: bool, labels: LabelMapConfig
) -> dict[str, dict[str, int]]:
    """Voxels per class and source. G-sourced counts come from the gathered foreground;
    G's background is known background only when every class is annotated."""
    counts: dict[str, dict[str, int]] = {}
    for value, total in sorted(totals.items()):
        if total == 0:
            continue
        name = "ignore" if value == labels.ignore_id else str(value)
        gt_n = total if (value == 0 and all_known) else gt_counts.get(value, 0)
        counts[name] = {k: v for k, v in (("gt", gt_n), ("pseudo", total - gt_n)) if v}
    return counts
