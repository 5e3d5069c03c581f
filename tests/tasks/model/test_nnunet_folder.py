"""The export as a plain nnU-Net model folder: nnU-Net's own predictor runs it in a
Python environment where hybridlabel cannot be imported, and labels like hybridlabel."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it

PREDICT = (
    "import sys; from nnunetv2.inference.predict_from_raw_data import predict_entry_point_modelfolder as f; "
    "sys.argv = ['nnUNetv2_predict_from_modelfolder'] + sys.argv[1:]; f()"
)


def _bare_python(tmp_path: Path) -> Path:
    """A venv that sees this one's packages (torch, nnunetv2) but not hybridlabel: the
    editable install's finder is a .pth hook, and .pth files are only run in site dirs."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "python"


def test_the_export_runs_under_nnunets_own_predictor_without_hybridlabel(finished, phantom_cohort, tmp_path):
    import hybridlabel

    archive = Path(finished["result"]["export"])
    folder = archive.with_name(archive.name.removesuffix(".hlmodel.zip") + ".nnunet")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "dataset.json",
        "fold_all/checkpoint_final.pth",
        "plans.json",
    ]

    python = _bare_python(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "PYTHONPATH"))}
    env.update({f"nnUNet_{k}": str(tmp_path / k) for k in ("raw", "preprocessed", "results")})
    no_import = subprocess.run(
        [str(python), "-c", "import hybridlabel"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert no_import.returncode != 0 and "No module named 'hybridlabel'" in no_import.stderr

    image = sorted((phantom_cohort / "imagesTr").glob("*_0000.nii.gz"))[0]
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / image.name).symlink_to(image)
    done = subprocess.run(
        [
            str(python),
            "-c",
            PREDICT,
            "-i",
            str(inputs),
            "-o",
            str(tmp_path / "out"),
            "-m",
            str(folder),
            "-f",
            "all",
            "-device",
            "cpu",
            "--disable_tta",
            "-npp",
            "1",
            "-nps",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    theirs = sitk.ReadImage(str(tmp_path / "out" / image.name.replace("_0000", "")))

    ours_path = tmp_path / "ours.nii.gz"
    # nnU-Net's predictor knows no tumour rule: ours without it (`--min-tumor-peak 0`)
    hybridlabel.predict(archive, image, ours_path, "cpu", fast=False, min_tumor_peak=0)
    ours = sitk.ReadImage(str(ours_path))
    assert theirs.GetSize() == ours.GetSize()
    np.testing.assert_allclose(theirs.GetOrigin(), ours.GetOrigin(), atol=1e-4)
    a, b = sitk.GetArrayFromImage(theirs), sitk.GetArrayFromImage(ours)
    assert (a == b).mean() > 0.99
