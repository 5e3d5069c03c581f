"""A round's nnU-Net raw dataset: images linked (not copied), labels = the round's labels.

Layout under the workdir's nnU-Net root: `raw/DatasetNNN_<name>/{imagesTr,labelsTr}`.
nnU-Net needs one file ending per dataset: images that are not `.nii.gz` (MHA, NRRD,
DICOM series) are converted once into `converted/` and linked from there. So are images
not stored in the model's axis orientation (`tasks/files/orient.py`), whose labels are
then written reoriented beside the links instead of linked.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.models.nnunet.dataset_json import dataset_json
from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.files.imageio import read_image, write_image
from hybridlabel.tasks.files.orient import header_direction, needs_reorienting, to_model_orientation

FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class TrainingCase:
    case_id: str
    image: Path
    label: Path


def _link(target: Path, link: Path) -> None:
    """Symlink `link` -> `target`, replacing what was there (atomically)."""
    tmp = link.with_name(f".tmp-{link.name}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(Path(target).resolve(), tmp)
    os.replace(tmp, link)


def nifti_image(root: Path, case_id: str, image: Path) -> Path:
    """The case's image as `.nii.gz` in the model's orientation: the file itself, or a
    converted copy made once."""
    image = Path(image)
    if image.is_file() and image.name.endswith(FILE_ENDING) and not needs_reorienting(header_direction(image)):
        return image
    converted = Path(root) / "converted" / f"{case_id}_0000{FILE_ENDING}"
    if not converted.exists() or needs_reorienting(header_direction(converted)):  # one made before reorienting
        write_image(to_model_orientation(read_image(image)), converted)
    return converted


def _place_label(label: Path, target: Path, reorient: bool) -> None:
    """The round's label in the dataset: linked, or written reoriented with its image."""
    if reorient:
        write_image(to_model_orientation(read_image(label)), target)
    else:
        _link(label, target)


def write_round_dataset(
    root: Path,
    dataset_id: int,
    name: str,
    cases: list[TrainingCase],
    labels: LabelMapConfig,
    with_ignore: bool = False,
    tumor: bool = True,
) -> Path:
    """(Re)write the raw dataset of a round; returns its folder."""
    folder = NnunetDataset(Path(root), dataset_id, name).raw
    for sub in ("imagesTr", "labelsTr"):
        if (folder / sub).exists():
            shutil.rmtree(folder / sub)  # only links live here: a rerun starts clean
        (folder / sub).mkdir(parents=True)
    for case in cases:
        _link(nifti_image(root, case.case_id, case.image), folder / "imagesTr" / f"{case.case_id}_0000{FILE_ENDING}")
        reorient = needs_reorienting(header_direction(case.label))  # a label shares its image's grid
        _place_label(case.label, folder / "labelsTr" / f"{case.case_id}{FILE_ENDING}", reorient)
    spec = dataset_json(labels, len(cases), with_ignore=with_ignore, file_ending=FILE_ENDING, tumor=tumor)
    atomic_write_text(folder / "dataset.json", json.dumps(spec, indent=1))
    return folder
