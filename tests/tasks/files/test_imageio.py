import numpy as np
import pytest
import SimpleITK as sitk

from hybridlabel.tasks.files.imageio import (
    ImageReadError,
    grid_of,
    read_image,
    resample_label_onto,
    sha256_path,
    write_image,
)


def test_real_dicom_series_is_read_with_its_geometry(real_ct):
    image = read_image(real_ct / "dicom_series")
    assert image.GetSize() == (512, 512, 20)
    assert image.GetSpacing() == pytest.approx((0.9765625, 0.9765625, 2.0))
    values = sitk.GetArrayViewFromImage(image)
    assert values.min() < -900 and values.max() > 200  # air and contrast in HU


def test_dicom_label_in_another_orientation_resamples_onto_the_image(real_ct):
    image = read_image(real_ct / "dicom_series")
    label = read_image(real_ct / "dicom_series_totalseg.nii.gz")
    assert label.GetDirection()[4] == -1.0  # y flipped
    resampled = resample_label_onto(label, image)
    assert grid_of(resampled) == grid_of(image)
    # a y flip: the resampled array is the label array mirrored along y, voxel for voxel
    expected = sitk.GetArrayFromImage(label)[:, ::-1, :]
    assert np.array_equal(sitk.GetArrayFromImage(resampled), expected)
    # the physical point of a liver voxel lands in liver in both images
    idx = tuple(int(i) for i in np.argwhere(expected == 5)[0][::-1])
    point = image.TransformIndexToPhysicalPoint(idx)
    assert label[label.TransformPhysicalPointToIndex(point)] == 5


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_formats_round_trip_with_geometry(tmp_path, real_ct, suffix):
    image = read_image(real_ct / "ct_abdomen_3mm.nii.gz")
    out = write_image(image, tmp_path / f"ct{suffix}")
    back = read_image(out)
    assert grid_of(back).size == grid_of(image).size
    assert np.allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    assert np.allclose(back.GetDirection(), image.GetDirection())
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
    assert [p.name for p in tmp_path.iterdir()] == [f"ct{suffix}"]  # no temporary left


def test_truncated_file_gives_a_one_line_error(tmp_path, real_ct):
    data = (real_ct / "ct_abdomen_3mm.nii.gz").read_bytes()
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError) as info:
        sitk.GetArrayViewFromImage(read_image(bad))
    assert "\n" not in str(info.value)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="no DICOM series"):
        read_image(tmp_path / "empty")


def test_sha256_of_folder_depends_on_content(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"1")
    first = sha256_path(tmp_path / "d")
    (tmp_path / "d" / "a").write_bytes(b"2")
    assert sha256_path(tmp_path / "d") != first


def test_an_uncompressed_nifti_with_a_rescale_slope_is_read_whole(tmp_path):
    """ITK reports an int16 NIfTI with scl_slope 0.5 as float32: the bytes the file must
    hold are the header's own (2 per voxel), not ITK's output type's (4), or every such
    file would be refused as truncated."""
    import struct

    path = tmp_path / "slope.nii"
    stored = np.random.default_rng(0).integers(-1000, 1000, (10, 12, 14)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(stored), str(path))
    data = bytearray(path.read_bytes())
    data[112:120] = struct.pack("<2f", 0.5, -1024.0)  # scl_slope, scl_inter
    path.write_bytes(bytes(data))
    image = read_image(path)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), stored * 0.5 - 1024.0)
    path.write_bytes(bytes(data[:-100]))  # and a truncated one is still refused
    with pytest.raises(Exception, match="truncated"):
        read_image(path)
