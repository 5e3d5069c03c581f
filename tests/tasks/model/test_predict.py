"""Round trip: the pipeline's exported archive segments a NIfTI file, the real DICOM
series and a folder through `hybridlabel predict`; bad archives get one clear line."""

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from hybridlabel.cli.main import app
from tests.realct import REAL_CT

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it

runner = CliRunner()
RECORD_KEYS = {
    "case_id",
    "input",
    "output",
    "device",
    "fast",
    "tta",
    "min_tumor_peak",
    "model",
    "wall_time_s",
    "peak_ram_mb",
    "peak_gpu_mb",
    "gpu_memory_time_area_mb_s",
    "sample_interval_s",
    "samples",
    "labels_present",
    "labels_valid",
    "qc",
}


@pytest.fixture(scope="module")
def archive(finished) -> Path:
    path = Path(finished["result"]["export"])
    assert path.is_file()
    return path


def _same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


def _check(out: Path, source_image: sitk.Image, labels: set[int]) -> dict:
    label = sitk.ReadImage(str(out))
    _same_geometry(label, source_image)
    assert set(np.unique(sitk.GetArrayViewFromImage(label)).tolist()) <= labels | {0}
    record = json.loads(out.with_name(out.name.replace(".nii.gz", ".efficiency.json")).read_text())
    assert RECORD_KEYS <= set(record) and record["labels_valid"] and "error" not in record
    assert record["wall_time_s"] > 0 and record["peak_ram_mb"] > 100 and record["device"] == "cpu"
    return record


def test_predict_a_nifti_file_in_its_geometry(archive, phantom_cohort, tmp_path):
    from hybridlabel.tasks.model.archive import read_archive

    _, info = read_archive(archive)
    labels = {int(v) for v in info["labels"].values() if isinstance(v, int)}
    image = sorted((phantom_cohort / "imagesTr").glob("*_0000.nii.gz"))[0]
    out = tmp_path / "case.nii.gz"
    result = runner.invoke(app, ["predict", str(archive), str(image), str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = _check(out, sitk.ReadImage(str(image)), labels)
    assert record["fast"] is True and record["tta"] == "none"
    assert record["min_tumor_peak"] == info["tumor_filter"]["min_peak"] == 0.9  # the pipeline's rule travels
    # the same scan stored in RAS: the network sees the same voxels, the label map is on the RAS grid
    ras = sitk.DICOMOrient(sitk.ReadImage(str(image)), "RAS")
    sitk.WriteImage(ras, str(tmp_path / "ras.nii.gz"))
    ras_out = tmp_path / "ras_seg.nii.gz"
    result = runner.invoke(
        app, ["predict", str(archive), str(tmp_path / "ras.nii.gz"), str(ras_out), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    _check(ras_out, ras, labels)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(ras_out))),
        sitk.GetArrayFromImage(sitk.ReadImage(str(out)))[:, ::-1, ::-1],
    )

    # the rule's bar set on the command line: 0 keeps every tumour, a bar outside [0, 1] is refused
    kept = tmp_path / "kept.nii.gz"
    result = runner.invoke(app, ["predict", str(archive), str(image), str(kept), "--min-tumor-peak", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "kept.efficiency.json").read_text())["min_tumor_peak"] is None
    result = runner.invoke(app, ["predict", str(archive), str(image), str(kept), "--min-tumor-peak", "2"])
    assert result.exit_code == 2 and "--min-tumor-peak must lie in [0, 1], got 2.0" in result.output

    slow = tmp_path / "slow.nii.gz"
    result = runner.invoke(app, ["predict", str(archive), str(image), str(slow), "--device", "cpu", "--no-fast"])
    assert result.exit_code == 0, result.output
    _check(slow, sitk.ReadImage(str(image)), labels)
    from hybridlabel.models.nnunet.fast_predictor import body_box

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(image)))
    box = body_box(ct, sitk.ReadImage(str(image)).GetSpacing()[::-1])
    outside = np.ones(a.shape, bool)
    outside[box] = False
    assert not a[outside].any()  # the fast path labels nothing outside the body box


def test_an_implausible_output_is_flagged_against_the_training_labels(archive, phantom_cohort, tmp_path, monkeypatch):
    """The archive holds the training labels' ranges; an output that paints the liver over
    the whole scan (the network replaced by a broken one) gets a `check:` line and its
    reasons in the record, and still exits 0: the output was written."""
    from hybridlabel.models.nnunet.fast_predictor import FastSegmenter
    from hybridlabel.tasks.model.archive import read_archive

    _, info = read_archive(archive)
    ranges = info["label_qc"]
    assert ranges["1"]["cases"] > 0 and 0 < ranges["1"]["volume_ml"][0] <= ranges["1"]["volume_ml"][1]
    image = sorted((phantom_cohort / "imagesTr").glob("*_0000.nii.gz"))[0]

    def everything_is_liver(self, ct, spacing, tumor_filter=None):
        return np.ones(ct.shape, np.uint8)

    monkeypatch.setattr(FastSegmenter, "predict_label", everything_is_liver)
    out = tmp_path / "bad.nii.gz"
    result = runner.invoke(app, ["predict", str(archive), str(image), str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "looks implausible: liver:" in result.output and "the largest training volume" in result.output
    qc = json.loads((tmp_path / "bad.efficiency.json").read_text())["qc"]
    assert qc["checked"] and qc["classes"]["1"]["components"] == 1
    assert len(qc["flags"]) == 1 and qc["flags"][0].startswith("liver: ")


@pytest.mark.parametrize("fast", [True, False])
def test_both_paths_put_labels_where_the_network_put_them(archive, fast):
    """The network (the one part a CPU test cannot train) is replaced by a known function
    of its input: class 1 where the normalised CT is above 0, i.e. above the dataset's
    mean HU. Both paths must give back exactly that mask on the real CT's own grid
    (3 mm: resampled to the model's spacing and back), boundaries aside."""
    import torch

    from hybridlabel.models.nnunet.fast_predictor import FastSegmenter
    from hybridlabel.tasks.model.archive import read_archive

    bundle, _ = read_archive(archive)
    seg = FastSegmenter(bundle, "cpu", fast=fast)
    heads = seg.n_classes

    def network_stand_in(data):
        d = (data if torch.is_tensor(data) else torch.from_numpy(np.asarray(data))).float()[0]
        rest = [torch.full_like(d, -1e3)] * (heads - 2)
        return torch.stack([-d, d, *rest])

    seg.predictor.predict_logits_from_preprocessed_data = network_stand_in
    image = sitk.ReadImage(str(REAL_CT / "ct_abdomen_3mm.nii.gz"))
    ct = sitk.GetArrayFromImage(image).astype(np.float32)
    label = seg.predict_label(ct, image.GetSpacing()[::-1])
    mean = bundle.plans["foreground_intensity_properties_per_channel"]["0"]["mean"]
    expected = (ct > mean).astype(np.uint8)
    if fast:
        from hybridlabel.models.nnunet.fast_predictor import body_box

        inside = np.zeros(ct.shape, bool)
        inside[body_box(ct, image.GetSpacing()[::-1])] = True
        expected[~inside] = 0
    assert label.shape == ct.shape
    assert expected.sum() > 1000 and (label == expected).mean() > 0.97


def test_predict_the_real_dicom_series(archive, tmp_path):
    series = REAL_CT / "dicom_series"
    out = tmp_path / "dicom"
    result = runner.invoke(app, ["predict", str(archive), str(series), str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    from hybridlabel.tasks.files.imageio import read_image

    written = out / "dicom_series.nii.gz"
    _check(written, read_image(series), set(range(0, 16)))


def test_predict_a_folder_with_mirroring(archive, phantom_cohort, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for image in sorted((phantom_cohort / "imagesTr").glob("*_0000.nii.gz"))[:2]:
        (folder / image.name).symlink_to(image)
    (folder / "notes.txt").write_text("not an image")
    result = runner.invoke(
        app, ["predict", str(archive), str(folder), str(tmp_path / "out"), "--device", "cpu", "--tta", "mirror"]
    )
    assert result.exit_code == 0, result.output
    outs = sorted((tmp_path / "out").glob("*.nii.gz"))
    assert [p.name for p in outs] == [p.name.replace("_0000", "") for p in sorted(folder.glob("*.nii.gz"))]
    assert (
        json.loads((tmp_path / "out" / outs[0].name.replace(".nii.gz", ".efficiency.json")).read_text())["tta"]
        == "mirror"
    )


def test_bad_archives_get_one_clear_line(archive, tmp_path):
    image = REAL_CT / "ct_abdomen_3mm.nii.gz"
    truncated = tmp_path / "truncated.hlmodel.zip"
    truncated.write_bytes(archive.read_bytes()[:2000])
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("model.pt", b"weights of something else")
    tampered = tmp_path / "tampered.hlmodel.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item, data + b" " if item.filename == "plans.json" else data)
    for path, message in (
        (truncated, "not a readable model archive"),
        (foreign, "not a hybridlabel model archive"),
        (tampered, "does not match its sha256"),
        (tmp_path / "missing.zip", "not found"),
    ):
        result = runner.invoke(app, ["predict", str(path), str(image), str(tmp_path / "o.nii.gz"), "--device", "cpu"])
        assert result.exit_code == 2, (path, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    result = runner.invoke(app, ["predict", str(archive), str(tmp_path / "nope"), str(tmp_path / "o.nii.gz")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_one_bad_input_does_not_stop_a_folder(archive, phantom_cohort, tmp_path):
    """A 2D image and a file that is not an image each get their own error record; the
    good input is segmented, and the exit code (1) says that some failed."""
    folder = tmp_path / "in"
    folder.mkdir()
    good = sorted((phantom_cohort / "imagesTr").glob("*_0000.nii.gz"))[0]
    (folder / "a_good.nii.gz").symlink_to(good)
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkInt16) + 5, str(folder / "b_flat.nii.gz"))
    (folder / "c_junk.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(REAL_CT / "dicom_series"))
    (folder / "d_gap").mkdir()
    for name in files[:5] + files[7:]:
        (folder / "d_gap" / Path(name).name).symlink_to(name)
    # geometry ITK would hide or copy: pixdim 0 (read as 1 mm) and a NaN origin
    scan = sitk.GetImageFromArray(np.zeros((8, 12, 16), np.int16) - 1000)
    sitk.WriteImage(scan, str(folder / "e_pixdim0.nii"))
    data = bytearray((folder / "e_pixdim0.nii").read_bytes())
    data[80:84] = struct.pack("<f", 0.0)
    (folder / "e_pixdim0.nii").write_bytes(bytes(data))
    scan.SetOrigin((float("nan"), 0.0, 0.0))
    sitk.WriteImage(scan, str(folder / "f_nanorigin.nii.gz"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(archive), str(folder), str(out), "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert "5 of 6 input(s) could not be segmented" in result.output
    for name, why in (("e_pixdim0", "header voxel size (0, 1, 1)"), ("f_nanorigin", "origin (nan, 0, 0)")):
        assert why in json.loads((out / f"{name}.efficiency.json").read_text())["error"], name
        assert not (out / f"{name}.nii.gz").exists()
    gap = json.loads((out / "d_gap.efficiency.json").read_text())
    assert "about 2 missing slice(s)" in gap["error"] and not (out / "d_gap.nii.gz").exists()
    assert (out / "a_good.nii.gz").is_file()
    flat = json.loads((out / "b_flat.efficiency.json").read_text())
    junk = json.loads((out / "c_junk.efficiency.json").read_text())
    assert "2D" in flat["error"] and "c_junk" in junk["error"]
    assert "Traceback" not in result.output
