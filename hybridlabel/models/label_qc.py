"""Plausibility of a predicted label map against what the model's training labels looked
like (pure).

A model that works on its val cases can still fail on one scan (another scanner, a
field of view it never saw, metal) and paint an organ over half the body: the demo's
early model labelled the IVC on 69 % of a real CT's voxels and nothing said so. The
export records, per class, the volume range and the most connected components seen in
the training labels; `predict` compares every output with them and flags a class that
is far larger than any training example, broken into many more pieces, or one the
training labels never held. Smaller than seen is not flagged: a scan that ends
mid-organ legitimately holds a sliver of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cc3d
import numpy as np

VOLUME_MARGIN = 2.0  # a class may be this many times the largest training volume before it is flagged
COMPONENT_SLACK = 3  # and hold this many more components than any training label (plus double)


def label_stats(label: np.ndarray, spacing_zyx: Iterable[float]) -> dict[int, dict]:
    """Per foreground class: volume (ml) and number of 26-connected components."""
    voxel_ml = float(np.prod([float(s) for s in spacing_zyx])) / 1000.0
    if not label.flags.writeable:  # cc3d takes writable buffers only (SimpleITK's array views are not)
        label = label.copy()
    counts = np.bincount(label.ravel(), minlength=1)
    components, n = cc3d.connected_components(label, connectivity=26, return_N=True)
    # each component lies in one class: the class of any of its voxels names it
    component_class = np.zeros(n + 1, dtype=label.dtype)
    component_class[components.ravel()] = label.ravel()
    per_class = np.bincount(component_class[1:], minlength=len(counts))
    return {
        c: {"volume_ml": round(float(counts[c]) * voxel_ml, 3), "components": int(per_class[c])}
        for c in range(1, len(counts))
        if counts[c]
    }


def qc_reference(stats: Iterable[Mapping[int, Mapping]]) -> dict[str, dict]:
    """What the training labels looked like: per class, the volume range (ml), the most
    components in one case, and in how many cases it occurs."""
    ref: dict[int, dict] = {}
    for case in stats:
        for c, s in case.items():
            r = ref.setdefault(int(c), {"volume_ml": [s["volume_ml"], s["volume_ml"]], "max_components": 0, "cases": 0})
            r["volume_ml"] = [min(r["volume_ml"][0], s["volume_ml"]), max(r["volume_ml"][1], s["volume_ml"])]
            r["max_components"] = max(r["max_components"], int(s["components"]))
            r["cases"] += 1
    return {str(c): ref[c] for c in sorted(ref)}


def qc_flags(stats: Mapping[int, Mapping], reference: Mapping[str, Mapping], names: Mapping[int, str]) -> list[str]:
    """One short reason per implausible class of a prediction (empty: nothing to flag)."""
    flags = []
    for c, s in sorted(stats.items()):
        name = names.get(int(c), f"class {c}")
        ref = reference.get(str(c))
        if ref is None:
            flags.append(f"{name}: present, but in no training label")
            continue
        largest = ref["volume_ml"][1]
        if s["volume_ml"] > VOLUME_MARGIN * largest:
            flags.append(
                f"{name}: {s['volume_ml']:.3g} ml, {s['volume_ml'] / largest:.1f}x the largest training "
                f"volume ({largest:.3g} ml)"
            )
        allowed = 2 * ref["max_components"] + COMPONENT_SLACK
        if s["components"] > allowed:
            flags.append(f"{name}: {s['components']} pieces, at most {ref['max_components']} in training labels")
    return flags
