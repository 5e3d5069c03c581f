"""`merge_case_files` and the `merge` / `select` commands on real files."""

import json

import numpy as np
import pandas as pd
import SimpleITK as sitk
from typer.testing import CliRunner

from hybridlabel.cli.main import app
from hybridlabel.models.config import PipelineConfig
from hybridlabel.tasks.merge import merge_case_files
from tests.realct import REAL_CT, read_flare

runner = CliRunner()


def _write(array, reference, path):
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))
    return path


def test_merge_files_on_a_real_scan_writes_label_in_gt_geometry_and_record(tmp_path):
    full, ref = read_flare("ct_abdomen_3mm_totalseg.nii.gz")
    pred, _ = read_flare("ct_abdomen_3mm_totalseg_fast.nii.gz")
    gt = np.where(np.isin(full, [2, 13]), full, 0).astype(np.uint8)
    g = _write(gt, ref, tmp_path / "gt.nii.gz")
    p = _write(pred, ref, tmp_path / "pred.nii.gz")
    probs = np.zeros((15,) + pred.shape, np.float16)
    for c in range(15):
        probs[c][pred == c] = 1.0
    np.savez_compressed(tmp_path / "probs.npz", probabilities=probs)
    out, record_path, returned = merge_case_files(
        p, tmp_path / "out.nii.gz", PipelineConfig().merge, PipelineConfig().label_map, g, tmp_path / "probs.npz"
    )
    hybrid = sitk.ReadImage(str(out))
    assert hybrid.GetSize() == ref.GetSize() and hybrid.GetDirection() == ref.GetDirection()
    assert np.allclose(hybrid.GetOrigin(), ref.GetOrigin())
    h = sitk.GetArrayFromImage(hybrid)
    assert np.array_equal(h == 2, gt == 2) and (h == 1).any()  # kidneys from G, liver from P
    record = json.loads(record_path.read_text())
    assert returned == record  # the record returned is the one written beside the label
    assert record["annotated"] == [2, 13] and record["sources"]["2"] == "gt" and record["sources"]["1"] == "pseudo"
    assert record["scores"]["organ_entropy"] < 0.01
    assert sum(sum(v.values()) for v in record["counts"].values()) == h.size
    # the prediction's agreement with the annotated classes, for the student's pseudo-label trust
    assert set(record["overlap"]) == {"2", "13"}
    for c in (2, 13):
        inter, n_pred, n_gt = record["overlap"][str(c)]
        assert n_pred == int((pred == c).sum()) and n_gt == int((gt == c).sum())
        assert inter == int(((pred == c) & (gt == c)).sum()) > 0


def test_voxel_confidence_written_by_the_prediction_step_makes_unsure_pseudo_voxels_ignore(tmp_path):
    """`merge.min_voxel_confidence` in a round: the prediction step's uint8 confidence map
    (round(255 p)) is what the merge compares with; ground truth is never ignored."""
    import pytest

    from hybridlabel.tasks.merge import MergeInputError

    full, ref = read_flare("ct_abdomen_3mm_totalseg.nii.gz")
    pred, _ = read_flare("ct_abdomen_3mm_totalseg_fast.nii.gz")
    gt = np.where(np.isin(full, [2, 13]), full, 0).astype(np.uint8)
    g, p = _write(gt, ref, tmp_path / "gt.nii.gz"), _write(pred, ref, tmp_path / "pred.nii.gz")
    confidence = np.full(pred.shape, 255, np.uint8)
    confidence[np.isin(pred, [1, 2])] = 100  # 0.39: the liver and the right kidney unsure
    c = _write(confidence, ref, tmp_path / "confidence.nii.gz")
    cfg = PipelineConfig(merge={"min_voxel_confidence": 0.5})
    out, _, record = merge_case_files(p, tmp_path / "out.nii.gz", cfg.merge, cfg.label_map, g, confidence_path=c)
    h = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    ignore = cfg.label_map.ignore_id
    unsure_pseudo = np.isin(pred, [1, 2]) & (gt == 0)
    assert unsure_pseudo.any() and (h[unsure_pseudo] == ignore).all()
    assert np.array_equal(h == 2, gt == 2)  # the annotated kidney stays, however unsure the prediction
    assert (h == 1).sum() == 0 and sum(record["counts"]["ignore"].values()) == (h == ignore).sum()
    # without the option the same files merge as before: no voxel ignored
    plain, _, _ = merge_case_files(
        p, tmp_path / "plain.nii.gz", PipelineConfig().merge, cfg.label_map, g, None, confidence_path=c
    )
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(plain))) == ignore).sum() == 0
    # a confidence map of another case: one line, nothing written
    small = _write(confidence[:, :10], sitk.GetImageFromArray(confidence[:, :10]), tmp_path / "small.nii.gz")
    with pytest.raises(MergeInputError, match="does not match the prediction's"):
        merge_case_files(p, tmp_path / "bad.nii.gz", cfg.merge, cfg.label_map, g, confidence_path=small)
    assert not (tmp_path / "bad.nii.gz").exists()


def test_merge_cli_resamples_a_prediction_in_another_orientation(tmp_path):
    """The DICOM series' label (y flipped) as prediction, merged onto the series' own grid."""
    label = sitk.ReadImage(str(REAL_CT / "dicom_series_totalseg.nii.gz"))
    series = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(REAL_CT / "dicom_series")))
    from tests.realct import to_flare

    pred = sitk.GetImageFromArray(to_flare(sitk.GetArrayFromImage(label)))
    pred.CopyInformation(label)
    sitk.WriteImage(pred, str(tmp_path / "pred.nii.gz"))
    empty = sitk.Image(series.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(series)
    sitk.WriteImage(empty, str(tmp_path / "gt.nii.gz"))
    result = runner.invoke(
        app,
        [
            "merge",
            "--label",
            str(tmp_path / "gt.nii.gz"),
            "--pred",
            str(tmp_path / "pred.nii.gz"),
            "--out",
            str(tmp_path / "out.nii.gz"),
            "--annotated",
            "",
        ],
    )
    assert result.exit_code == 0, result.output
    out = sitk.ReadImage(str(tmp_path / "out.nii.gz"))
    assert out.GetDirection() == series.GetDirection()
    flipped = to_flare(sitk.GetArrayFromImage(label))[:, ::-1, :]
    assert np.array_equal(sitk.GetArrayFromImage(out) == 1, flipped == 1)  # liver lands where it is


def test_merge_cli_errors_are_clear(tmp_path):
    missing = runner.invoke(
        app, ["merge", "--pred", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "o.nii.gz")]
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output
    a = sitk.Image([8, 8, 8], sitk.sitkUInt8)
    b = sitk.Image([8, 8, 8], sitk.sitkUInt8)
    b.SetOrigin((100.0, 0.0, 0.0))
    sitk.WriteImage(a, str(tmp_path / "a.nii.gz"))
    sitk.WriteImage(b, str(tmp_path / "b.nii.gz"))
    off = runner.invoke(
        app,
        [
            "merge",
            "--label",
            str(tmp_path / "a.nii.gz"),
            "--pred",
            str(tmp_path / "b.nii.gz"),
            "--out",
            str(tmp_path / "o.nii.gz"),
        ],
    )
    assert off.exit_code == 2 and "physical space" in off.output
    bad = runner.invoke(
        app,
        ["merge", "--pred", str(tmp_path / "a.nii.gz"), "--out", str(tmp_path / "o.nii.gz"), "--annotated", "liver"],
    )
    assert bad.exit_code == 2 and "class ids" in bad.output


def test_select_cli_writes_decisions(tmp_path):
    frame = pd.DataFrame(
        {
            "case_id": [f"u{i}" for i in range(6)],
            "organ_entropy": [0.3, 0.1, 0.2, 0.6, 0.5, 0.4],
            "tumor_entropy": [0.1] * 6,
        }
    )
    frame.to_parquet(tmp_path / "scores.parquet")
    result = runner.invoke(
        app, ["select", str(tmp_path / "scores.parquet"), "--organ-keep", "0.5", "--tumor-keep", "1"]
    )
    assert result.exit_code == 0, result.output
    decisions = pd.read_parquet(tmp_path / "scores.selection.parquet").set_index("case_id")
    assert list(decisions.index[decisions["decision"] != "sits_out"]) == ["u1", "u2", "u0"]
    assert decisions.loc["u0", "decision"] == "tumor_kept"  # tumour scores tie: case id decides
    bad = runner.invoke(app, ["select", str(tmp_path / "scores.parquet"), "--organ-keep", "1.5", "--tumor-keep", "1"])
    assert bad.exit_code == 2 and "fraction" in bad.output
