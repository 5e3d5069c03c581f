"""Image files through SimpleITK: NIfTI, MHA, NRRD and DICOM series folders.

Only voxel data and geometry are read: DICOM header fields (patient identifiers among
them) are never loaded into metadata, logged or returned.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.geometry import Grid, geometry_problem, slice_gap_problem, voxel_count_problem
from hybridlabel.tasks.files.header_check import header_problem
from hybridlabel.tasks.files.nifti_check import nifti_problem

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
# gzip level 1: ~3x faster writes than the default 6 for ~5-10% bigger label files.
NIFTI_COMPRESSION_LEVEL = 1


class ImageReadError(RuntimeError):
    """An image could not be read; the message is one line, free of header content."""


class NonFiniteImageError(ImageReadError):
    """The file holds NaN or infinite voxels that the reader would have hidden."""


class ImageHeaderError(ImageReadError):
    """The header declares a geometry or a size no scan has; refused before any voxel is read."""


def image_suffix(path: Path) -> str | None:
    name = Path(path).name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def strip_suffix(path: Path) -> str:
    suffix = image_suffix(path)
    return Path(path).name[: -len(suffix)] if suffix else Path(path).name


def _one_line(exc: Exception) -> str:
    """The cause in an ITK message: the text after `ERROR:`, never the source location
    (`.../sitkImageReaderBase.cxx:99:`) that precedes it."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    cause = next((ln.split("ERROR:", 1)[1].strip() for ln in lines if "ERROR:" in ln), None)
    if cause is None:
        plain = [
            ln
            for ln in lines
            if not re.search(r"\.(cxx|cpp|h|hxx):\d+:?$", ln) and not ln.startswith("Exception thrown in")
        ]
        cause = plain[-1] if plain else type(exc).__name__
    return cause[:200]


def read_image(path: Path) -> sitk.Image:
    """Read an image file or the one DICOM series in a folder."""
    path = Path(path)
    _quiet_itk()
    if not path.exists():
        raise ImageReadError(f"{path} does not exist")
    if path.is_dir():
        return _read_dicom_folder(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.LoadPrivateTagsOff()
        reader.ReadImageInformation()  # the header only: checked before the voxels are read
        if problem := header_problem(path, reader):
            raise ImageHeaderError(f"{path.name}: {problem}")
        image = reader.Execute()
    except ImageReadError:
        raise
    except RuntimeError as exc:
        raise ImageReadError(f"cannot read {path.name}: {_one_line(exc)}") from None
    if image_suffix(path) in (".nii", ".nii.gz") and (problem := nifti_problem(path)):
        kind, why = problem
        if kind == "nonfinite":
            raise NonFiniteImageError(why)
        raise ImageReadError(f"cannot read {path.name}: {why}")
    return image


def _quiet_itk() -> None:
    # ITK prints header-conversion warnings to stderr for ordinary files; they are noise
    sitk.ProcessObject.SetGlobalWarningDisplay(False)


def _read_dicom_folder(path: Path) -> sitk.Image:
    try:
        return _read_dicom_series(path)
    except ImageReadError:
        raise
    except RuntimeError as exc:
        raise ImageReadError(f"cannot read {path.name}: {_one_line(exc)}") from None


def _read_dicom_series(folder: Path) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ImageReadError(f"{folder} holds no DICOM series")
    if len(series) > 1:
        raise ImageReadError(f"{folder} holds {len(series)} DICOM series; give each series its own folder")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    positions, normal, slice_size = _slice_positions(files)
    if problem := voxel_count_problem((*slice_size, len(files))) or slice_gap_problem(positions, normal):
        raise ImageReadError(f"DICOM series {folder.name}: {problem}")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOff()  # keep patient header fields out of memory
    reader.LoadPrivateTagsOff()
    image = reader.Execute()
    if problem := geometry_problem(image.GetSpacing(), image.GetOrigin(), image.GetDirection()):
        raise ImageHeaderError(f"DICOM series {folder.name}: {problem}")
    return image


def _slice_positions(files) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Each file's origin (its image position), the slice normal and the first slice's
    in-plane size; only geometry is read."""
    positions, normal, size = [], None, ()
    for name in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        reader.LoadPrivateTagsOff()
        reader.ReadImageInformation()
        positions.append(reader.GetOrigin())
        if normal is None:
            normal = np.asarray(reader.GetDirection(), float).reshape(3, 3)[:, 2]
            size = tuple(reader.GetSize()[:2])
    return np.asarray(positions, float), normal, size


def grid_of(image: sitk.Image) -> Grid:
    return Grid(
        tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection())
    )


def spacing_zyx(image: sitk.Image) -> tuple[float, float, float]:
    """Spacing in numpy (z, y, x) order, as the pure code expects."""
    return tuple(float(s) for s in reversed(image.GetSpacing()))


def resample_label_onto(label: sitk.Image, image: sitk.Image) -> sitk.Image:
    """Nearest-neighbour resampling of a label onto the image grid (same physical space)."""
    return sitk.Resample(label, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label.GetPixelID())


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(reference)
    return out


def write_image(image: sitk.Image, path: Path, compression_level: int = NIFTI_COMPRESSION_LEVEL) -> Path:
    """Write atomically: a temporary name in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = image_suffix(path) or path.suffix
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name[: -len(suffix)]}{suffix}")
    _quiet_itk()
    try:
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(tmp))
        writer.UseCompressionOn()
        writer.SetCompressionLevel(compression_level)
        writer.Execute(image)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def sha256_path(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, or of every file of a folder in sorted order (names included)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()
