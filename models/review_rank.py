"""Which pseudo labels a human should look at first (pure): per case and class, the
evidence that a hybrid label is wrong, and the ranking a review queue is drawn from.

Nobody reviews 4,000 CTs; AbdomenAtlas ranked its cases for review by model uncertainty
and anatomical conflicts and sent the top few percent per structure to radiologists. The
signals here, each 0..1 for one pseudo-labelled class of one case:

- `uncertainty`: the case's entropy (organs or tumour) as a percentile among the ranked
  cases: what selection already trusts;
- `volume`: how far the class's volume lies outside what the ground truth's labels of
  that class span (log2 units beyond the range, capped at 1);
- `missing`: a class that nearly every ground-truth label holds is absent;
- `pieces`: more connected components than any ground-truth label of the class had;
- `adjacency`: the class touches a class it never touches in the ground truth;
- `gt_conflict`: the parent's prediction put the class on voxels the case's own ground
  truth gives to another class (the border with a ground-truth class is wrong there,
  so the pseudo label beside it likely is too);
- `gt_disagreement`: how badly the parent's prediction matched this case's ground-truth
  classes (1 - their mean Dice): where the model is measurably wrong on a case, its
  pseudo labels of the other classes are suspect too (a scanner or anatomy it has not
  learned).

A class's score is the weighted sum of its signals (weights in the config: by default an
anatomical conflict counts twice the top uncertainty, since a missing organ is wrong for
certain and an uncertain one only perhaps); a case's score is its worst class's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

SIGNALS = ("uncertainty", "volume", "missing", "pieces", "adjacency", "gt_conflict", "gt_disagreement")
DEFAULT_WEIGHTS = {**dict.fromkeys(SIGNALS, 1.0), "uncertainty": 0.5}
MISSING_SHARE = 0.9  # a class held by at least this share of ground-truth labels is expected in every case
CONFLICT_FULL = 0.1  # a conflict of this share of the class's predicted voxels counts fully


def touching_pairs(label: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of classes (a < b, background excluded) that share a face somewhere."""
    pairs: set[tuple[int, int]] = set()
    for axis in range(label.ndim):
        lo = np.take(label, range(label.shape[axis] - 1), axis=axis).ravel()
        hi = np.take(label, range(1, label.shape[axis]), axis=axis).ravel()
        border = (lo != hi) & (lo > 0) & (hi > 0)
        if border.any():
            a, b = np.minimum(lo[border], hi[border]), np.maximum(lo[border], hi[border])
            pairs.update(zip(a.tolist(), b.tolist()))
    return pairs


def gt_evidence(prediction: np.ndarray, gt: np.ndarray, annotated: Iterable[int]) -> tuple[dict[int, float], float | None]:
    """Where a case has ground truth: per predicted class, the share of its predicted voxels
    that the ground truth gives to another annotated class; and 1 - the prediction's mean
    Dice over the annotated classes the ground truth holds (None: nothing to compare)."""
    annotated = sorted(int(c) for c in annotated)
    if not annotated:
        return {}, None
    known = np.isin(gt, annotated)
    conflict: dict[int, float] = {}
    for c in np.unique(prediction[prediction > 0]).tolist():
        mask = prediction == c
        wrong = mask & known & (gt != c) & (gt > 0)
        conflict[int(c)] = float(np.count_nonzero(wrong)) / float(np.count_nonzero(mask))
    dice = []
    for c in annotated:
        g, p = gt == c, prediction == c
        n = int(np.count_nonzero(g))
        if n:
            dice.append(2.0 * np.count_nonzero(g & p) / (n + int(np.count_nonzero(p))))
    return conflict, (1.0 - float(np.mean(dice))) if dice else None


def review_reference(gt_stats: Iterable[Mapping[int, Mapping]], gt_pairs: Iterable[Iterable[tuple[int, int]]],
                     annotated: Iterable[Iterable[int]]) -> dict:
    """What ground truth looks like: per class its volume range (ml), most pieces and the
    share of the labels annotating it that hold it; the class pairs that touch."""
    classes: dict[int, dict] = {}
    observable: set[tuple[int, int]] = set()  # pairs one label annotates both of: their contact is known
    for stats, covered in zip(gt_stats, annotated):
        covered = sorted(int(c) for c in covered)
        observable.update((a, b) for i, a in enumerate(covered) for b in covered[i + 1:])
        for c in covered:
            r = classes.setdefault(int(c), {"volume_ml": None, "max_components": 0, "labels": 0, "held": 0})
            r["labels"] += 1
            s = stats.get(int(c))
            if s is None:
                continue
            r["held"] += 1
            v = s["volume_ml"]
            r["volume_ml"] = [v, v] if r["volume_ml"] is None else [min(r["volume_ml"][0], v), max(r["volume_ml"][1], v)]
            r["max_components"] = max(r["max_components"], int(s["components"]))
    pairs = set()
    for found in gt_pairs:
        pairs.update((int(a), int(b)) for a, b in found)
    return {"classes": classes, "pairs": pairs, "observable": observable}


def class_signals(c: int, stats: Mapping[int, Mapping], pairs: set[tuple[int, int]], reference: Mapping,
                  uncertainty: float, conflict: Mapping[int, float], disagreement: float | None,
                  names: Mapping[int, str]) -> tuple[dict[str, float], list[str]]:
    """The signals of one pseudo-labelled class of one case, and a short reason for each
    that fired (uncertainty is a rank, not a reason)."""
    name = names.get(c, f"class {c}")
    ref = reference["classes"].get(c)
    s = stats.get(c)
    signals = dict.fromkeys(SIGNALS, 0.0)
    signals["uncertainty"] = uncertainty
    why: list[str] = []
    if ref is not None and ref["volume_ml"] is not None:
        lo, hi = ref["volume_ml"]
        if s is None:
            if ref["held"] >= MISSING_SHARE * ref["labels"]:
                signals["missing"] = 1.0
                why.append(f"{name} missing (in {ref['held']}/{ref['labels']} ground-truth labels)")
        else:
            v = s["volume_ml"]
            beyond = max(math.log2(lo / v) if v < lo else 0.0, math.log2(v / hi) if v > hi else 0.0)
            if beyond > 0:
                signals["volume"] = min(1.0, beyond)
                why.append(f"{name} {v:.3g} ml, outside ground truth's {lo:.3g}-{hi:.3g} ml")
            if s["components"] > max(1, ref["max_components"]):
                signals["pieces"] = 1.0
                why.append(f"{name} in {s['components']} pieces (ground truth: at most {max(1, ref['max_components'])})")
    if s is not None:
        strange = sorted(b if a == c else a for a, b in pairs if c in (a, b) and (a, b) not in reference["pairs"]
                         and (a, b) in reference["observable"])
        if strange:
            signals["adjacency"] = 1.0
            why.append(f"{name} touches {', '.join(names.get(o, str(o)) for o in strange[:3])} (never in ground truth)")
    share = conflict.get(c, 0.0)
    if share > 0:
        signals["gt_conflict"] = min(1.0, share / CONFLICT_FULL)
        if share >= 0.01:
            why.append(f"{name}: {share:.0%} of its prediction on another ground-truth class")
    if disagreement is not None:
        signals["gt_disagreement"] = float(disagreement)
        if disagreement >= 0.2:
            why.append(f"prediction {1 - disagreement:.2f} Dice on this case's ground truth")
    return signals, why


def class_score(signals: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The weighted sum of the signals: independent reasons add up."""
    return sum(weights.get(k, 0.0) * signals[k] for k in SIGNALS)


def percentiles(values: Mapping[str, float]) -> dict[str, float]:
    """Each key's rank among the values, 0 (lowest) .. 1 (highest); ties share a rank."""
    if not values:
        return {}
    ordered = sorted(set(values.values()))
    top = max(1, len(ordered) - 1)
    return {k: ordered.index(v) / top for k, v in values.items()}


def rank_cases(cases: list[Mapping], reference: Mapping, weights: Mapping[str, float], names: Mapping[int, str],
               tumor_id: int, classes: Iterable[int] | None = None) -> list[dict]:
    """The review ranking, worst first. Each case: {case_id, pseudo: [classes with a pseudo
    label], stats, pairs, scores (the round's uncertainty scores), conflict, disagreement}.
    Returns per case: rank, score, the classes to check (those with a reason, else the
    worst), why, and every class's score."""
    only = set(classes) if classes is not None else None
    organ_u = percentiles({c["case_id"]: float(c["scores"].get("organ_entropy", 0.0)) for c in cases})
    tumor_u = percentiles({c["case_id"]: float(c["scores"].get("tumor_entropy", 0.0)) for c in cases})
    rows = []
    for case in cases:
        per_class, reasons = {}, {}
        for c in sorted(int(x) for x in case["pseudo"]):
            if only is not None and c not in only:
                continue
            u = (tumor_u if c == tumor_id else organ_u)[case["case_id"]]
            signals, why = class_signals(c, case["stats"], case["pairs"], reference, u, case["conflict"],
                                         case["disagreement"], names)
            per_class[c] = round(class_score(signals, weights), 4)
            reasons[c] = why
        if not per_class:
            continue
        flagged = [c for c in per_class if reasons[c]]
        check = sorted(flagged, key=lambda c: -per_class[c]) or [max(per_class, key=per_class.get)]
        why = list(dict.fromkeys(r for c in check for r in reasons[c]))
        rows.append({"case_id": case["case_id"], "score": max(per_class.values()),
                     "total": round(sum(per_class.values()), 4), "classes": check,
                     "class_names": [names.get(c, str(c)) for c in check],
                     "why": "; ".join(why) if why else "most uncertain", "class_scores": per_class})
    rows.sort(key=lambda r: (-r["score"], -r["total"], r["case_id"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def top_of(rows: list[dict], top: int | None, fraction: float | None) -> list[dict]:
    """The first `top` rows, or the first `fraction` of them (at least one)."""
    if top is not None:
        return rows[:top]
    if fraction is not None:
        return rows[:max(1, math.ceil(fraction * len(rows)))] if rows else []
    return rows
