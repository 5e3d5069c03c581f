"""Merge speed on a FLARE-size case (512 x 512 x 200, 13 organs, several tumours).

Prints, in one run:
 (a) our pure merge against a naive reference (scipy.ndimage: full-volume labelling per
     class, a full-volume dilation per tumour component with an ellipsoidal structuring
     element, full-volume loops per class), after checking both give the same label;
 (b) `hybridlabel merge` end to end (a new process: read G and P, merge, write OUT and
     its JSON) against the floor of pure I/O (a new process that only reads the two
     inputs and writes the output with SimpleITK, at the same compression level);
 (c) peak memory (RSS) of both processes of (b).

Usage: python benchmarks/bench_merge.py [--slices 200] [--repeats 3]
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
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybridlabel.models.config import LabelMapConfig, MergeConfig  # noqa: E402
from hybridlabel.models.merge import merge_case  # noqa: E402
from hybridlabel.models.phantom import generate_phantom, phantom_partial_label  # noqa: E402

ANNOTATED = (1, 2, 13, 14)  # a kidney + liver + tumour source, as in FLARE23
STRUCT26 = np.ones((3, 3, 3), bool)


def make_case(slices: int):
    for seed in range(50):
        case = generate_phantom(np.random.default_rng(seed), size="flare", shape=(slices, 512, 512))
        if len(case.tumors) >= 2:
            break
    gt = phantom_partial_label(case, ANNOTATED)
    pred = case.organ_label.copy()  # a teacher that misses the tumours ...
    pred[np.roll(case.label == 14, 4, axis=2)] = 14  # ... finds them shifted ...
    rng = np.random.default_rng(1)
    for _ in range(20):  # ... and adds small false organ islands
        z, y, x = rng.integers(10, slices - 10), rng.integers(60, 450), rng.integers(60, 450)
        pred[z - 2 : z + 2, y - 3 : y + 3, x - 3 : x + 3] = rng.integers(1, 14)
    return case, gt, pred


def ellipsoid(radius_mm: float, spacing) -> np.ndarray:
    r = [int(np.ceil(radius_mm / s)) for s in spacing]
    zz, yy, xx = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    return (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= radius_mm**2


def naive_merge(gt, annotated, pred, spacing, cfg: MergeConfig, labels: LabelMapConfig) -> np.ndarray:
    """The same rules written the obvious way, over the full volume every time."""
    tumor, organs, ann = labels.tumor_id, labels.organ_ids, set(annotated)
    voxel = float(np.prod(spacing))
    p = pred.copy()
    for c in cfg.largest_component_classes:  # rule 2
        comp, n = ndimage.label(p == c, STRUCT26)
        if n > 1:
            sizes = ndimage.sum_labels(np.ones_like(comp), comp, range(1, n + 1))
            p[(comp > 0) & (comp != 1 + int(np.argmax(sizes)))] = 0
    g = gt.copy()
    for c in sorted(ann):  # rule 1: small components
        comp, n = ndimage.label(g == c, STRUCT26)
        for i in range(1, n + 1):
            if (comp == i).sum() * voxel < cfg.min_component_mm3:
                g[comp == i] = 0
    organ_mask = np.isin(g, organs) | np.isin(p, organs)
    dist_to_organ = ndimage.distance_transform_edt(~organ_mask, sampling=spacing)
    comp, n = ndimage.label(g == tumor, STRUCT26)
    for i in range(1, n + 1):  # rule 1: far tumours
        if dist_to_organ[comp == i].min() > cfg.max_tumor_organ_gap_mm:
            g[comp == i] = 0
    unann = [c for c in organs if c not in ann]
    organ_map = np.where(np.isin(g, organs), g, np.where(np.isin(p, unann), p, 0))
    ball = ellipsoid(cfg.attribution_mm, spacing)
    attributed = set()
    comp, n = ndimage.label(g == tumor, STRUCT26)
    for i in range(1, n + 1):  # rule 3
        core = comp == i
        grown = ndimage.binary_dilation(core, ball)
        ring = [(grown & (organ_map == c)).sum() for c in organs]
        inner = [(core & (organ_map == c)).sum() for c in organs]
        if max(ring) > 0:
            best = max(range(len(organs)), key=lambda k: (ring[k], inner[k], -k))
            attributed.add(organs[best])
    out = np.zeros_like(g)
    for c in organs:  # rule 4
        if c in ann and not (c in attributed and cfg.tumor_bearing_organ == "pseudo"):
            out[g == c] = c
    for c in organs:
        if c not in ann or (c in attributed and cfg.tumor_bearing_organ == "pseudo"):
            sel = (p == c) & (out == 0) & ((g == 0) | (g == tumor) | (g == c))
            out[sel] = c
    out[g == tumor] = tumor  # rule 5 (tumour annotated)
    return out


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a child process."""
    wrapper = (
        "import resource, subprocess, sys, time, json; t = time.perf_counter(); "
        "rc = subprocess.call(sys.argv[1:]); dt = time.perf_counter() - t; "
        "print(json.dumps({'rc': rc, 's': dt, 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        raise RuntimeError(f"{cmd} failed: {out.stderr}")
    return info["s"], info["rss"]


FLOOR = """
import sys, SimpleITK as sitk
g = sitk.ReadImage(sys.argv[1]); p = sitk.ReadImage(sys.argv[2])
a = sitk.GetArrayViewFromImage(g); b = sitk.GetArrayViewFromImage(p)
w = sitk.ImageFileWriter(); w.SetFileName(sys.argv[3]); w.UseCompressionOn(); w.SetCompressionLevel(int(sys.argv[4]))
w.Execute(g)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import SimpleITK as sitk

    from hybridlabel.tasks.files.imageio import NIFTI_COMPRESSION_LEVEL

    case, gt, pred = make_case(args.slices)
    spacing = case.spacing
    cfg, labels = MergeConfig(), LabelMapConfig()
    print(f"case: {gt.shape} voxels (z, y, x), spacing {spacing} mm, {len(case.tumors)} tumours, annotated {ANNOTATED}")

    ours_s, ours = best_of(lambda: merge_case(gt, ANNOTATED, pred, spacing, cfg, labels), args.repeats)
    naive_s, naive = best_of(lambda: naive_merge(gt, ANNOTATED, pred, spacing, cfg, labels), 1)
    same = np.array_equal(ours.hybrid, naive)
    print(
        f"(a) pure merge: ours {ours_s:.3f} s, naive reference {naive_s:.3f} s -> {naive_s / ours_s:.1f}x faster "
        f"(goal >= 10x); identical labels: {same}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, array in (("gt", gt), ("pred", pred)):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(tuple(reversed(spacing)))
            sitk.WriteImage(image, str(tmp / f"{name}.nii.gz"), True, NIFTI_COMPRESSION_LEVEL)
        floor = [
            sys.executable,
            "-c",
            FLOOR,
            str(tmp / "gt.nii.gz"),
            str(tmp / "pred.nii.gz"),
            str(tmp / "floor.nii.gz"),
            str(NIFTI_COMPRESSION_LEVEL),
        ]
        cli = [
            str(Path(sys.executable).with_name("hybridlabel")),
            "merge",
            "--label",
            str(tmp / "gt.nii.gz"),
            "--pred",
            str(tmp / "pred.nii.gz"),
            "--out",
            str(tmp / "out.nii.gz"),
        ]
        from hybridlabel.models.config import PipelineConfig
        from hybridlabel.tasks.merge import merge_case_files

        def io_only():
            g = sitk.ReadImage(str(tmp / "gt.nii.gz"))
            sitk.ReadImage(str(tmp / "pred.nii.gz"))
            sitk.WriteImage(g, str(tmp / "floor.nii.gz"), True, NIFTI_COMPRESSION_LEVEL)

        io_s, _ = best_of(io_only, args.repeats)
        task_s, _ = best_of(
            lambda: merge_case_files(
                tmp / "pred.nii.gz",
                tmp / "task.nii.gz",
                PipelineConfig().merge,
                PipelineConfig().label_map,
                tmp / "gt.nii.gz",
            ),
            args.repeats,
        )
        print(
            f"(b') in one process (no start-up): merge task {task_s:.2f} s, pure I/O {io_s:.2f} s -> "
            f"{task_s / io_s:.2f}x"
        )
        floors = [run_measured(floor) for _ in range(args.repeats)]
        clis = [run_measured(cli) for _ in range(args.repeats)]
        floor_s, floor_rss = min(f[0] for f in floors), max(f[1] for f in floors)
        cli_s, cli_rss = min(c[0] for c in clis), max(c[1] for c in clis)
        written = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp / "out.nii.gz")))
        print(
            f"(b) end to end: `hybridlabel merge` {cli_s:.2f} s, pure I/O floor {floor_s:.2f} s -> "
            f"{cli_s / floor_s:.2f}x the floor (goal <= 2x); CLI output equals in-process merge: "
            f"{np.array_equal(written, ours.hybrid)}"
        )
        print(
            f"(c) peak RSS: `hybridlabel merge` {cli_rss:.0f} MiB, I/O floor {floor_rss:.0f} MiB "
            f"(one uint8 volume = {gt.nbytes / 2**20:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
