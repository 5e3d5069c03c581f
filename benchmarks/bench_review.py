"""Is the review ranking worth a reviewer's time? A simulated reviewer on finished workdirs
whose cohort has complete ground truth (the phantom's, `simulate-partial`'s).

For each workdir (e.g. the `rounds` arm of every seed of `hybridlabel ablate --phantom`),
the round's pseudo-labelled cases are ranked as `hybridlabel review` ranks them, and a
reviewer who replaces the checked classes by the truth reviews 10 % of them (at least one),
chosen four ways: the ranking's top cases, only the classes the worklist names; the
ranking's top cases, every pseudo class; the top cases by organ entropy alone (what
selection uses), every pseudo class; and cases drawn at random (the exact expectation);
and, as the ceiling, the cases with the largest actual error.
The gain is in the complete labels' organ DSC over the classes present (the round's
`complete_hybrid` metrics: every partial and unlabeled case's hybrid label against the
complete truth). Spearman's rho between each case's review score (and its entropy) and its
hybrid label's error (1 - mean DSC of its pseudo classes), and per (case, class).
The reviewer is simulated from the round's metrics: no label file is rewritten.

Usage: python benchmarks/bench_review.py W1 [W2 ...] [--round 2] [--fraction 0.1]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybridlabel.data_registry.store import Registry  # noqa: E402
from hybridlabel.flows.review import rank_round  # noqa: E402
from hybridlabel.models.config import load_config  # noqa: E402
from hybridlabel.models.review_measure import (
    case_errors,
    label_quality,
    random_gain,
    rank_correlation,  # noqa: E402
    whole_cases,
)


def measure(workdir: Path, round_no: int, fraction: float) -> dict:
    config = load_config(workdir / "config.yaml")
    organs = config.label_map.organ_ids
    found = rank_round(workdir, round_no, config=config)
    ranked, cases = found["ranked"], found["cases"]
    metrics = Registry(workdir).read("metrics", round_no)
    records = metrics[metrics["reference"] == "complete_hybrid"]
    pseudo = {
        c: [int(k) for k, src in r["label_sources"].items() if src == "pseudo" and int(k) in organs]
        for c, r in cases.items()
    }
    pseudo = {c: ks for c, ks in pseudo.items() if ks and c in set(records["case_id"])}
    ranked = [r for r in ranked if r["case_id"] in pseudo]
    ids = [r["case_id"] for r in ranked]
    k = max(1, math.ceil(fraction * len(ids)))
    base = label_quality(records, organs, cases=ids)
    listed = {(r["case_id"], int(c)) for r in ranked[:k] for c in r["classes"]}
    entropy = {c: float(cases[c]["scores"].get("organ_entropy", 0.0)) for c in ids}
    by_entropy = sorted(ids, key=lambda c: -entropy[c])[:k]
    gain = {
        "ranked, listed classes": label_quality(records, organs, listed, ids) - base,
        "ranked, whole cases": label_quality(records, organs, whole_cases(records, ids[:k], pseudo), ids) - base,
        "entropy, whole cases": label_quality(records, organs, whole_cases(records, by_entropy, pseudo), ids) - base,
        "random, whole cases": random_gain(records, organs, pseudo, k),
    }
    errors = case_errors(records, organs, pseudo).to_dict()
    worst = sorted(ids, key=lambda c: -errors.get(c, 0.0))[:k]  # the ceiling: an oracle that knows the errors
    gain["oracle, whole cases"] = label_quality(records, organs, whole_cases(records, worst, pseudo), ids) - base
    scores = {r["case_id"]: r["score"] for r in ranked}
    pairs = records[records["class_id"].isin(organs)]
    class_error = {
        (c, int(x)): 1.0 - d
        for c, x, d in zip(pairs["case_id"], pairs["class_id"], pairs["dsc"])
        if int(x) in pseudo.get(c, ())
    }
    class_scores = {(r["case_id"], int(c)): s for r in ranked for c, s in r["class_scores"].items()}
    # per structure (AbdomenAtlas sent the top 5 % per structure): for each organ, 10 % of the
    # cases that carry its pseudo label, chosen by its class score, by entropy, at random, by the oracle
    per_class = {x: [c for c in ids if x in pseudo[c]] for x in organs}
    picks = {"ranked": set(), "entropy": set(), "oracle": set()}
    random_fixed = 0.0
    for x, holders in per_class.items():
        if not holders:
            continue
        kx = max(1, math.ceil(fraction * len(holders)))
        picks["ranked"] |= {(c, x) for c in sorted(holders, key=lambda c: -class_scores.get((c, x), 0.0))[:kx]}
        picks["entropy"] |= {(c, x) for c in sorted(holders, key=lambda c: -entropy[c])[:kx]}
        picks["oracle"] |= {(c, x) for c in sorted(holders, key=lambda c: -class_error.get((c, x), 0.0))[:kx]}
        one = [label_quality(records, organs, {(c, x)}, ids) - base for c in holders]
        random_fixed += float(np.mean(one)) * kx
    for name, fixed in picks.items():
        gain[f"{name}, per structure"] = label_quality(records, organs, fixed, ids) - base
    gain["random, per structure"] = random_fixed
    return {
        "workdir": str(workdir),
        "cases": len(ids),
        "reviewed": k,
        "labels before": base,
        **gain,
        "rho case score": rank_correlation(scores, errors),
        "rho entropy": rank_correlation(entropy, errors),
        "rho class score": rank_correlation(class_scores, class_error),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdirs", type=Path, nargs="+")
    ap.add_argument("--round", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.1)
    args = ap.parse_args()
    rows = pd.DataFrame([measure(w, args.round, args.fraction) for w in args.workdirs])
    pd.set_option("display.width", 200)
    print(rows.drop(columns=["workdir"]).round(4).to_string(index=False))
    numeric = rows.drop(columns=["workdir"]).astype(float)
    print("\nmean ± SD over workdirs:")
    for col in numeric.columns:
        print(f"  {col:24s} {numeric[col].mean():.4f} ± {numeric[col].std(ddof=0):.4f}")
    ratio = numeric["ranked, per structure"].mean() / numeric["random, per structure"].mean()
    whole = numeric["ranked, whole cases"].mean() / numeric["random, whole cases"].mean()
    ceiling = numeric["oracle, per structure"].mean() / numeric["random, per structure"].mean()
    print(
        f"\ncomplete-label gain, ranked 10 % / random 10 %: {ratio:.2f}x per structure (an oracle: {ceiling:.2f}x), "
        f"{whole:.2f}x whole cases; target >= 2x. Spearman case score vs error: {numeric['rho case score'].mean():.2f} "
        f"(entropy alone {numeric['rho entropy'].mean():.2f}); target >= 0.5"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
