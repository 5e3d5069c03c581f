"""Write a round's review folder: the worklist, and per case what a reviewer opens."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import image_suffix, sha256_path
from hybridlabel.tasks.review.viewer_files import write_viewer_files

WORKLIST_FIELDS = (
    "rank",
    "case_id",
    "score",
    "classes",
    "class_names",
    "why",
    "image",
    "hybrid_label",
    "parent_prediction",
)
HOW_TO = """Corrected labels go here: <case_id>.nii.gz (or .nii, .mha, .nrrd), on the image's grid, with
the classes you checked drawn with their ids (labels.txt / hybridlabel.ctbl name them).
The worklist's `classes` column says which classes each case was queued for; to declare
others, save <case_id>.json beside the label: {"classes": [3, "spleen"], "reviewer": "name"}.
A checked class you left out of the file is taken as absent. Then run `hybridlabel accept`.
"""


def _link(target: Path, link: Path) -> Path:
    """A symbolic link to `target` (no copy of a large image); a copy where links are refused."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink() if not link.is_dir() or link.is_symlink() else shutil.rmtree(link)
    try:
        os.symlink(os.path.abspath(target), link, target_is_directory=Path(target).is_dir())
    except OSError:
        (shutil.copytree if Path(target).is_dir() else shutil.copy2)(target, link)
    return link


def _named(path: Path, stem: str) -> str:
    """`stem` with the file's image suffix (a DICOM series folder keeps none)."""
    return stem if Path(path).is_dir() else stem + (image_suffix(Path(path)) or Path(path).suffix)


def write_review_folder(
    folder: Path,
    queue: list[dict],
    cases: Mapping[str, dict],
    predictions: Path,
    labels: Mapping[int, str],
    findings: list[str] = (),
) -> Path:
    """`folder/worklist.csv` and `worklist.md`, `cases/<case_id>/` (image, hybrid label, the
    parent's prediction where it differs: links), the viewers' label descriptions, and an
    empty `corrected/` with how to fill it. Returns the worklist's path."""
    folder = Path(folder)
    (folder / "corrected").mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "corrected" / "README.txt", HOW_TO)
    write_viewer_files(folder, labels)
    rows = []
    for item in queue:
        case = cases[item["case_id"]]
        target = folder / "cases" / item["case_id"]
        image = _link(Path(case["image_path"]), target / _named(Path(case["image_path"]), "image"))
        hybrid = _link(Path(case["hybrid_label_path"]), target / "hybrid_label.nii.gz")
        prediction = predictions / f"{item['case_id']}.nii.gz"
        parent = ""
        if prediction.is_file() and case.get("hybrid_label_sha256") != sha256_path(prediction):
            parent = str(_link(prediction, target / "parent_prediction.nii.gz").relative_to(folder))
        rows.append(
            {
                "rank": item["rank"],
                "case_id": item["case_id"],
                "score": f"{item['score']:.3f}",
                "classes": " ".join(map(str, item["classes"])),
                "class_names": " ".join(item["class_names"]),
                "why": item["why"],
                "image": str(image.relative_to(folder)),
                "hybrid_label": str(hybrid.relative_to(folder)),
                "parent_prediction": parent,
            }
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=WORKLIST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    worklist = atomic_write_text(folder / "worklist.csv", buf.getvalue())
    atomic_write_text(folder / "worklist.md", _markdown(rows, findings))
    return worklist


def _markdown(rows: list[dict], findings: list[str]) -> str:
    lines = [f"- {f}" for f in findings] + ([""] if findings else [])
    lines += ["| rank | case | score | check | why | open with |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cmd = f"`itksnap -g {r['image']} -s {r['hybrid_label']} -l labels.txt`"
        lines.append(f"| {r['rank']} | {r['case_id']} | {r['score']} | {r['class_names']} | {r['why']} | {cmd} |")
    return (
        "\n".join(lines) + "\n\nIn 3D Slicer: load the image, then the label as a label map volume with "
        "`hybridlabel.ctbl` as its colour table. Save corrections to `corrected/` (see its README.txt).\n"
    )
