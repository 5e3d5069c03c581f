"""FLARE23 metrics of one FLARE-size case (512 x 512 x N, 13 organs + tumour).

Prints, in one run: our `score_case` against FLARE's evaluation loop run with DeepMind's
`surface-distance` package (per class on the full volume, as the challenge's script does),
the time ratio, and the largest DSC / NSD difference (must be < 1e-3).

Usage: python benchmarks/bench_metrics.py [--slices 100]   (needs `pip install -e '.[test]'`)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybridlabel.models.labels import FLARE23_LABELS, FLARE23_NSD_TOLERANCE_MM  # noqa: E402
from hybridlabel.models.metrics import MetricRules, score_case  # noqa: E402
from hybridlabel.models.phantom import generate_phantom  # noqa: E402

RULES = MetricRules(
    {c: n for c, n in FLARE23_LABELS.items() if c}, dict(FLARE23_NSD_TOLERANCE_MM), frozenset({5, 6, 10})
)


def flare_reference(pred, gt, spacing) -> dict[int, tuple[float, float]]:
    """The challenge's loop: full-volume masks per class, DeepMind's functions."""
    from surface_distance import metrics as dm

    np.Inf = np.inf  # the 0.1 release predates numpy 2
    out = {}
    for cls in RULES.classes:
        g, p = gt == cls, pred == cls
        if g.sum() == 0 and p.sum() == 0:
            out[cls] = (1.0, 1.0)
        elif g.sum() == 0 or p.sum() == 0:
            out[cls] = (0.0, 0.0)
        else:
            if cls in RULES.labeled_slices_only:
                zs = np.flatnonzero(g.any(axis=(1, 2)))
                g, p = g[zs[0] : zs[-1] + 1], p[zs[0] : zs[-1] + 1]
            sd = dm.compute_surface_distances(g, p, spacing)
            out[cls] = (
                dm.compute_dice_coefficient(g, p),
                dm.compute_surface_dice_at_tolerance(sd, RULES.tolerances[cls]),
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    args = parser.parse_args()
    case = generate_phantom(np.random.default_rng(0), size="flare", shape=(args.slices, 512, 512))
    gt = case.label
    pred = np.roll(gt, (1, 2, -2), axis=(0, 1, 2))  # a plausible, imperfect prediction
    spacing = case.spacing
    print(f"case {gt.shape} spacing {spacing} mm, classes present: {sorted(int(c) for c in np.unique(gt) if c)}")

    t = time.perf_counter()
    ours = {r["class_id"]: (r["dsc"], r["nsd"]) for r in score_case(pred, gt, spacing, RULES)}
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    ref = flare_reference(pred, gt, spacing)
    t_ref = time.perf_counter() - t
    diff = max(max(abs(ours[c][0] - ref[c][0]), abs(ours[c][1] - ref[c][1])) for c in ref)
    print(f"ours (score_case)            {t_ours:7.2f} s")
    print(f"FLARE loop + surface-distance {t_ref:7.2f} s")
    print(f"ratio {t_ref / t_ours:.1f}x faster; largest DSC/NSD difference {diff:.2e} (goal < 1e-3)")


if __name__ == "__main__":
    main()
