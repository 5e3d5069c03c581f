"""The intake audit on the phantom cohort and on every kind of bad input."""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.tasks.intake.audit import DatasetError, audit_dataset

LABELS = LabelMapConfig()


def test_phantom_roles_are_recovered(phantom_cohort):
    cases = audit_dataset(phantom_cohort, LABELS)
    truth = json.loads((phantom_cohort / "phantom.json").read_text())["cases"]
    assert sorted(cases["case_id"]) == sorted(truth)
    for row in cases.to_dict("records"):
        assert row["quarantine_reason"] is None, row
        assert row["role"] == truth[row["case_id"]]["role"]
        assert row["annotated_classes"] == truth[row["case_id"]]["annotated"]
        size = list(sitk.ReadImage(row["image_path"]).GetSize())  # the phantom's scan length varies
        assert len(row["image_sha256"]) == 64 and row["shape"] == size and size[:2] == [80, 64]


def _write(array, path, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _good_image(seed=0):
    return np.random.default_rng(seed).normal(0, 100, (8, 12, 16)).astype(np.int16)


def _good_label():
    label = np.zeros((8, 12, 16), np.uint8)
    label[2:5, 3:8, 4:9] = 1
    return label


@pytest.fixture
def bad_dataset(tmp_path, real_ct):
    """One fine case and one case for each bad input of the issue."""
    root = tmp_path / "raw"
    img, lab = root / "imagesTr", root / "labelsTr"
    _write(_good_image(), img / "good_0000.nii.gz")
    _write(_good_label(), lab / "good.nii.gz")
    # unreadable / truncated
    (img / "garbage_0000.nii.gz").parent.mkdir(parents=True, exist_ok=True)
    (img / "garbage_0000.nii.gz").write_bytes(b"not an image at all")
    data = (real_ct / "ct_abdomen_3mm.nii.gz").read_bytes()
    (img / "truncated_0000.nii.gz").write_bytes(data[: len(data) // 2])
    # label grid incompatible with the image
    _write(_good_image(1), img / "offgrid_0000.nii.gz")
    _write(_good_label(), lab / "offgrid.nii.gz", origin=(50.0, 0.0, 0.0))
    # label values outside the label map
    _write(_good_image(2), img / "badvalues_0000.nii.gz")
    weird = _good_label()
    weird[0, 0, 0] = 42
    _write(weird, lab / "badvalues.nii.gz")
    # NaN and infinite intensities
    nan = _good_image(3).astype(np.float32)
    nan[1, 1, 1] = np.nan
    _write(nan, img / "nan_0000.nii.gz")
    inf = _good_image(4).astype(np.float32)
    inf[1, 1, 1] = np.inf
    _write(inf, img / "inf_0000.nii.gz")
    # an image that is not 3D, a constant image
    _write(_good_image(5)[0], img / "flat_0000.nii.gz")
    _write(np.full((8, 12, 16), -1000, np.int16), img / "constant_0000.nii.gz")
    # a label with no image
    _write(_good_label(), lab / "orphan.nii.gz")
    _write_probe_cases(img, lab)
    return root


def _patch(path: Path, offset: int, fmt: str, *values) -> None:
    """Overwrite header bytes of an uncompressed file (as a hand-edited or broken converter would)."""
    data = bytearray(path.read_bytes())
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    path.write_bytes(bytes(data))


def _write_probe_cases(img: Path, lab: Path) -> None:
    """The probe's values and geometries that the audit used to accept."""
    hot = _good_image(6).astype(np.float64)
    hot.flat[:20] = 1e30  # 20 voxels of 1e30: nnU-Net's fingerprint mean 1.3e27, std inf
    _write(hot, img / "hot_0000.nii.gz")
    for name, value in (("pixdim0", 0.0), ("pixdimnan", float("nan")), ("pixdimneg", -1.0)):
        _write(_good_image(7), img / f"{name}_0000.nii")
        _patch(img / f"{name}_0000.nii", 80, "<f", value)  # pixdim[1]
    for name, spacing in (("hugespacing", "1e+30"), ("tinyspacing", "1e-30")):
        _write(_good_image(8), img / f"{name}_0000.mha")
        text = (
            (img / f"{name}_0000.mha")
            .read_bytes()
            .replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = " + spacing.encode() + b" 1 1")
        )
        (img / f"{name}_0000.mha").write_bytes(text)
    _write(_good_image(9), img / "nanorigin_0000.nii.gz", origin=(float("nan"), 0.0, 0.0))
    sheared = sitk.GetImageFromArray(_good_image(10))
    sheared.SetDirection((1, 0.5, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteImage(sheared, str(img / "sheared_0000.nrrd"))
    _write(_good_image(11), img / "declared_0000.nii")
    _patch(img / "declared_0000.nii", 42, "<3h", 2000, 2000, 2000)  # 16 GB declared in a 3 KB file
    for name, value, dtype in (
        ("label1e30", 1e30, np.float32),
        ("label1e12", 1e12, np.float64),
        ("label1e9", 1e9, np.uint32),
    ):
        _write(_good_image(12), img / f"{name}_0000.nii.gz")
        label = _good_label().astype(dtype)
        label[0, 0, 0] = value
        _write(label, lab / f"{name}.nii.gz")


EXPECTED = {
    "garbage": "image unreadable",
    "truncated": "truncated",
    "offgrid": "physical space",
    "badvalues": "outside the label map: 42",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "flat": "2D",
    "constant": "constant",
    "orphan": "has no image",
    "hot": "20 voxel(s) outside -32768..32767 HU",
    "pixdim0": "header voxel size (0, 1, 1) is zero, negative or not a number",
    "pixdimnan": "header voxel size (nan, 1, 1)",
    "pixdimneg": "header voxel size (-1, 1, 1)",
    "hugespacing": "spacing (1e+30, 1, 1) mm lies outside 0.05-50 mm",
    "tinyspacing": "spacing (1e-30, 1, 1) mm lies outside 0.05-50 mm",
    "nanorigin": "origin (nan, 0, 0) is not a finite position",
    "sheared": "direction matrix is not orthonormal",
    "declared": "header declares 2000x2000x2000 = 8,000,000,000 voxels",
    "label1e30": "outside the label map: 1e+30",
    "label1e12": "outside the label map: 1e+12",
    "label1e9": "outside the label map: 1e+09",
}


def test_every_bad_input_is_quarantined_and_the_rest_kept(bad_dataset):
    cases = audit_dataset(bad_dataset, LABELS).set_index("case_id")
    assert set(cases.index) == set(EXPECTED) | {"good"}
    good = cases.loc["good"]
    assert good["role"] == "partial" and good["quarantine_reason"] is None
    assert good["annotated_classes"] == [1]
    for case_id, fragment in EXPECTED.items():
        row = cases.loc[case_id]
        assert row["role"] == "quarantined", case_id
        assert fragment in row["quarantine_reason"], (case_id, row["quarantine_reason"])
        assert "\n" not in row["quarantine_reason"]


def test_manifest_cases_duplicates_unsafe_ids_and_dicom(tmp_path, real_ct):
    root = tmp_path / "raw"
    _write(_good_image(), root / "a.nii.gz")
    _write(_good_label(), root / "a_label.nii.gz")
    shutil.copytree(real_ct / "dicom_series", root / "dicom")
    shutil.copy(real_ct / "dicom_series_totalseg.nii.gz", root / "dicom_label.nii.gz")
    manifest = root / "manifest.csv"
    manifest.write_text(
        "case_id,image,label,annotated,role\n"
        "a,a.nii.gz,a_label.nii.gz,1 14,\n"
        "a,a.nii.gz,,,\n"
        "../escape,a.nii.gz,,,\n"
        "ct,dicom,,,\n"
    )
    cases = audit_dataset(root, LABELS, manifest=manifest)
    assert list(cases["case_id"]) == ["a", "a", "../escape", "ct"]
    first, dup, escape, ct = cases.to_dict("records")
    assert first["role"] == "partial" and first["annotated_classes"] == [1, 14]  # tumour declared, absent
    assert dup["role"] == "quarantined" and "duplicate case id 'a'" in dup["quarantine_reason"]
    assert escape["role"] == "quarantined" and "path separator" in escape["quarantine_reason"]
    assert ct["role"] == "unlabeled" and ct["shape"] == [512, 512, 20]


def test_dicom_series_with_label_in_another_orientation_is_resampled(tmp_path, real_ct):
    root = tmp_path / "raw"
    root.mkdir()
    manifest = root / "manifest.csv"
    # TotalSegmentator ids are not FLARE ids: declare a label map that holds them
    manifest.write_text(
        f"case_id,image,label,annotated,role\nct,{real_ct / 'dicom_series'},"
        f"{real_ct / 'dicom_series_totalseg.nii.gz'},,\n"
    )
    labels = LabelMapConfig(labels={0: "background", **{i: f"c{i}" for i in range(1, 118)}}, tumor_id=117)
    out = tmp_path / "resampled"
    refused = audit_dataset(root, labels, manifest=manifest, resample_dir=out).iloc[0]
    assert "lies outside the dataset folder" in refused["quarantine_reason"]
    cases = audit_dataset(root, labels, manifest=manifest, resample_dir=out, allow_outside=True)
    row = cases.iloc[0].to_dict()
    assert row["quarantine_reason"] is None and row["label_resampled"]
    assert row["label_path"] == str(out / "ct.nii.gz")
    resampled = sitk.ReadImage(row["label_path"])
    assert resampled.GetSize() == (512, 512, 20) and resampled.GetDirection()[4] == 1.0
    counts = json.loads(row["voxel_counts"])
    assert counts["5"] > 1000  # liver voxels survive the resampling


def test_missing_dataset_and_malformed_manifest(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        audit_dataset(tmp_path / "missing", LABELS)
    (tmp_path / "raw").mkdir()
    bad = tmp_path / "raw" / "m.csv"
    bad.write_text("id,path\nx,y\n")
    with pytest.raises(DatasetError, match="lacks column"):
        audit_dataset(tmp_path / "raw", LABELS, manifest=bad)
    bad.write_text("case_id,image,annotated\nx,y,liver\n")
    with pytest.raises(DatasetError, match="row 2"):
        audit_dataset(tmp_path / "raw", LABELS, manifest=bad)


def test_paths_outside_the_dataset_are_refused_unless_allowed(tmp_path):
    root, elsewhere = tmp_path / "raw", tmp_path / "elsewhere"
    _write(_good_image(), root / "in.nii.gz")
    _write(_good_image(), elsewhere / "out.nii.gz")
    (root / "link.nii.gz").symlink_to(elsewhere / "out.nii.gz")
    (root / "manifest.csv").write_text(
        "case_id,image,label,annotated,role\n"
        "ok,in.nii.gz,,,\n"
        "up,../elsewhere/out.nii.gz,,,\n"
        f"abs,{elsewhere / 'out.nii.gz'},,,\n"
        "link,link.nii.gz,,,\n"
        "secret,/etc/shadow,,,\n"
    )
    cases = audit_dataset(root, LABELS).set_index("case_id")
    assert cases.loc["ok", "role"] == "unlabeled"
    for case_id in ("up", "abs", "link", "secret"):
        assert "lies outside the dataset folder" in cases.loc[case_id, "quarantine_reason"], case_id
        assert pd.isna(cases.loc[case_id, "image_sha256"])  # never opened
    allowed = audit_dataset(root, LABELS, allow_outside=True).set_index("case_id")
    assert (allowed.loc[["up", "abs", "link"], "role"] == "unlabeled").all()


def test_two_files_for_one_case_are_ambiguous(tmp_path):
    root = tmp_path / "raw"
    _write(_good_image(), root / "imagesTr" / "a_0000.nii.gz")
    _write(_good_image(), root / "imagesTr" / "b_0000.nii.gz")
    _write(_good_label(), root / "labelsTr" / "a.nii.gz")
    _write(_good_label(), root / "labelsTr" / "a.mha")
    _write(_good_image(), root / "imagesTr" / "b_0000.nrrd")
    cases = audit_dataset(root, LABELS).set_index("case_id")
    assert "two label files for one case (a.mha, a.nii.gz)" in cases.loc["a", "quarantine_reason"]
    assert "two image files for one case" in cases.loc["b", "quarantine_reason"]


def test_a_dicom_series_with_missing_slices_is_quarantined_naming_the_gap(tmp_path, real_ct):
    import SimpleITK as sitk_

    files = sitk_.ImageSeriesReader.GetGDCMSeriesFileNames(str(real_ct / "dicom_series"))
    root = tmp_path / "raw"
    (root / "gap").mkdir(parents=True)
    for i, name in enumerate(files):
        if i not in (8, 9):  # two slices removed from the middle
            shutil.copy(name, root / "gap" / Path(name).name)
    (root / "manifest.csv").write_text("case_id,image,label,annotated,role\ngap,gap,,,\n")
    reason = audit_dataset(root, LABELS).iloc[0]["quarantine_reason"]
    assert "about 2 missing slice(s): 6.00 mm between slices 7 and 8 where the series steps 2.00 mm" in reason


def test_an_unreadable_file_keeps_itks_cause(tmp_path):
    root = tmp_path / "raw"
    (root / "imagesTr").mkdir(parents=True)
    (root / "imagesTr" / "x_0000.mha").write_bytes(b"garbage")
    reason = audit_dataset(root, LABELS).iloc[0]["quarantine_reason"]
    assert "Unable to determine ImageIO reader" in reason and ".cxx" not in reason


def test_a_duplicated_dicom_slice_is_called_a_duplicate(tmp_path, real_ct):
    """The probe: a copied slice file was reported as 'about 13 missing slice(s)'."""
    root = tmp_path / "raw"
    shutil.copytree(real_ct / "dicom_series", root / "dup")
    first = sorted((root / "dup").iterdir())[4]
    shutil.copy(first, root / "dup" / "zz_copy.dcm")
    (root / "manifest.csv").write_text("case_id,image,label,annotated,role\ndup,dup,,,\n")
    reason = audit_dataset(root, LABELS).iloc[0]["quarantine_reason"]
    assert "1 slice(s) share a position with another" in reason and "duplicate slices" in reason
    assert "missing" not in reason
