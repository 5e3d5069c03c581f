"""Held-back classes: a fixed share of a partial case's annotated classes that the
pipeline never merges or trains on, so the pseudo labels of those classes can be
scored against their ground truth without bias (pure)."""

from __future__ import annotations

import hashlib

import numpy as np


def held_out_classes(case_id: str, annotated, fraction: float, seed: int) -> list[int]:
    """The classes of `annotated` held back for this case: round(fraction * n), at most
    n - 1 (a partial case keeps one annotated class). The draw depends only on the seed
    and the case id, so every round holds back the same classes."""
    classes = sorted(int(c) for c in annotated or [])
    n = min(int(fraction * len(classes) + 0.5), len(classes) - 1)
    if fraction <= 0 or n <= 0:
        return []
    digest = hashlib.sha256(f"{seed}:{case_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return sorted(int(c) for c in rng.choice(classes, size=n, replace=False))
