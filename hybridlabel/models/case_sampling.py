"""How often a student sees each training case (pure): repeat-factor sampling by the
rarest class a case annotates (Gupta et al., LVIS, CVPR 2019), over the classes each
case's loss counts as annotated.

With partial labels a class can be annotated in few cases: the adrenals in the strong
cases only, once their pseudo labels are distrusted (models/pseudo_trust.py). Sampled
uniformly, a student of 3 strong and 12 partial cases sees that class in a fifth of its
batches, and on the converged phantom ablation it never learned it (val Dice 0.70 ->
0.0, where the teacher saw it in every batch). A class annotated in a fraction f of the
cases gets the repeat factor r = max(1, t / f); a case is drawn in proportion to the
largest factor among its classes, so a class in a fifth of the cases is drawn as if in
about half (t = 1). The teacher, whose cases all annotate everything, samples uniformly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def class_factors(cases: Sequence[str], annotated: Mapping[str, Sequence[int]], threshold: float) -> dict[int, float]:
    """Repeat factor r = max(1, t / f) of each class the cases' losses annotate, f being the
    share of `cases` that annotate it."""
    counts: dict[int, int] = {}
    for c in cases:
        for k in {int(k) for k in annotated.get(str(c)) or () if int(k)}:
            counts[k] = counts.get(k, 0) + 1
    return {k: max(1.0, threshold * len(cases) / n) for k, n in counts.items()}


def case_probabilities(
    cases: Sequence[str], annotated: Mapping[str, Sequence[int]], threshold: float | None
) -> list[float] | None:
    """Sampling probability of each of `cases` (in order), or None for uniform: no
    threshold, or no case with annotations recorded (a naive-loss round)."""
    if threshold is None or not cases or not any(str(c) in annotated for c in cases):
        return None
    factor = class_factors(cases, annotated, threshold)
    weights = [max((factor[int(k)] for k in annotated.get(str(c)) or () if int(k)), default=1.0) for c in cases]
    total = sum(weights)
    return [w / total for w in weights]


def patch_class_probabilities(
    eligible: Sequence[int], held: Sequence[int] | None, factor: Mapping[int, float]
) -> list[float]:
    """Which class a foreground patch is centred on, among the `eligible` classes present in
    a case: in proportion to its repeat factor where the case's loss annotates it (`held`),
    1 otherwise; uniform, as nnU-Net, when the case's annotations are not recorded. A class
    annotated in a fifth of the cases is then also a larger share of those cases' patches,
    not only of their draws: a student sees the adrenals of 3 strong cases among 15 about
    as often as the teacher that trained on those 3 alone."""
    if not eligible:
        return []
    held_set = None if held is None else {int(k) for k in held}
    weights = [1.0 if held_set is None or int(k) not in held_set else factor.get(int(k), 1.0) for k in eligible]
    total = sum(weights)
    return [w / total for w in weights]
