"""Inference speed and accuracy, in one run, on the same phantom cases:

 (a) the exported lightweight model with `--fast` against a default-plans nnU-Net model
     through nnU-Net's own predictor (the FLARE efficiency question: is the small model
     fast enough, and how much Dice does it cost?);
 (b) `--fast` against nnU-Net's own predictor on the same lightweight model (what the
     shortcuts cost: time ratio and Dice difference).

Both models are trained here on the same complete phantom labels with the same budget
(Adam, seed fixed). Cases: the phantom's val cases (40 x 64 x 80 at 5 x 4 x 4 mm) and
FLARE-size phantoms (512 x 512 x N at 2.5 x 0.8 x 0.8 mm), where nnU-Net's full-resolution
probability resampling dominates.

Usage: python benchmarks/bench_predict.py [--iterations 150] [--flare-cases 1]
       [--flare-slices 80] [--device cpu] [--workdir W] [--startup-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybridlabel.models.config import LabelMapConfig, PipelineConfig, TrainingConfig  # noqa: E402
from hybridlabel.models.nnunet.fast_predictor import FastSegmenter  # noqa: E402
from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.models.phantom import generate_phantom  # noqa: E402
from hybridlabel.tasks.files.orient import to_model_orientation  # noqa: E402
from hybridlabel.tasks.intake.phantom import write_phantom_cohort  # noqa: E402
from hybridlabel.tasks.model.archive import read_archive  # noqa: E402
from hybridlabel.tasks.model.export import write_model_archive  # noqa: E402
from hybridlabel.tasks.nnunet.dataset import TrainingCase, write_round_dataset  # noqa: E402
from hybridlabel.tasks.nnunet.predict import load_bundle  # noqa: E402
from hybridlabel.tasks.nnunet.preprocess import plan_dataset, preprocess_round  # noqa: E402
from hybridlabel.tasks.nnunet.train import train_model  # noqa: E402

ORGANS = range(1, 14)


def organ_dice(pred: np.ndarray, gt: np.ndarray) -> float:
    scores = []
    for c in ORGANS:
        a, b = pred == c, gt == c
        total = int(a.sum()) + int(b.sum())
        scores.append(1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total)
    return float(np.mean(scores))


def train(root: Path, network: str, iterations: int, device: str) -> Path:
    epochs = max(1, iterations // 25)
    budget = TrainingConfig(
        network=network,
        epochs=epochs,
        iterations_per_epoch=25,
        val_iterations=1,
        loss="naive",
        device=device,
        optimizer="adam",
        seed=7,
    )
    t = time.perf_counter()
    model = train_model(NnunetDataset(root, 610, "bench"), budget, log=lambda _: None)
    print(f"trained {network}: {epochs * 25} iterations in {time.perf_counter() - t:.0f} s")
    return model


def cases(cohort: Path, n_flare: int, slices: int) -> list[tuple[str, np.ndarray, np.ndarray, tuple]]:
    truth = json.loads((cohort / "phantom.json").read_text())["cases"]
    out = []
    for case in sorted(c for c, t in truth.items() if t["role"] == "val"):
        # the network's arrays are in the model orientation (the phantom's already are)
        image = to_model_orientation(sitk.ReadImage(str(cohort / "imagesTr" / f"{case}_0000.nii.gz")))
        gt = sitk.GetArrayFromImage(
            to_model_orientation(sitk.ReadImage(str(cohort / "groundTruth" / f"{case}.nii.gz")))
        )
        out.append((case, sitk.GetArrayFromImage(image), gt, tuple(reversed(image.GetSpacing()))))
    for i in range(n_flare):
        ph = generate_phantom(np.random.default_rng(100 + i), size="flare", shape=(slices, 512, 512))
        out.append((f"flare_{i}", ph.image, ph.label, ph.spacing))
    return out


def timed(segmenter: FastSegmenter, image: np.ndarray, spacing) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    seg = segmenter.predict_label(image, spacing)
    return seg, time.perf_counter() - t


STARTUP_PROBE = """
import sys, time
t = time.perf_counter()
from hybridlabel.cli.main import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    heavy = sorted(m for m in ("prefect", "nnunetv2.training.nnUNetTrainer", "dask", "matplotlib") if m in sys.modules)
    print("STARTUP", time.perf_counter() - t, ",".join(heavy) or "none", file=sys.stderr)
"""


def startup(archive: Path, image: Path, work: Path, device: str) -> None:
    """(c): the command's wall time as a process against the same prediction in-process."""
    import hybridlabel

    hybridlabel.predict(archive, image, work / "warm.nii.gz", device)  # warm: imports, weights, caches
    t = time.perf_counter()
    (record,) = hybridlabel.predict(archive, image, work / "inproc.nii.gz", device)
    in_process = time.perf_counter() - t
    t = time.perf_counter()
    cli = [
        sys.executable,
        "-c",
        STARTUP_PROBE,
        "predict",
        str(archive),
        str(image),
        str(work / "cli.nii.gz"),
        "--device",
        device,
    ]
    done = subprocess.run(cli, capture_output=True, text=True, check=True)
    process = time.perf_counter() - t
    heavy = next(line.split()[2] for line in done.stderr.splitlines() if line.startswith("STARTUP"))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import hybridlabel.cli.main"], check=True)
    imports = time.perf_counter() - t
    shape = "x".join(map(str, sitk.ReadImage(str(image)).GetSize()[::-1]))
    print(
        f"\n(c) start-up, one {shape} case on {device}: `hybridlabel predict` as a process {process:.1f} s wall; "
        f"the same call in a warm process {in_process:.1f} s (segmentation {record['wall_time_s']:.1f} s): "
        f"start-up costs {process - in_process:.1f} s, the process takes {process / in_process:.1f}x the warm call; "
        f"interpreter + CLI imports alone {imports:.1f} s; heavy modules the command imported: {heavy}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--flare-cases", type=int, default=1)
    ap.add_argument("--flare-slices", type=int, default=80)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--startup-only", action="store_true", help="only (c): train the lightweight model, time start-up")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-predict-"))
    cohort = work / "cohort"
    if not (cohort / "phantom.json").exists():
        write_phantom_cohort(cohort, 24, 0)
    truth = json.loads((cohort / "phantom.json").read_text())["cases"]
    train_cases = [
        TrainingCase(c, cohort / "imagesTr" / f"{c}_0000.nii.gz", cohort / "groundTruth" / f"{c}.nii.gz")
        for c, t in sorted(truth.items())
        if t["role"] != "val"
    ]
    root = work / "nnunet"
    write_round_dataset(root, 610, "bench", train_cases, LabelMapConfig(), tumor=True)
    plans = plan_dataset(root, 610, log=lambda _: None)
    preprocess_round(root, plans, 610, "bench", train_cases)
    light_dir = train(root, "lightweight", args.iterations, args.device)
    archive, info = write_model_archive(light_dir, work / "export", PipelineConfig(name="bench"), 0, "lightweight")
    val = sorted(c for c, t in truth.items() if t["role"] == "val")[0]
    startup(archive, cohort / "imagesTr" / f"{val}_0000.nii.gz", work, args.device)
    if args.startup_only:
        return
    default_dir = train(root, "default", args.iterations, args.device)
    bundle, _ = read_archive(archive)
    print(
        f"lightweight: {info['parameters']:,} parameters, archive {info['size_bytes'] / 1e6:.1f} MB; "
        f"default: {FastSegmenter(load_bundle(default_dir), args.device).n_parameters:,} parameters"
    )

    light_fast = FastSegmenter(bundle, args.device, fast=True)
    light_resample_only = FastSegmenter(bundle, args.device, fast=True, body_crop=False)
    light_nnunet = FastSegmenter(bundle, args.device, fast=False)
    light_mirror = FastSegmenter(bundle, args.device, tta="mirror", fast=False)
    default_nnunet = FastSegmenter(load_bundle(default_dir), args.device, fast=False)
    rows = []
    for case, image, gt, spacing in cases(cohort, args.flare_cases, args.flare_slices):
        fast_seg, t_fast = timed(light_fast, image, spacing)
        slow_seg, t_slow = timed(light_nnunet, image, spacing)
        def_seg, t_def = timed(default_nnunet, image, spacing)
        res_seg, t_res = timed(light_resample_only, image, spacing)
        mir_seg, t_mir = timed(light_mirror, image, spacing)
        rows.append(
            {
                "case": case,
                "shape": "x".join(map(str, image.shape)),
                "t_fast": t_fast,
                "t_nnunet": t_slow,
                "t_default": t_def,
                "dice_fast": organ_dice(fast_seg, gt),
                "dice_nnunet": organ_dice(slow_seg, gt),
                "dice_default": organ_dice(def_seg, gt),
                "agree": float((fast_seg == slow_seg).mean()),
                "t_resample_only": t_res,
                "dice_resample_only": organ_dice(res_seg, gt),
                "t_mirror": t_mir,
                "dice_mirror": organ_dice(mir_seg, gt),
            }
        )
    print(
        f"\n{'case':10} {'shape':12} {'light+fast':>10} {'light nnU':>10} {'default nnU':>11}   "
        f"organ Dice: {'light+fast':>10} {'light nnU':>10} {'default':>8}  voxels equal"
    )
    for r in rows:
        print(
            f"{r['case']:10} {r['shape']:12} {r['t_fast']:9.2f}s {r['t_nnunet']:9.2f}s {r['t_default']:10.2f}s   "
            f"{'':12}{r['dice_fast']:10.3f} {r['dice_nnunet']:10.3f} {r['dice_default']:8.3f}  {r['agree']:.4f}"
        )
    for group, sel in (
        ("phantom val", [r for r in rows if not r["case"].startswith("flare")]),
        ("FLARE-size", [r for r in rows if r["case"].startswith("flare")]),
    ):
        if not sel:
            continue
        tf, tn, td = (sum(r[k] for r in sel) for k in ("t_fast", "t_nnunet", "t_default"))
        df, dn, dd = (np.mean([r[k] for r in sel]) for k in ("dice_fast", "dice_nnunet", "dice_default"))
        tr, tm = (sum(r[k] for r in sel) for k in ("t_resample_only", "t_mirror"))
        dr, dm = (np.mean([r[k] for r in sel]) for k in ("dice_resample_only", "dice_mirror"))
        print(
            f"{group}: each shortcut against nnU-Net's predictor on the lightweight model "
            f"({tn:.2f} s, organ Dice {dn:.3f}): fast resampling alone {tn / tr:.1f}x, Dice {100 * (dr - dn):+.2f} "
            f"points; + body crop {tn / tf:.1f}x, Dice {100 * (df - dn):+.2f}; dropping mirror TTA (nnU-Net path "
            f"with it: {tm:.2f} s, Dice {dm:.3f}) saves {tm / tn:.1f}x for {100 * (dn - dm):+.2f} points"
        )
        print(
            f"{group}: (a) lightweight+fast vs default-plans nnU-Net: {td / tf:.1f}x faster, organ Dice "
            f"{df:.3f} vs {dd:.3f} ({100 * (df - dd):+.1f} points); (b) --fast vs nnU-Net's predictor, same "
            f"model: {tn / tf:.1f}x faster, organ Dice {df:.3f} vs {dn:.3f} ({100 * (df - dn):+.2f} points)"
        )


if __name__ == "__main__":
    main()
