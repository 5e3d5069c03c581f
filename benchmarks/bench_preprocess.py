"""Per-round preprocessing cost: hybridlabel (images preprocessed once, labels per round)
against nnU-Net's full `plan_and_preprocess` of the same round, in one run.

A round changes only the labels. Round 1 here = the same cases as round 0 with other
labels. Ours: label-only preprocessing with the image cache warm from round 0.
nnU-Net: fingerprint + plans + preprocessing of the round's dataset from scratch (what
running nnU-Net per round costs). Also checks both give identical preprocessed labels.

Usage: python benchmarks/bench_preprocess.py [--cases 16] [--size small|flare] [--slices 60]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import blosc2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybridlabel.models.config import LabelMapConfig  # noqa: E402
from hybridlabel.models.nnunet.commands import nnunet_env  # noqa: E402
from hybridlabel.tasks.intake.phantom import write_phantom_cohort  # noqa: E402
from hybridlabel.tasks.nnunet.dataset import TrainingCase, write_round_dataset  # noqa: E402
from hybridlabel.tasks.nnunet.preprocess import plan_dataset, preprocess_round, run_logged  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--size", default="small")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-pre-"))
    cohort = work / "cohort"
    if not (cohort / "phantom.json").exists():
        write_phantom_cohort(cohort, args.cases, 0, args.size)
    truth = json.loads((cohort / "phantom.json").read_text())["cases"]
    ids = sorted(c for c, t in truth.items() if t["role"] != "unlabeled")
    complete = [
        TrainingCase(c, cohort / "imagesTr" / f"{c}_0000.nii.gz", cohort / "groundTruth" / f"{c}.nii.gz") for c in ids
    ]
    partial = [
        TrainingCase(c, cohort / "imagesTr" / f"{c}_0000.nii.gz", cohort / "labelsTr" / f"{c}.nii.gz") for c in ids
    ]
    root, labels = work / "nnunet", LabelMapConfig()
    t = time.perf_counter()
    write_round_dataset(root, 700, "r0", complete, labels)
    plans = plan_dataset(root, 700, log=lambda _: None)
    preprocess_round(root, plans, 700, "r0", complete)
    first = time.perf_counter() - t

    t = time.perf_counter()
    write_round_dataset(root, 701, "r1", partial, labels)
    preprocess_round(root, plans, 701, "r1", partial)
    ours = time.perf_counter() - t

    write_round_dataset(root, 702, "r1nnunet", partial, labels)
    env = nnunet_env(root, dict(os.environ))
    cmd = [
        sys.executable,
        "-c",
        "import sys; from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints "
        "import plan_and_preprocess_entry as f; sys.argv[0]='x'; f()",
        "-d",
        "702",
        "-c",
        "3d_fullres",
        "-np",
        "2",
        "-npfp",
        "2",
    ]
    t = time.perf_counter()
    run_logged(cmd, env, lambda _: None)
    theirs = time.perf_counter() - t

    a = root / "preprocessed" / "Dataset701_r1" / "nnUNetPlans_3d_fullres"
    b = root / "preprocessed" / "Dataset702_r1nnunet" / "nnUNetPlans_3d_fullres"
    same = all(
        np.array_equal(blosc2.open(str(a / f"{c}_seg.b2nd"))[:], blosc2.open(str(b / f"{c}_seg.b2nd"))[:]) for c in ids
    )
    print(f"{len(ids)} cases ({args.size}); round 0 (plan + images once + labels): {first:.1f} s")
    print(
        f"a later round: hybridlabel {ours:.2f} s vs nnU-Net plan_and_preprocess {theirs:.1f} s -> "
        f"{theirs / ours:.0f}x less per round; identical preprocessed labels: {same}"
    )


if __name__ == "__main__":
    main()
