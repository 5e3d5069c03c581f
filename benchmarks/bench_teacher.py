"""Evidence for the CPU budget: a teacher trained on the phantom's strong cases only,
evaluated on its val cases (organ Dice), with the wall time of each step.

Usage: python benchmarks/bench_teacher.py [--workdir W] [--cases 24] [--epochs 30]
       [--iterations 25] [--network tiny] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybridlabel.models.config import LabelMapConfig, TrainingConfig  # noqa: E402
from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.models.nnunet.predictor import Segmenter  # noqa: E402
from hybridlabel.tasks.intake.phantom import write_phantom_cohort  # noqa: E402
from hybridlabel.tasks.nnunet.dataset import TrainingCase, write_round_dataset  # noqa: E402
from hybridlabel.tasks.nnunet.predict import load_bundle, predict_case  # noqa: E402
from hybridlabel.tasks.nnunet.preprocess import plan_dataset, preprocess_round  # noqa: E402
from hybridlabel.tasks.nnunet.train import train_model  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--iterations", type=int, default=25)
    ap.add_argument("--network", default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--optimizer", default="sgd")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="teacher-"))
    labels = LabelMapConfig()
    t0 = time.perf_counter()
    cohort = work / "cohort"
    if not (cohort / "phantom.json").exists():
        write_phantom_cohort(cohort, args.cases, 0)
    truth = json.loads((cohort / "phantom.json").read_text())["cases"]
    strong = [
        TrainingCase(c, cohort / "imagesTr" / f"{c}_0000.nii.gz", cohort / "labelsTr" / f"{c}.nii.gz")
        for c, t in sorted(truth.items())
        if t["role"] == "strong"
    ]
    val = [c for c, t in sorted(truth.items()) if t["role"] == "val"]
    root = work / "nnunet"
    write_round_dataset(root, 600, "teacher", strong, labels, tumor=False)
    plans = plan_dataset(root, 600, log=lambda _: None)
    preprocess_round(root, plans, 600, "teacher", strong)
    t_prep = time.perf_counter() - t0
    training = TrainingConfig(
        network=args.network,
        epochs=args.epochs,
        iterations_per_epoch=args.iterations,
        val_iterations=1,
        loss="naive",
        device=args.device,
        optimizer=args.optimizer,
    )
    t1 = time.perf_counter()
    model = train_model(NnunetDataset(root, 600, "teacher"), training, log=lambda _: None)
    t_train = time.perf_counter() - t1
    seg = Segmenter(load_bundle(model), device=args.device)
    t2 = time.perf_counter()
    per_class = {c: [] for c in labels.organ_ids}
    for case in val:
        out, _ = predict_case(
            seg, cohort / "imagesTr" / f"{case}_0000.nii.gz", work / "pred" / f"{case}.nii.gz", labels
        )
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
        gt = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "groundTruth" / f"{case}.nii.gz")))
        gt = np.where(gt == labels.tumor_id, 0, gt)  # the organ teacher does not segment tumours
        for c in labels.organ_ids:
            per_class[c].append(dice(pred == c, gt == c))
    t_pred = time.perf_counter() - t2
    means = {labels.labels[c]: round(float(np.mean(v)), 3) for c, v in per_class.items()}
    print(
        f"teacher: {len(strong)} strong cases, network {args.network} ({seg.n_parameters:,} parameters), "
        f"{args.epochs} epochs x {args.iterations} iterations, {args.optimizer}, on {seg.device}"
    )
    print(
        f"times: cohort+plan+preprocess {t_prep:.0f} s, training {t_train:.0f} s, "
        f"predicting {len(val)} val cases {t_pred:.1f} s"
    )
    print("val Dice per organ:", json.dumps(means))
    print(f"val organ mean Dice: {np.mean([np.mean(v) for v in per_class.values()]):.3f}")


if __name__ == "__main__":
    main()
