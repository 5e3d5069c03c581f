"""Content store: identical files become one copy on disk, the paths stay, a replaced
file leaves its old copy unreferenced, and prune deletes only what nothing uses."""

import os

import numpy as np
import SimpleITK as sitk
from typer.testing import CliRunner

from hybridlabel.tasks.files.content_store import dedupe, unreferenced
from hybridlabel.tasks.files.imageio import sha256_path, write_image
from hybridlabel.tasks.prune import leftovers
from hybridlabel.tasks.workdir import Layout


def _label(path, value):
    array = np.zeros((4, 5, 6), np.uint8)
    array[1:3, 1:4, 2:5] = value
    return write_image(sitk.GetImageFromArray(array), path)


def test_identical_labels_of_two_rounds_are_one_copy_and_stay_readable(tmp_path):
    store = Layout(tmp_path).store
    r1 = _label(tmp_path / "rounds/r001/merge/case.nii.gz", 1)
    r2 = _label(tmp_path / "rounds/r002/merge/case.nii.gz", 1)  # written anew, same content
    other = _label(tmp_path / "rounds/r002/merge/other.nii.gz", 2)
    assert not os.path.samefile(r1, r2)
    shas = [dedupe(p, store) for p in (r1, r2, other)]
    assert shas[0] == shas[1] == sha256_path(r1) != shas[2]
    assert os.path.samefile(r1, r2) and not os.path.samefile(r1, other)
    assert r1.stat().st_nlink == 3  # two rounds and the store: the bytes are on disk once
    assert dedupe(r2, store) == shas[0] and r1.stat().st_nlink == 3  # idempotent
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(r2))).max() == 1
    assert sorted(p.name for p in store.rglob("*.nii.gz")) == sorted(f"{s}.nii.gz" for s in set(shas))


def test_a_replaced_label_leaves_its_old_copy_to_prune_and_keeps_the_other_round(tmp_path):
    store = Layout(tmp_path).store
    r1 = _label(tmp_path / "rounds/r001/merge/case.nii.gz", 1)
    r2 = _label(tmp_path / "rounds/r002/merge/case.nii.gz", 1)
    for p in (r1, r2):
        dedupe(p, store)
    _label(r2, 3)  # round 2 rerun with another result: an atomic write replaces the link
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(r1))).max() == 1  # round 1's file is untouched
    dedupe(r2, store)
    assert list(unreferenced(store)) == []  # round 1 still links the old copy
    r1.unlink()  # its round's files deleted
    (old,) = unreferenced(store)
    assert old.name == f"{sha256_path(old)}.nii.gz"
    assert [item.path for item in leftovers(tmp_path)] == [old]


def test_prune_deletes_superseded_models_and_unreferenced_labels_only(tmp_path):
    from hybridlabel.cli.main import app

    (tmp_path / "registry").mkdir()
    store = Layout(tmp_path).store
    kept = _label(tmp_path / "rounds/r001/merge/case.nii.gz", 1)
    gone = _label(tmp_path / "rounds/r001/merge/old.nii.gz", 2)
    for p in (kept, gone):
        dedupe(p, store)
    gone.unlink()
    results = tmp_path / "nnunet/results/Dataset501_x"
    (results / "Trainer__plans__2d/fold_all").mkdir(parents=True)
    (results / "Trainer__plans__2d.superseded-20261203T010000/fold_all").mkdir(parents=True)
    (results / "Trainer__plans__2d.superseded-20261203T010000/fold_all/checkpoint_final.pth").write_bytes(b"x" * 1000)

    dry = CliRunner().invoke(app, ["prune", "--workdir", str(tmp_path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 x model of a superseded training" in dry.output and "1 x stored label no round links to" in dry.output
    assert "nothing deleted" in dry.output and len(list(store.rglob("*.nii.gz"))) == 2

    done = CliRunner().invoke(app, ["prune", "--workdir", str(tmp_path)])
    assert done.exit_code == 0 and "freed" in done.output, done.output
    assert [p.name for p in results.iterdir()] == ["Trainer__plans__2d"]
    assert [p for p in store.rglob("*.nii.gz")] == [store / sha256_path(kept)[:2] / f"{sha256_path(kept)}.nii.gz"]
    assert kept.exists()
    again = CliRunner().invoke(app, ["prune", "--workdir", str(tmp_path)])
    assert "nothing to prune" in again.output

    empty = CliRunner().invoke(app, ["prune", "--workdir", str(tmp_path / "nowhere")])
    assert empty.exit_code == 2 and "holds no pipeline registry" in empty.output
