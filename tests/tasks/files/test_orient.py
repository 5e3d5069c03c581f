"""The network sees every image in one axis orientation; each label map goes back onto its
image's own grid: the real abdomen CT (stored in RAS) and a permuted stack."""

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.geometry import orientation_code
from hybridlabel.tasks.files.orient import to_image_grid, to_model_orientation
from tests.realct import REAL_CT


def _crop():
    image = sitk.ReadImage(str(REAL_CT / "ct_abdomen_3mm.nii.gz"))[30:70, 20:60, 5:15]
    label = sitk.ReadImage(str(REAL_CT / "ct_abdomen_3mm_totalseg.nii.gz"))[30:70, 20:60, 5:15]
    return image, label


def test_a_ras_scan_is_flipped_in_plane_for_the_network_and_its_label_flipped_back():
    image, label = _crop()
    assert orientation_code(image.GetDirection()) == "RAS"
    seen = to_model_orientation(image)
    assert orientation_code(seen.GetDirection()) == "LPS" and seen.GetSize() == image.GetSize()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(seen), sitk.GetArrayFromImage(image)[:, ::-1, ::-1])
    corner = image.TransformIndexToPhysicalPoint((image.GetWidth() - 1, image.GetHeight() - 1, 0))
    np.testing.assert_allclose(seen.GetOrigin(), corner, atol=1e-4)  # the same voxels in space
    back = to_image_grid(to_model_orientation(label), image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(label))
    assert back.GetDirection() == image.GetDirection() and back.GetOrigin() == image.GetOrigin()


def test_a_permuted_stack_round_trips_and_lps_or_unarchived_models_are_left_alone():
    image, label = _crop()
    sagittal = sitk.DICOMOrient(image, "PSL")
    seen = to_model_orientation(sagittal)
    assert orientation_code(seen.GetDirection()) == "LPS"
    assert sorted(seen.GetSize()) == sorted(image.GetSize())
    labelled = sitk.DICOMOrient(label, "PSL")
    back = to_image_grid(to_model_orientation(labelled), sagittal)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(labelled))
    lps = sitk.DICOMOrient(image, "LPS")
    assert to_model_orientation(lps) is lps and to_image_grid(label, label) is label
    assert to_model_orientation(image, None) is image  # an archive without an orientation
