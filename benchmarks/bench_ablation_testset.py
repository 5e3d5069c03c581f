"""An ablation's models on a test cohort of fresh phantom cases (more than its 3 val cases).

`hybridlabel ablate --phantom` scores each arm on the cohort's 3 val cases, 2 of which hold
a tumour: a tumour Dice over 2 cases per seed says little. This script takes the models an
ablation trained (each arm's last model, every seed) and segments N new phantom cases
drawn with another seed, round-robin over the cohort's sites (complete labels, never seen
by any model), then prints per arm and round, mean ± SD over the ablation's seeds of each
model's mean over the test cases: organ DSC over the classes present, tumour DSC and NSD
over the cases that have a tumour, and the share of tumour-free cases given a tumour
(false positives); and the organ DSC per site (the last: no labelled case came from it).
Predictions are post-processed as the pipeline's are (each arm's `min_tumor_peak`); the two
tumour shares of the network's raw argmax, from the same forward pass, are printed beside
them (`*_raw`).

`--realct`: the ablation ran on the cross-patient real-CT cohort
(`benchmarks/realct_cohort.py --cross-patient`), whose 5 val cases all hold a tumour; the
test cases are then N fresh copies of patient B (every other one tumour-free), handed to
each model as the ablation's own evaluation hands it a case (in the model orientation).

Usage: python benchmarks/bench_ablation_testset.py W [--cases 30] [--seed 1000] [--realct]
       [--arms rounds,cutmix] [--rounds 1,2] [--min-tumor-peak P] [--out W/testset.csv]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.realct_cohort import second_patient_test_cases  # noqa: E402
from hybridlabel.data_registry.store import Registry  # noqa: E402
from hybridlabel.models.config import LabelMapConfig, load_config  # noqa: E402
from hybridlabel.models.metrics import MetricRules, score_case  # noqa: E402
from hybridlabel.models.nnunet.predictor import Segmenter  # noqa: E402
from hybridlabel.models.phantom import generate_phantom  # noqa: E402
from hybridlabel.models.phantom_sites import site_profile  # noqa: E402
from hybridlabel.models.tumor_filter import drop_unsure_tumors  # noqa: E402
from hybridlabel.tasks.files.imageio import spacing_zyx  # noqa: E402
from hybridlabel.tasks.files.orient import to_model_orientation  # noqa: E402
from hybridlabel.tasks.nnunet.predict import load_bundle  # noqa: E402


def test_cases(n: int, seed: int, sites: int) -> list[tuple]:
    """Fresh phantoms, round-robin over the cohort's sites (the last is the one no labelled
    case came from): (site, image, label, spacing)."""
    # generated arrays are laid out as the phantom's files (identity directions: LPS, the
    # model orientation), so they go to the network as they are
    cases = []
    for i in range(n):
        case = generate_phantom(np.random.default_rng([seed, i]), size="small", site=site_profile(i % sites))
        cases.append((i % sites, case.image, case.label, case.spacing))
    return cases


def realct_test_cases(n: int, seed: int, workdir: Path) -> list[tuple]:
    """Fresh copies of patient B in the model orientation, as the ablation's evaluation
    reads a val case: (site 1, image, label, spacing)."""
    config = next((workdir / "arms").glob("*-s*.yaml"), None)
    if config is None:
        raise SystemExit(f"{workdir}/arms holds no arm config: not an ablation workdir")
    cohort = Path(yaml.safe_load(config.read_text())["dataset"])
    manifest = pd.read_csv(cohort / "manifest.csv")
    if "site" not in manifest or not (manifest["site"] == 1).any():
        raise SystemExit(
            f"{cohort} has no patient-B case (site 1): --realct needs a realct_cohort.py --cross-patient cohort"
        )
    like = cohort / manifest.loc[manifest["site"] == 1, "image"].iloc[0]
    cases = []
    for image, label in second_patient_test_cases(n, seed, like):
        image, label = to_model_orientation(image), to_model_orientation(label)
        cases.append((1, sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label), spacing_zyx(image)))
    return cases


def cohort_sites(workdir: Path) -> int:
    found = workdir / "phantom" / "phantom.json"
    return len(json.loads(found.read_text()).get("sites", {})) or 1 if found.is_file() else 1


def score_model(model_dir: str, cases: list, labels: LabelMapConfig, min_tumor_peak: float | None) -> list[dict]:
    """Each case's figures as the pipeline predicts (its `min_tumor_peak` rule applied), and
    the tumour figures of the network's raw argmax (`*_raw`) from the same forward pass."""
    rules = MetricRules(dict(labels.labels), dict(labels.nsd_tolerance_mm))
    segmenter = Segmenter(load_bundle(Path(model_dir)), device="cpu")
    rows = []
    for i, (site, image, label, spacing) in enumerate(cases):
        raw, probs = segmenter.predict(image, spacing)
        pred = raw
        if min_tumor_peak is not None:
            pred = drop_unsure_tumors(raw, probs, segmenter.classes, labels.tumor_id, min_tumor_peak)[0]
        records = {
            r["class_id"]: r for r in score_case(pred, label, spacing, rules, [*labels.organ_ids, labels.tumor_id])
        }
        raw_tumour = score_case(raw, label, spacing, rules, [labels.tumor_id])[0]
        organs = [records[c]["dsc"] for c in labels.organ_ids if records[c]["gt_present"]]
        tumour = records[labels.tumor_id]
        rows.append(
            {
                "case": i,
                "site": site,
                "organ_dsc": float(np.mean(organs)),
                "has_tumour": bool(tumour["gt_present"]),
                "tumour_dsc": tumour["dsc"],
                "tumour_nsd": tumour["nsd"],
                "tumour_predicted": bool((pred == labels.tumor_id).any()),
                "tumour_dsc_raw": raw_tumour["dsc"],
                "tumour_predicted_raw": bool((raw == labels.tumor_id).any()),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path, help="an ablation folder (hybridlabel ablate --workdir)")
    ap.add_argument("--cases", type=int, default=30)
    ap.add_argument(
        "--seed",
        type=int,
        default=1000,
        help="seed of the test cases (the phantom ablation's cohort is seed 0; the real-CT cohort's 0 by default)",
    )
    ap.add_argument("--realct", action="store_true", help="the workdir is a cross-patient real-CT ablation")
    ap.add_argument("--arms", default="teacher,teacher_long,naive,target_adaptive,merge_max,oracle,rounds,cutmix")
    ap.add_argument(
        "--rounds",
        default=None,
        help="rounds of each arm to score, comma-separated (default: each arm's last model round)",
    )
    ap.add_argument(
        "--min-tumor-peak",
        type=float,
        default=None,
        help="the tumour rule to score with (default: each arm's config; -1: none, the raw argmax)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    labels = LabelMapConfig()
    if args.realct:
        sites, cases = 1, realct_test_cases(args.cases, args.seed, args.workdir)
        what = "copies of patient B"
    else:
        sites = cohort_sites(args.workdir)
        cases = test_cases(args.cases, args.seed, sites)
        what = f"phantoms ({sites} site(s) round-robin)"
    with_tumour = sum(bool((label == labels.tumor_id).any()) for _, _, label, _ in cases)
    print(f"{len(cases)} test {what}, seed {args.seed}, {with_tumour} with a tumour")
    rows = []
    for folder in sorted((args.workdir / "arms").iterdir()):
        arm, _, seed = folder.name.rpartition("-s")
        if not folder.is_dir() or arm not in args.arms.split(","):
            continue
        reg = Registry(folder)
        model_rounds = [int(r["round"]) for r in reg.rounds().to_dict("records") if r["kind"] in ("teacher", "student")]
        wanted = [int(x) for x in args.rounds.split(",")] if args.rounds else model_rounds[-1:]
        for r in wanted:
            if not reg.is_complete(r):
                continue
            peak = (
                load_config(folder / "config.yaml").min_tumor_peak
                if args.min_tumor_peak is None
                else args.min_tumor_peak
            )
            peak = None if peak is None or peak < 0 else peak  # an arm that ran with `min_tumor_peak: null`
            for row in score_model(reg.round_row(r)["model_dir"], cases, labels, peak):
                rows.append({"arm": arm, "seed": int(seed), "round": r, **row})
            print(f"  scored {folder.name} round {r}")
    frame = pd.DataFrame(rows)
    out = args.out or args.workdir / "testset.csv"
    frame.to_csv(out, index=False)
    per_model = frame.groupby(["arm", "round", "seed"]).apply(
        lambda g: pd.Series(
            {
                "organ_dsc": g["organ_dsc"].mean(),
                "tumour_dsc": g.loc[g["has_tumour"], "tumour_dsc"].mean(),
                "tumour_nsd": g.loc[g["has_tumour"], "tumour_nsd"].mean(),
                "tumour_found": (g.loc[g["has_tumour"], "tumour_dsc"] > 0).mean(),
                "false_positive": g.loc[~g["has_tumour"], "tumour_predicted"].mean(),
                "tumour_found_raw": (g.loc[g["has_tumour"], "tumour_dsc_raw"] > 0).mean(),
                "false_positive_raw": g.loc[~g["has_tumour"], "tumour_predicted_raw"].mean(),
            }
        ),
        include_groups=False,
    )
    table = per_model.groupby(["arm", "round"]).agg(["mean", lambda x: x.std(ddof=0)])  # SD as the ablation's
    table.columns = [(k, "mean" if i % 2 == 0 else "std") for i, (k, _) in enumerate(table.columns)]
    print("\nper arm and round: mean ± SD over seeds of each model's mean over the test cases")
    print(
        "(tumour DSC / NSD over the cases with a tumour; found: share of them with DSC > 0; "
        "false_positive: share of tumour-free cases given a tumour; *_raw: the same without the "
        "min_tumor_peak rule, the network's argmax)"
    )
    for (arm, r), row in table.iterrows():
        cells = [
            f"{k} {row[(k, 'mean')]:.3f} ± {row[(k, 'std')]:.3f}"
            for k in (
                "organ_dsc",
                "tumour_dsc",
                "tumour_nsd",
                "tumour_found",
                "false_positive",
                "tumour_found_raw",
                "false_positive_raw",
            )
        ]
        print(f"  {arm} round {r} (seeds {per_model.loc[(arm, r)].index.tolist()}): " + ", ".join(cells))
    if sites > 1:
        by_site = frame.groupby(["arm", "round", "site"])["organ_dsc"].mean().unstack("site")
        print(f"\norgan DSC per site (mean over seeds and cases; site {sites - 1}: no labelled case came from it)")
        print(by_site.round(3).to_string())
    print(f"per case: {out}")


if __name__ == "__main__":
    main()
