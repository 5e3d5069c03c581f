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


def case_probabilities(cases: Sequence[str], annotated: Mapping[str, Sequence[int]],
                       threshold: float | None) -> list[float] | None:
    """Sampling probability of each of `cases` (in order), or None for uniform: no
    threshold, or no case with annotations recorded (a naive-loss round)."""
    if threshold is None or not cases or not any(str(c) in annotated for c in cases):
        return None
    classes = {str(c): {int(k) for k in annotated.get(str(c)) or () if int(k)} for c in cases}
    share = {}
    for held in classes.values():
        for k in held:
            share[k] = share.get(k, 0) + 1 / len(cases)
    factor = {k: max(1.0, threshold / f) for k, f in share.items()}
    weights = [max((factor[k] for k in classes[str(c)]), default=1.0) for c in cases]
    total = sum(weights)
    return [w / total for w in weights]
