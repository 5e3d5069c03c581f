"""Every image in one axis orientation for the network, every result in its image's own.

nnU-Net trains and predicts on voxel arrays and ignores the header's directions, so a
cohort whose scans are stored in different orientations (a NIfTI in RAS beside DICOM in
LPS) would show the network some anatomy flipped or turned. Training images and labels are
written in `MODEL_ORIENTATION` and every prediction is made in it, then turned back onto
the input's own grid: an exact permutation and flip of the voxels, never a resampling.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from hybridlabel.models.geometry import MODEL_ORIENTATION, orientation_code


def needs_reorienting(direction, code: str | None = MODEL_ORIENTATION) -> bool:
    """True for a 3d image whose axes are not stored in orientation `code` (None: any)."""
    found = orientation_code(direction)
    return code is not None and found is not None and found != code


def header_direction(path: Path) -> tuple[float, ...]:
    """An image file's direction from its header alone (no voxels read)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    return reader.GetDirection()


def to_model_orientation(image: sitk.Image, code: str | None = MODEL_ORIENTATION) -> sitk.Image:
    """The image with its voxels in orientation `code` (the image itself when they are, or
    when `code` is None: a model archived before hybridlabel reoriented)."""
    return sitk.DICOMOrient(image, code) if needs_reorienting(image.GetDirection(), code) else image


def to_image_grid(label: sitk.Image, image: sitk.Image) -> sitk.Image:
    """A label map made on `to_model_orientation(image)`, turned back onto `image`'s grid."""
    code = orientation_code(image.GetDirection())
    if code is None or orientation_code(label.GetDirection()) == code:
        return label
    back = sitk.DICOMOrient(label, code)
    if back.GetSize() != image.GetSize():
        raise ValueError(f"label of size {back.GetSize()} cannot be turned back onto an image of {image.GetSize()}")
    back.CopyInformation(image)  # the same grid; drops the float noise of the direction product
    return back
