"""Which pseudo labels a human should look at first (pure): per case and class, the
evidence that a hybrid label is wrong, and the ranking a review queue is drawn from.

Nobody reviews 4,000 CTs; AbdomenAtlas ranked its cases for review by model uncertainty
and anatomical conflicts and sent the top few percent per structure to radiologists. The
signals here, each 0..1 for one pseudo-labelled class of one case:

- `uncertainty`: the case's entropy (organs or tumour) as a percentile among the ranked
  cases: what selection already trusts;
- `volume`: how far the class's volume lies outside what the ground truth's labels of
  that class span, beyond a tolerance of 25 % (log2 units, capped at 1);
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

A class's score is the weighted sum of its signals (weights in the config, all 1 by
default: on the demo's rounds, uncertainty at half the weight of the others correlated
worse with the labels' error, rho 0.42-0.49 against 0.55-0.58; benchmarks/bench_review.py);
a case's score is the mean of its classes'.
A flag that fires for most cases of a round (the model never learned the left adrenal;
three reference labels never showed two organs touching) says nothing about which case is
wrong: it is damped, and said once for the round instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

SIGNALS = ("uncertainty", "volume", "missing", "pieces", "adjacency", "gt_conflict", "gt_disagreement")
DEFAULT_WEIGHTS = dict.fromkeys(SIGNALS, 1.0)
# a handful of ground-truth labels spans less than a population does: a volume counts as
# outside their range only beyond this tolerance (log2 units: 0.32 = 25 % on either side)
VOLUME_TOLERANCE = 0.32
MISSING_SHARE = 0.9  # a class held by at least this share of ground-truth labels is expected in every case
CONFLICT_FULL = 0.1  # a conflict of this share of the class's predicted voxels counts fully
MAX_CHECK = 5  # classes a worklist row asks to check (the worst first)


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


def gt_evidence(
    prediction: np.ndarray, gt: np.ndarray, annotated: Iterable[int]
) -> tuple[dict[int, float], float | None]:
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


def review_reference(
    gt_stats: Iterable[Mapping[int, Mapping]],
    gt_pairs: Iterable[Iterable[tuple[int, int]]],
    annotated: Iterable[Iterable[int]],
) -> dict:
    """What ground truth looks like: per class its volume range (ml), most pieces and the
    share of the labels annotating it that hold it; the class pairs that touch."""
    classes: dict[int, dict] = {}
    observable: set[tuple[int, int]] = set()  # pairs one label annotates both of: their contact is known
    for stats, covered in zip(gt_stats, annotated):
        covered = sorted(int(c) for c in covered)
        observable.update((a, b) for i, a in enumerate(covered) for b in covered[i + 1 :])
        for c in covered:
            r = classes.setdefault(int(c), {"volume_ml": None, "max_components": 0, "labels": 0, "held": 0})
            r["labels"] += 1
            s = stats.get(int(c))
            if s is None:
                continue
            r["held"] += 1
            v = s["volume_ml"]
            r["volume_ml"] = (
                [v, v] if r["volume_ml"] is None else [min(r["volume_ml"][0], v), max(r["volume_ml"][1], v)]
            )
            r["max_components"] = max(r["max_components"], int(s["components"]))
    pairs = set()
    for found in gt_pairs:
        pairs.update((int(a), int(b)) for a, b in found)
    return {"classes": classes, "pairs": pairs, "observable": observable}


def class_signals(
    c: int,
    stats: Mapping[int, Mapping],
    pairs: set[tuple[int, int]],
    reference: Mapping,
    uncertainty: float,
    conflict: Mapping[int, float],
    disagreement: float | None,
    names: Mapping[int, str],
) -> tuple[dict[str, float], list[str]]:
    """The signals of one pseudo-labelled class of one case, and a short reason for each
    that fired, by signal (uncertainty is a rank, not a reason)."""
    name = names.get(c, f"class {c}")
    ref = reference["classes"].get(c)
    s = stats.get(c)
    signals = dict.fromkeys(SIGNALS, 0.0)
    signals["uncertainty"] = uncertainty
    why: dict[str, str] = {}
    if ref is not None and ref["volume_ml"] is not None:
        lo, hi = ref["volume_ml"]
        if s is None:
            if ref["held"] >= MISSING_SHARE * ref["labels"]:
                signals["missing"] = 1.0
                why["missing"] = f"{name} missing (in {ref['held']}/{ref['labels']} ground-truth labels)"
        else:
            v = s["volume_ml"]
            beyond = max(math.log2(lo / v) if v < lo else 0.0, math.log2(v / hi) if v > hi else 0.0)
            beyond -= VOLUME_TOLERANCE
            if beyond > 0:
                signals["volume"] = min(1.0, beyond)
                why["volume"] = f"{name} {v:.3g} ml, outside ground truth's {lo:.3g}-{hi:.3g} ml"
            if s["components"] > max(1, ref["max_components"]):
                signals["pieces"] = 1.0
                why["pieces"] = (
                    f"{name} in {s['components']} pieces (ground truth: at most {max(1, ref['max_components'])})"
                )
    if s is not None:
        strange = sorted(
            b if a == c else a
            for a, b in pairs
            if c in (a, b) and (a, b) not in reference["pairs"] and (a, b) in reference["observable"]
        )
        if strange:
            signals["adjacency"] = 1.0
            why["adjacency"] = (
                f"{name} touches {', '.join(names.get(o, str(o)) for o in strange[:3])} (never in ground truth)"
            )
    share = conflict.get(c, 0.0)
    if share > 0:
        signals["gt_conflict"] = min(1.0, share / CONFLICT_FULL)
        if share >= 0.01:
            why["gt_conflict"] = f"{name}: {share:.0%} of its prediction on another ground-truth class"
    if disagreement is not None:  # of the case, not of the class: said once per case (rank_cases)
        signals["gt_disagreement"] = float(disagreement)
    return signals, why


def class_score(
    signals: Mapping[str, float], weights: Mapping[str, float], damping: Mapping[str, float] | None = None
) -> float:
    """The weighted sum of the signals (each times its damping): independent reasons add up."""
    damping = damping or {}
    return sum(weights.get(k, 0.0) * signals[k] * damping.get(k, 1.0) for k in SIGNALS)


def percentiles(values: Mapping[str, float]) -> dict[str, float]:
    """Each key's rank among the values, 0 (lowest) .. 1 (highest); ties share a rank."""
    if not values:
        return {}
    ordered = sorted(set(values.values()))
    top = max(1, len(ordered) - 1)
    return {k: ordered.index(v) / top for k, v in values.items()}


# a flag that fires for most cases is the model's gap (a class it never learned, a contact
# its few references never showed), not a sign of which case is wrong: above half the
# cases its weight falls linearly to 0 at all of them, and it is said once for the round
DAMPED = ("volume", "missing", "pieces", "adjacency", "gt_conflict")


def _damping(fired: Mapping[tuple[str, int], int], seen: Mapping[int, int]) -> dict[tuple[str, int], float]:
    return {(sig, c): min(1.0, 2.0 * (1.0 - n / seen[c])) for (sig, c), n in fired.items()}


def rank_cases(
    cases: list[Mapping],
    reference: Mapping,
    weights: Mapping[str, float],
    names: Mapping[int, str],
    tumor_id: int,
    classes: Iterable[int] | None = None,
) -> tuple[list[dict], list[str]]:
    """The review ranking, worst first, and the round's systematic findings. Each case:
    {case_id, pseudo: [classes with a pseudo label], stats, pairs, scores (the round's
    uncertainty scores), conflict, disagreement}. A case's score is the mean of its classes'
    (the error a reviewer of the whole case would fix); each row: rank, score, the classes
    to check (those with a reason, else the worst), why, and every class's score."""
    only = set(classes) if classes is not None else None
    organ_u = percentiles({c["case_id"]: float(c["scores"].get("organ_entropy", 0.0)) for c in cases})
    tumor_u = percentiles({c["case_id"]: float(c["scores"].get("tumor_entropy", 0.0)) for c in cases})
    found: dict[str, dict[int, tuple[dict, dict]]] = {}
    fired: dict[tuple[str, int], int] = {}
    seen: dict[int, int] = {}
    for case in cases:
        for c in sorted(int(x) for x in case["pseudo"]):
            if only is not None and c not in only:
                continue
            u = (tumor_u if c == tumor_id else organ_u)[case["case_id"]]
            signals, why = class_signals(
                c, case["stats"], case["pairs"], reference, u, case["conflict"], case["disagreement"], names
            )
            found.setdefault(case["case_id"], {})[c] = (signals, why)
            seen[c] = seen.get(c, 0) + 1
            for sig in DAMPED:
                if signals[sig] > 0:
                    fired[(sig, c)] = fired.get((sig, c), 0) + 1
    damping = _damping(fired, seen)
    cases_by_id = {c["case_id"]: c for c in cases}
    findings = [
        f"{names.get(c, str(c))}: {sig} flagged in {fired[(sig, c)]} of {seen[c]} cases (the model's gap: "
        f"look at the class, not at single cases)"
        for (sig, c), d in sorted(damping.items())
        if d <= 0.5
    ]
    rows = []
    for case_id, per in found.items():
        per_class, reasons = {}, {}
        for c, (signals, why) in per.items():
            damp = {sig: damping.get((sig, c), 1.0) for sig in DAMPED}
            per_class[c] = round(class_score(signals, weights, damp), 4)
            reasons[c] = [text for sig, text in why.items() if damp.get(sig, 1.0) > 0.5 and weights.get(sig, 0.0) > 0]
        flagged = [c for c in per_class if reasons[c]]
        check = sorted(flagged, key=lambda c: -per_class[c])[:MAX_CHECK] or [max(per_class, key=per_class.get)]
        why = list(dict.fromkeys(r for c in check for r in reasons[c]))
        disagreement = cases_by_id[case_id]["disagreement"]
        if disagreement is not None and disagreement >= 0.2 and weights.get("gt_disagreement", 0.0) > 0:
            why.insert(0, f"the prediction scored {1 - disagreement:.2f} Dice on this case's own ground truth")
        rows.append(
            {
                "case_id": case_id,
                "score": round(sum(per_class.values()) / len(per_class), 4),
                "worst": max(per_class.values()),
                "classes": check,
                "class_names": [names.get(c, str(c)) for c in check],
                "why": "; ".join(why) if why else "most uncertain",
                "class_scores": per_class,
            }
        )
    rows.sort(key=lambda r: (-r["score"], -r["worst"], r["case_id"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows, findings


def top_of(rows: list[dict], top: int | None, fraction: float | None) -> list[dict]:
    """The first `top` rows, or the first `fraction` of them (at least one)."""
    if top is not None:
        return rows[:top]
    if fraction is not None:
        return rows[: max(1, math.ceil(fraction * len(rows)))] if rows else []
    return rows
