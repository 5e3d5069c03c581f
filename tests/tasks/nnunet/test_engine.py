"""nnU-Net v2 for real on a tiny phantom cohort: round datasets, plan once, images
preprocessed once (bit-identical to nnU-Net's own preprocessing), budgeted training of
a tiny network, partial-label loss, deterministic seeds, prediction with probabilities."""

import json
import os
import pickle
import shutil

import blosc2
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from hybridlabel.models.config import LabelMapConfig, TrainingConfig
from hybridlabel.models.nnunet.commands import full_preprocess_command, nnunet_env
from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.models.nnunet.predictor import Segmenter
from hybridlabel.tasks.model.archive import load_weights
from hybridlabel.tasks.nnunet.dataset import TrainingCase, write_round_dataset
from hybridlabel.tasks.nnunet.predict import load_bundle, predict_case
from hybridlabel.tasks.nnunet.preprocess import NnunetError, plan_dataset, preprocess_round, run_logged
from hybridlabel.tasks.nnunet.train import train_model

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it

LABELS = LabelMapConfig()
TINY = TrainingConfig(
    network="tiny", epochs=1, iterations_per_epoch=2, val_iterations=1, loss="naive", device="cpu", seed=7
)


@pytest.fixture(scope="module")
def engine(phantom_cohort, tmp_path_factory):
    truth = json.loads((phantom_cohort / "phantom.json").read_text())["cases"]
    labeled = sorted(c for c, t in truth.items() if t["role"] in ("strong", "partial", "tumor_only"))[:5]
    full = [
        TrainingCase(
            c, phantom_cohort / "imagesTr" / f"{c}_0000.nii.gz", phantom_cohort / "groundTruth" / f"{c}.nii.gz"
        )
        for c in labeled
    ]
    root = tmp_path_factory.mktemp("nnunet")
    write_round_dataset(root, 1, "teacher", full, LABELS)
    plans = plan_dataset(root, 1, log=lambda _: None)
    preprocess_round(root, plans, 1, "teacher", full)
    return {"root": root, "plans": plans, "cases": full, "truth": truth, "cohort": phantom_cohort}


def _load(folder, case, suffix):
    return blosc2.open(str(folder / f"{case}{suffix}"))[:]


def test_images_are_linked_not_copied(engine):
    link = engine["root"] / "raw" / "Dataset001_teacher" / "imagesTr" / f"{engine['cases'][0].case_id}_0000.nii.gz"
    assert link.is_symlink() and link.resolve() == engine["cases"][0].image.resolve()
    spec = json.loads((link.parent.parent / "dataset.json").read_text())
    assert spec["labels"]["tumor"] == 14 and spec["numTraining"] == len(engine["cases"])


def test_round_preprocessing_equals_nnunet_full_preprocessing(engine):
    root = engine["root"]
    write_round_dataset(root, 2, "reference", engine["cases"], LABELS)
    ref = root / "preprocessed" / "Dataset002_reference"
    ref.mkdir(parents=True)
    plans = json.loads(engine["plans"].read_text())
    (ref / "nnUNetPlans.json").write_text(json.dumps(dict(plans, dataset_name="Dataset002_reference")))
    shutil.copy(root / "raw" / "Dataset002_reference" / "dataset.json", ref / "dataset.json")
    run_logged(full_preprocess_command(2), nnunet_env(root, dict(os.environ)), lambda _: None)
    ours = root / "preprocessed" / "Dataset001_teacher" / "nnUNetPlans_3d_fullres"
    theirs = ref / "nnUNetPlans_3d_fullres"
    for case in engine["cases"]:
        for suffix in (".b2nd", "_seg.b2nd"):
            a, b = _load(ours, case.case_id, suffix), _load(theirs, case.case_id, suffix)
            assert a.dtype == b.dtype and np.array_equal(a, b), (case.case_id, suffix)
        pa = pickle.loads((ours / f"{case.case_id}.pkl").read_bytes())
        pb = pickle.loads((theirs / f"{case.case_id}.pkl").read_bytes())
        assert pa.keys() == pb.keys()
        for label, locations in pb["class_locations"].items():
            assert np.array_equal(pa["class_locations"][label], locations)


def test_a_new_round_reuses_the_preprocessed_images(engine):
    root = engine["root"]
    partial = [
        TrainingCase(c.case_id, c.image, engine["cohort"] / "labelsTr" / f"{c.case_id}.nii.gz")
        if (engine["cohort"] / "labelsTr" / f"{c.case_id}.nii.gz").exists()
        else c
        for c in engine["cases"]
    ]
    cache = next((root / "image_cache").iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.b2nd")}
    write_round_dataset(root, 3, "round1", partial, LABELS)
    preprocess_round(root, engine["plans"], 3, "round1", partial)
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.b2nd")} == before  # nothing redone
    data = root / "preprocessed" / "Dataset003_round1" / "nnUNetPlans_3d_fullres"
    first = root / "preprocessed" / "Dataset001_teacher" / "nnUNetPlans_3d_fullres"
    changed = 0
    for case in engine["cases"]:
        assert (data / f"{case.case_id}.b2nd").resolve() == (cache / f"{case.case_id}.b2nd").resolve()
        changed += not np.array_equal(_load(data, case.case_id, "_seg.b2nd"), _load(first, case.case_id, "_seg.b2nd"))
    assert changed >= 1  # partial labels differ from the complete ones


def test_a_case_whose_image_file_changed_is_preprocessed_again(engine, tmp_path):
    """A workdir cached before its images were reoriented: the cache is not paired with new labels."""
    root, cases = engine["root"], engine["cases"]
    moved = TrainingCase(cases[0].case_id, tmp_path / cases[0].image.name, cases[0].label)
    shutil.copyfile(cases[0].image, moved.image)  # stands for the reoriented copy
    cache = next((root / "image_cache").iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.b2nd")}
    write_round_dataset(root, 4, "moved", [moved, *cases[1:]], LABELS)
    preprocess_round(root, engine["plans"], 4, "moved", [moved, *cases[1:]])
    redone = {p.name for p in cache.glob("*.b2nd") if p.stat().st_mtime_ns != before[p.name]}
    assert redone == {f"{moved.case_id}.b2nd"}
    assert (cache / f"{moved.case_id}.source").read_text() == str(moved.image.resolve())


def test_tiny_model_trains_within_budget_and_predicts(engine, tmp_path):
    root = engine["root"]
    model = train_model(NnunetDataset(root, 1, "teacher"), TINY, log=lambda _: None)
    log = (model / "fold_all").glob("training_log_*.txt")
    text = next(log).read_text()
    assert "Epoch 0" in text and "Epoch 1" not in text  # the budget: one epoch
    assert (model / "fold_all" / "checkpoint_final.pth").exists()
    segmenter = Segmenter(load_bundle(model), device="cpu", tta="flip4")
    assert segmenter.n_parameters < 3_000_000
    val = next(c for c, t in engine["truth"].items() if t["role"] == "val")
    image_path = engine["cohort"] / "imagesTr" / f"{val}_0000.nii.gz"
    out, scores = predict_case(segmenter, image_path, tmp_path / "pred.nii.gz", LABELS)
    image, pred = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(out))
    assert pred.GetSize() == image.GetSize() and pred.GetSpacing() == image.GetSpacing()
    assert pred.GetOrigin() == image.GetOrigin() and pred.GetDirection() == image.GetDirection()
    assert set(np.unique(sitk.GetArrayFromImage(pred))) <= set(range(15))
    assert 0.0 <= scores["organ_entropy"] <= 1.0 and 0.0 <= scores["tumor_entropy"] <= 1.0
    # the same scan stored in RAS: predicted on the same voxels, written on its own grid
    ras = sitk.DICOMOrient(image, "RAS")
    sitk.WriteImage(ras, str(tmp_path / "ras.nii.gz"))
    ras_out, ras_scores = predict_case(segmenter, tmp_path / "ras.nii.gz", tmp_path / "ras_pred.nii.gz", LABELS)
    ras_pred = sitk.ReadImage(str(ras_out))
    assert ras_pred.GetDirection() == ras.GetDirection() and ras_scores == scores
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ras_pred), sitk.GetArrayFromImage(pred)[:, ::-1, ::-1])
    # the voxels' confidence where the merge asks for it: round(255 p) on the input's own grid
    conf_path = tmp_path / "ras_confidence.nii.gz"
    predict_case(segmenter, tmp_path / "ras.nii.gz", tmp_path / "ras_c.nii.gz", LABELS, confidence_out=conf_path)
    confidence = sitk.ReadImage(str(conf_path))
    assert confidence.GetDirection() == ras.GetDirection() and confidence.GetPixelID() == sitk.sitkUInt8
    _, lps_probs = segmenter.predict(sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing())))
    expected = np.rint(lps_probs.astype(np.float32).max(0) * 255)[:, ::-1, ::-1]
    np.testing.assert_allclose(sitk.GetArrayFromImage(confidence), expected, atol=1)
    # disagreement against a reference label map of the case (here its ground truth) ...
    from hybridlabel.models.uncertainty import disagreement_scores

    truth = engine["cohort"] / "labelsTr" / f"{val}.nii.gz"
    both = ("disagreement", "entropy")
    _, against = predict_case(segmenter, image_path, tmp_path / "again.nii.gz", LABELS, both, reference=truth)
    expected = disagreement_scores(
        sitk.GetArrayFromImage(pred), sitk.GetArrayFromImage(sitk.ReadImage(str(truth))), LABELS
    )
    assert against == {**scores, **expected}
    # ... or, without one, against the model's own mirrored pass
    _, mirrored = predict_case(segmenter, image_path, tmp_path / "m.nii.gz", LABELS, both)
    assert 0.0 <= mirrored["organ_disagreement"] <= 1.0 and mirrored["organ_entropy"] == scores["organ_entropy"]
    seg, probs = segmenter.predict(sitk.GetArrayFromImage(image), (5.0, 4.0, 4.0))
    assert probs.shape == (15,) + seg.shape
    np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=1e-2)
    # the same 3d_fullres model exported and read back: `predict --fast`'s segmenter
    from hybridlabel.models.config import PipelineConfig
    from hybridlabel.models.nnunet.fast_predictor import FastSegmenter
    from hybridlabel.tasks.model.archive import read_archive
    from hybridlabel.tasks.model.export import write_model_archive

    archive, info = write_model_archive(model, tmp_path / "export", PipelineConfig(), 0, TINY.network)
    bundle, manifest = read_archive(archive)
    assert manifest["configuration"] == "3d_fullres" and info["parameters"] == segmenter.n_parameters
    fast = FastSegmenter(bundle, "cpu").predict_label(sitk.GetArrayFromImage(image), image.GetSpacing()[::-1])
    assert fast.shape == seg.shape and set(np.unique(fast)) <= set(range(15))


def test_a_3d_lowres_model_trains_predicts_and_exports(engine, tmp_path):
    """nnU-Net plans 3d_lowres only where the 3d_fullres patch covers under a quarter of the
    median image: a small planner memory target makes that so on the phantom."""
    from hybridlabel.models.config import PipelineConfig
    from hybridlabel.models.nnunet.fast_predictor import FastSegmenter
    from hybridlabel.tasks.model.archive import read_archive
    from hybridlabel.tasks.model.export import write_model_archive

    root = tmp_path / "nnunet"
    write_round_dataset(root, 2, "lowres", engine["cases"], LABELS)
    plans = plan_dataset(root, 2, log=lambda _: None, gpu_memory_gb=0.05)
    configurations = json.loads(plans.read_text())["configurations"]
    assert configurations["3d_lowres"]["spacing"][1] > configurations["3d_fullres"]["spacing"][1]
    with pytest.raises(NnunetError, match="planned for planner_gpu_memory_gb 0.05, the config asks null"):
        plan_dataset(root, 2, log=lambda _: None)  # plans are never remade under a workdir's models
    preprocess_round(root, plans, 2, "lowres", engine["cases"], configuration="3d_lowres")
    model = train_model(
        NnunetDataset(root, 2, "lowres"), TINY.model_copy(update={"configuration": "3d_lowres"}), log=lambda _: None
    )
    assert model.name.endswith("__3d_lowres")
    val = next(c for c, t in engine["truth"].items() if t["role"] == "val")
    image_path = engine["cohort"] / "imagesTr" / f"{val}_0000.nii.gz"
    out, _ = predict_case(Segmenter(load_bundle(model), device="cpu"), image_path, tmp_path / "pred.nii.gz", LABELS)
    image, pred = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(out))
    assert pred.GetSize() == image.GetSize() and pred.GetSpacing() == image.GetSpacing()  # back on the image's grid
    archive, _ = write_model_archive(model, tmp_path / "export", PipelineConfig(), 0, TINY.network)
    bundle, manifest = read_archive(archive)
    assert manifest["configuration"] == "3d_lowres"
    fast = FastSegmenter(bundle, "cpu").predict_label(sitk.GetArrayFromImage(image), image.GetSpacing()[::-1])
    assert fast.shape == sitk.GetArrayFromImage(image).shape and set(np.unique(fast)) <= set(range(15))


def test_partial_label_training_is_seeded_and_deterministic(engine):
    root = engine["root"]
    annotated = {c.case_id: [1, 14] for c in engine["cases"]}
    cfg = TINY.model_copy(update={"loss": "target_adaptive"})
    every_class = {c.case_id: list(range(1, 15)) for c in engine["cases"]}
    weights = []
    for dataset_id, classes in ((11, annotated), (12, annotated), (15, every_class)):
        name = f"seed{dataset_id}"
        write_round_dataset(root, dataset_id, name, engine["cases"], LABELS)
        preprocess_round(root, engine["plans"], dataset_id, name, engine["cases"])
        model = train_model(NnunetDataset(root, dataset_id, name), cfg, classes, log=lambda _: None)
        ckpt = load_weights(model / "fold_all" / "checkpoint_final.pth", "test model")  # weights-only, as every load
        weights.append(ckpt["network_weights"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # the cases' annotated classes reach the loss inside nnU-Net's own train_step
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_cases_holding_a_rare_class_are_drawn_more_often(engine):
    """One case annotates the adrenal (7): with rare-class sampling the data loader draws
    it with the larger probability (logged), and the same seed trains other weights; with
    rare-class patches its foreground patches centre on the adrenal more often, too."""
    root, weights, logs = engine["root"], [], []
    rare = {c.case_id: [1, 14] + ([7] if i == 0 else []) for i, c in enumerate(engine["cases"])}
    for dataset_id, threshold, patches in ((16, 1.0, False), (17, None, False), (18, 1.0, True)):
        name = f"rare{dataset_id}"
        write_round_dataset(root, dataset_id, name, engine["cases"], LABELS)
        preprocess_round(root, engine["plans"], dataset_id, name, engine["cases"])
        cfg = TINY.model_copy(
            update={"loss": "target_adaptive", "rare_class_sampling": threshold, "rare_class_patches": patches}
        )
        model = train_model(NnunetDataset(root, dataset_id, name), cfg, rare, log=lambda _: None)
        weights.append(load_weights(model / "fold_all" / "checkpoint_final.pth", "test model")["network_weights"])
        logs.append("".join(p.read_text() for p in (model / "fold_all").glob("training_log_*.txt")))
    n = len(engine["cases"])  # class 7 in 1 of n cases: factor n for that case
    assert f"p from {1 / (2 * n - 1):.4f} to {n / (2 * n - 1):.4f} over {n} cases" in logs[0]
    assert "rarest annotated class" not in logs[1]
    assert not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert f"centred on a class by its repeat factor: 7 x{n:.1f} (the rest x1)" in logs[2]
    assert "centred on a class" not in logs[0]
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_mask_based_normalisation_preprocesses_whole_cases_like_nnunet(engine):
    """Plans whose normalisation uses the nonzero mask cannot reuse cached images: each
    case is preprocessed whole, and equals nnU-Net's own run_case output."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    root = engine["root"]
    plans = json.loads(engine["plans"].read_text())
    config = plans["configurations"]["3d_fullres"]
    config["normalization_schemes"] = ["ZScoreNormalization"]
    config["use_mask_for_norm"] = [True]
    masked = root / "masked_plans.json"
    masked.write_text(json.dumps(plans))
    cases = engine["cases"][:2]
    write_round_dataset(root, 21, "masked", cases, LABELS)
    preprocess_round(root, masked, 21, "masked", cases)
    data = root / "preprocessed" / "Dataset021_masked" / "nnUNetPlans_3d_fullres"
    dataset = json.loads((root / "raw" / "Dataset021_masked" / "dataset.json").read_text())
    pm = PlansManager(plans)
    for case in cases:
        assert not (data / f"{case.case_id}.b2nd").is_symlink()
        ref, seg, _ = DefaultPreprocessor(verbose=False).run_case(
            [str(case.image)], str(case.label), pm, pm.get_configuration("3d_fullres"), dataset
        )
        assert np.array_equal(_load(data, case.case_id, ".b2nd"), ref.astype(np.float32))
        assert np.array_equal(_load(data, case.case_id, "_seg.b2nd"), seg.astype(np.int16))


def test_a_student_starts_from_its_parents_weights_heads_included(engine):
    root = engine["root"]
    parent = train_model(NnunetDataset(root, 1, "teacher"), TINY, log=lambda _: None)  # trained above: reused
    # organs only (one class fewer; the tumour's value 14 is then the ignore label)
    write_round_dataset(root, 13, "student", engine["cases"], LABELS, with_ignore=True, tumor=False)
    preprocess_round(root, engine["plans"], 13, "student", engine["cases"])
    student = train_model(
        NnunetDataset(root, 13, "student"),
        TINY.model_copy(update={"init_from_parent": True}),
        log=lambda _: None,
        parent_model=parent,
    )
    log = next((student / "fold_all").glob("training_log_*.txt")).read_text()
    assert "started from" in log and "checkpoint_final.pth" in log
    before = load_weights(parent / "fold_all" / "checkpoint_final.pth", "parent")["network_weights"]
    after = load_weights(student / "fold_all" / "checkpoint_final.pth", "student")["network_weights"]
    heads = [k for k in after if ".seg_layers." in k and k.endswith("weight")]
    assert heads and all(after[k].shape[0] == before[k].shape[0] - 1 for k in heads)
    # two SGD steps move the weights a little; a fresh initialisation would be as far off as the weights are large
    for key in [next(iter(after))] + heads:
        carried = before[key][: after[key].shape[0]]
        assert float((after[key] - carried).norm() / carried.norm()) < 0.2, key
