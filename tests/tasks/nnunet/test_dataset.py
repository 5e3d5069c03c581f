"""A round's nnU-Net raw dataset: links where the image is in the model's orientation, a
reoriented copy of image and label where it is not."""

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.tasks.nnunet.dataset import TrainingCase, write_round_dataset


def _case(folder, name, direction):
    rng = np.random.default_rng(len(name))
    image = sitk.GetImageFromArray(rng.normal(0, 100, (4, 6, 8)).astype(np.int16))
    label = sitk.GetImageFromArray(rng.integers(0, 3, (4, 6, 8)).astype(np.uint8))
    image.SetDirection(direction)
    label.CopyInformation(image)
    paths = folder / f"{name}_0000.nii.gz", folder / f"{name}.nii.gz"
    sitk.WriteImage(image, str(paths[0]))
    sitk.WriteImage(label, str(paths[1]))
    return TrainingCase(name, *paths)


def test_lps_cases_are_linked_and_a_ras_case_is_written_reoriented(tmp_path):
    lps = _case(tmp_path, "lps", (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ras = _case(tmp_path, "ras", (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    folder = write_round_dataset(tmp_path / "nnunet", 5, "mixed", [lps, ras], LabelMapConfig())
    assert (folder / "imagesTr" / "lps_0000.nii.gz").resolve() == lps.image.resolve()
    assert (folder / "labelsTr" / "lps.nii.gz").is_symlink()
    for kind, source, written in (
        ("image", ras.image, folder / "imagesTr" / "ras_0000.nii.gz"),
        ("label", ras.label, folder / "labelsTr" / "ras.nii.gz"),
    ):
        seen = sitk.ReadImage(str(written))
        assert written.resolve() != source.resolve(), kind
        assert seen.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1), kind
        original = sitk.GetArrayFromImage(sitk.ReadImage(str(source)))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(seen), original[:, ::-1, ::-1])
