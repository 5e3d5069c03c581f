"""The `hybridlabel` package: one import namespace (also when installed from a wheel)
and the Python API the CLI wraps."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import hybridlabel
from hybridlabel.data_registry.store import RegistryError
from tests.realct import read_flare

REPO = Path(__file__).resolve().parents[1]


def test_a_wheel_installs_one_namespace_and_no_generic_top_level_packages(tmp_path):
    """A non-editable install in a clean venv: `hybridlabel` and its subpackages import
    from the venv; `models`, `tasks`, `flows`, `data_registry` do not exist there."""
    src = tmp_path / "src"  # built from a copy: a build leaves its folders in the source tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "hybridlabel"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(
            REPO / name,
            src / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}),
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("hybridlabel-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"hybridlabel"}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # the dependencies come from this environment; hybridlabel itself only from the new venv
    env = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": "/usr/bin:/bin"}
    probe = (
        "import importlib.util as u, hybridlabel, hybridlabel.cli.main, hybridlabel.models.nnunet.trainers;"
        "print(hybridlabel.__file__);"
        "print([m for m in ('models', 'tasks', 'flows', 'data_registry') if u.find_spec(m)])"
    )
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    where, generic = out.stdout.split("\n")[:2]
    assert where.startswith(str(venv)) and generic == "[]"


def test_importing_the_package_loads_nothing_heavy():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hybridlabel; "
            "print(sorted(m for m in ('prefect', 'torch', 'nnunetv2', 'pandas') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_status_of_a_folder_without_registry_says_how_to_start(tmp_path):
    with pytest.raises(RegistryError, match="hybridlabel demo"):
        hybridlabel.status(tmp_path)


def test_evaluate_scores_a_real_label_against_itself_and_a_damaged_copy(tmp_path):
    import SimpleITK as sitk

    arr, reference = read_flare("ct_abdomen_3mm_totalseg.nii.gz")
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(reference)
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir(), gt_dir.mkdir()
    sitk.WriteImage(image, str(gt_dir / "a.nii.gz"))
    sitk.WriteImage(image, str(pred_dir / "a.nii.gz"))
    present = sorted(int(c) for c in set(arr.ravel().tolist()) if c)
    damaged = arr.copy()
    damaged[damaged == present[0]] = 0  # one class missed entirely
    out = sitk.GetImageFromArray(damaged)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(pred_dir / "b.nii.gz"))
    sitk.WriteImage(image, str(gt_dir / "b.nii.gz"))

    records, table, problems = hybridlabel.evaluate(pred_dir, gt_dir, classes=set(range(1, 14)))
    assert problems == {}
    dsc = {(r["case_id"], r["class_id"]): r["dsc"] for r in records}
    assert all(dsc[("a", c)] == 1.0 for c in present if c <= 13)
    assert dsc[("b", present[0])] == 0.0 and dsc[("b", present[-1])] == 1.0
    assert not any(r["class_id"] == 14 for r in records)  # a class the caller excluded is not scored
    assert table is not None and len(table)
