"""Learning speed: the wall time a teacher needs to reach val organ Dice 0.5 and 0.8, per
candidate configuration, against nnU-Net's default trainer (3d_fullres, default network,
SGD) given the same wall-clock budget, in the same run.

Every candidate trains on the phantom's strong cases with the product's trainer, a time
budget (`max_train_seconds`) and a learning curve (`curve_every`: the weights after every
epoch); each curve point is then scored on the val cases (mean over the organ classes
present in each case's ground truth: FLARE's absent-class rule would flatter). Training
time is wall time from the first epoch on (iterations, validation, checkpoints); prediction is not
counted. Prints the table and writes `learning.png` (Dice against training seconds).

Usage: python benchmarks/bench_learning.py [--workdir W] [--seconds 240] [--cases 24]
       [--candidates 3d_tiny,2d_tiny,2d_default,reference] [--seed 0] [--cohort DIR]
(`--cohort`: a real-CT cohort from benchmarks/realct_cohort.py instead of the phantom)
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
from hybridlabel.models.metrics import MetricRules, score_case  # noqa: E402
from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.models.nnunet.predictor import Segmenter  # noqa: E402
from hybridlabel.tasks.files.atomic import atomic_write_text  # noqa: E402
from hybridlabel.tasks.files.orient import to_model_orientation  # noqa: E402
from hybridlabel.tasks.intake.phantom import write_phantom_cohort  # noqa: E402
from hybridlabel.tasks.model.archive import load_weights  # noqa: E402
from hybridlabel.tasks.nnunet.dataset import TrainingCase, write_round_dataset  # noqa: E402
from hybridlabel.tasks.nnunet.predict import load_bundle  # noqa: E402
from hybridlabel.tasks.nnunet.preprocess import plan_dataset, preprocess_round  # noqa: E402
from hybridlabel.tasks.nnunet.train import train_model  # noqa: E402

ADAM = {"optimizer": "adam", "loss": "naive"}
CANDIDATES: dict[str, dict] = {
    # the product's candidates: Adam(W) 1e-3, nnU-Net's augmentation, the network sizes of plans.py
    "3d_tiny": {"configuration": "3d_fullres", "network": "tiny", **ADAM},
    "3d_lightweight": {"configuration": "3d_fullres", "network": "lightweight", **ADAM},
    "2d_tiny": {"configuration": "2d", "network": "tiny", **ADAM},
    "2d_default": {"configuration": "2d", "network": "default", **ADAM},
    # small organs sampled twice as often (nnU-Net's foreground oversampling 0.33 -> 0.66)
    "2d_tiny_fg66": {"configuration": "2d", "network": "tiny", "foreground_oversampling": 0.66, **ADAM},
    "2d_default_fg66": {"configuration": "2d", "network": "default", "foreground_oversampling": 0.66, **ADAM},
    # nnU-Net's default trainer: 3d_fullres, its own network and SGD (momentum 0.99, lr 1e-2)
    "reference": {"configuration": "3d_fullres", "network": "default", "optimizer": "sgd", "loss": "naive"},
}
THRESHOLDS = (0.5, 0.8)
# issue 13's real-CT target: these four organs each at Dice >= 0.8
LARGE_ORGANS = ("liver", "spleen", "right_kidney", "left_kidney")


def present_organ_dice(pred: np.ndarray, gt: np.ndarray, labels: LabelMapConfig) -> dict[str, float]:
    """Dice per organ class present in `gt` (FLARE's absent-class rule would flatter)."""
    rules = MetricRules(dict(labels.labels), dict(labels.nsd_tolerance_mm))
    records = score_case(pred, gt, (1.0, 1.0, 1.0), rules, classes=list(labels.organ_ids))
    return {r["class_name"]: float(r["dsc"]) for r in records if r["gt_present"]}


def mean_scores(cases: list[dict[str, float]]) -> tuple[float, dict[str, float]]:
    """The mean over cases of each case's present-class mean, and each class's mean over
    the cases that hold it."""
    per_case = [np.mean(list(c.values())) for c in cases if c]
    names = sorted({n for c in cases for n in c})
    per_class = {n: float(np.mean([c[n] for c in cases if n in c])) for n in names}
    return float(np.mean(per_case)) if per_case else float("nan"), per_class


def curve(
    model: Path, val: list[tuple[np.ndarray, np.ndarray, tuple]], labels: LabelMapConfig, max_points: int
) -> list[dict]:
    points = sorted((model / "fold_all" / "curve").glob("epoch_*.pth"))
    if len(points) > max_points:  # evenly spaced, always the last
        keep = np.unique(np.linspace(0, len(points) - 1, max_points).round().astype(int))
        points = [points[i] for i in keep]
    out = []
    for point in points:
        bundle = load_bundle(model, f"curve/{point.name}")
        meta = load_weights(point, str(point))
        seg = Segmenter(bundle, device="cpu")
        dice, per_class = mean_scores(
            [present_organ_dice(seg.predict(image, spacing)[0], gt, labels) for image, gt, spacing in val]
        )
        out.append(
            {
                "iterations": int(meta["iterations"]),
                "seconds": float(meta["train_seconds"]),
                "dice": dice,
                "classes": per_class,
            }
        )
    return out


def time_to(points: list[dict], threshold: float) -> float | None:
    return next((p["seconds"] for p in points if p["dice"] >= threshold), None)


def time_to_large_organs(points: list[dict], threshold: float = 0.8) -> float | None:
    """The first curve point where every large organ present scores >= threshold."""

    def reached(p: dict) -> bool:
        scores = [p["classes"][n] for n in LARGE_ORGANS if n in p["classes"]]
        return bool(scores) and min(scores) >= threshold

    return next((p["seconds"] for p in points if reached(p)), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=240, help="training wall-clock budget per candidate")
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=25, help="iterations per epoch (one curve point each)")
    ap.add_argument("--points", type=int, default=12, help="curve points scored per candidate")
    ap.add_argument("--candidates", default="3d_tiny,2d_tiny,2d_default,reference")
    ap.add_argument(
        "--cohort",
        type=Path,
        default=None,
        help="a simulate-partial output (benchmarks/realct_cohort.py OUT/cohort) instead of the phantom",
    )
    args = ap.parse_args()
    names = args.candidates.split(",")
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        ap.error(f"unknown candidates {unknown}; choose from {', '.join(CANDIDATES)}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="learning-"))
    labels = LabelMapConfig()
    cohort = args.cohort or work / "cohort"
    if args.cohort is None and not (cohort / "phantom.json").exists():
        write_phantom_cohort(cohort, args.cases, args.seed)
    record = cohort / "phantom.json" if (cohort / "phantom.json").exists() else cohort / "simulation.json"
    truth = json.loads(record.read_text())["cases"]
    strong = [
        TrainingCase(c, cohort / "imagesTr" / f"{c}_0000.nii.gz", cohort / "labelsTr" / f"{c}.nii.gz")
        for c, t in sorted(truth.items())
        if t["role"] == "strong"
    ]
    val = []
    for case in sorted(c for c, t in truth.items() if t["role"] == "val"):
        # in the orientation the network is trained in (real CT is stored in RAS)
        image = to_model_orientation(sitk.ReadImage(str(cohort / "imagesTr" / f"{case}_0000.nii.gz")))
        gt = sitk.GetArrayFromImage(
            to_model_orientation(sitk.ReadImage(str(cohort / "groundTruth" / f"{case}.nii.gz")))
        )
        gt = np.where(gt == labels.tumor_id, 0, gt)  # organ teachers: tumour voxels are not scored
        val.append((sitk.GetArrayFromImage(image).astype(np.float32), gt, image.GetSpacing()[::-1]))
    root = work / "nnunet"
    write_round_dataset(root, 600, "teacher", strong, labels, tumor=False)
    plans = plan_dataset(root, 600, log=lambda _: None)
    results = {}
    for name in names:
        spec = CANDIDATES[name]
        t0 = time.perf_counter()
        preprocess_round(root, plans, 600, "teacher", strong, configuration=spec["configuration"])
        training = TrainingConfig(
            **spec,
            epochs=100000,
            iterations_per_epoch=args.iterations,
            val_iterations=1,
            device="cpu",
            seed=args.seed + 1,
            max_train_seconds=args.seconds,
            curve_every=1,
        )
        model = train_model(NnunetDataset(root, 600, "teacher"), training, log=lambda _: None)
        wall = time.perf_counter() - t0
        points = curve(model, val, labels, args.points)
        results[name] = {
            "points": points,
            "wall": wall,
            "parameters": Segmenter(load_bundle(model), device="cpu").n_parameters,
        }
        last = points[-1]
        print(
            f"{name}: {last['iterations']} iterations in {last['seconds']:.0f} s "
            f"({last['seconds'] / max(last['iterations'], 1):.2f} s/iteration), val organ Dice {last['dice']:.3f}",
            flush=True,
        )
        atomic_write_text(work / "learning.json", json.dumps(results, indent=1))  # kept if a later candidate fails
    print(
        f"\nteacher on {len(strong)} strong cases of {cohort}, scored on {len(val)} val cases (organ Dice over the "
        f"classes present); {args.seconds:.0f} s of training each, 2-core CPU unless said otherwise"
    )
    print(
        f"| candidate | parameters | s/iteration | time to {THRESHOLDS[0]} | time to {THRESHOLDS[1]} | "
        f"time to liver, spleen, kidneys >= 0.8 | Dice at budget | vs reference (Dice points) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ref = results.get("reference", {}).get("points", [{}])[-1].get("dice")
    for name, res in results.items():
        last = res["points"][-1]
        reach = [time_to(res["points"], t) for t in THRESHOLDS] + [time_to_large_organs(res["points"])]
        ratio = f"{last['dice'] - ref:+.3f}" if ref is not None and name != "reference" else ""
        print(
            f"| {name} | {res['parameters']:,} | {last['seconds'] / max(last['iterations'], 1):.2f} | "
            + " | ".join("not reached" if r is None else f"{r:.0f} s" for r in reach)
            + f" | {last['dice']:.3f} | {ratio} |"
        )
    classes = sorted(
        {n for res in results.values() for n in res["points"][-1]["classes"]},
        key=lambda n: list(labels.labels.values()).index(n),
    )
    print("\nval Dice per organ at the budget (mean over the val cases that hold it)")
    print("| candidate | " + " | ".join(classes) + " |")
    print("| --- |" + " --- |" * len(classes))
    for name, res in results.items():
        last = res["points"][-1]["classes"]
        print(f"| {name} | " + " | ".join(f"{last[n]:.2f}" if n in last else "-" for n in classes) + " |")
    _plot(results, work / "learning.png", args.seconds)
    print(f"\ncurves: {work / 'learning.png'}; every point per class: {work / 'learning.json'}")


def _plot(results: dict, out: Path, seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, res in results.items():
        ax.plot(
            [p["seconds"] for p in res["points"]],
            [p["dice"] for p in res["points"]],
            marker="o",
            label=name,
            color="black" if name == "reference" else None,
        )
    for t in THRESHOLDS:
        ax.axhline(t, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("training seconds (2 CPU cores)")
    ax.set_ylabel("val organ Dice (classes present)")
    ax.set_xlim(0, seconds * 1.05)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(out, dpi=90, bbox_inches="tight")


if __name__ == "__main__":
    main()
