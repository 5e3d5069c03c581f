"""A fingerprint whose intensities cannot normalise CT is refused, naming the images
responsible, and the plans made from it are removed (the probe's 1e30 case got past an
audit that checked only finiteness: mean 1.3e27, std inf, every image normalised to 0)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from hybridlabel.models.intake import fingerprint_problem
from hybridlabel.tasks.nnunet.preprocess import NnunetError, check_fingerprint

GOOD = {"mean": 40.0, "std": 120.0, "min": -1000.0, "max": 2000.0, "percentile_00_5": -900.0, "percentile_99_5": 300.0}


@pytest.mark.parametrize(
    "change, shown",
    [
        ({"mean": 1.3e27}, "mean 1.3e+27"),
        ({"std": float("inf")}, "std inf"),
        ({"std": 0.0}, "std 0.0"),
        ({"max": float("nan")}, "max nan"),
    ],
)
def test_absurd_statistics_are_named(change, shown):
    assert fingerprint_problem({"0": GOOD}) is None
    assert shown in fingerprint_problem({"0": {**GOOD, **change}})


def test_the_cases_responsible_are_named_and_the_plans_removed(tmp_path):
    name = "Dataset501_x"
    images = tmp_path / "raw" / name / "imagesTr"
    images.mkdir(parents=True)
    for case, peak in (("fine", 300.0), ("hot", 1e30)):
        array = np.random.default_rng(0).normal(0, 100, (6, 8, 8))
        array.flat[:20] = peak
        sitk.WriteImage(sitk.GetImageFromArray(array), str(images / f"{case}_0000.nii.gz"))
    folder = tmp_path / "preprocessed" / name
    folder.mkdir(parents=True)
    (folder / "nnUNetPlans.json").write_text("{}")
    (folder / "dataset_fingerprint.json").write_text(
        json.dumps(
            {"foreground_intensity_properties_per_channel": {"0": {**GOOD, "mean": 1.3e27, "std": float("inf")}}}
        )
    )
    with pytest.raises(NnunetError, match=r"channel 0 is unusable \(mean 1\.3e\+27, std inf\); cases: hot;"):
        check_fingerprint(tmp_path, name)
    assert not (folder / "nnUNetPlans.json").exists() and not (folder / "dataset_fingerprint.json").exists()
