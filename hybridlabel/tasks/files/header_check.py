"""What an image header declares, checked before ITK reads a voxel.

ITK reads the whole declared volume before anything can look at it (a 256 KB NIfTI
declaring 2000^3 voxels took 6 GB), and its readers hide bad geometry: a NIfTI pixdim of
0 or NaN becomes 1 mm, a negative MetaImage spacing becomes positive. So the voxel count
is checked against a cap and against the bytes the file can hold, and the spacing is
read from the header's own bytes (NIfTI pixdim, MetaImage ElementSpacing) as well as
from ITK.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import SimpleITK as sitk

from hybridlabel.models.geometry import geometry_problem, voxel_count_problem
from hybridlabel.tasks.files.nifti_check import declared_bytes

# deflate (gzip, zlib) cannot shrink data by more than ~1032:1: a compressed file that
# declares more than this many times its own size does not hold its voxels
MAX_DEFLATE_RATIO = 1032


def header_problem(path: Path, reader: sitk.ImageFileReader) -> str | None:
    """Why the header `reader` read (ReadImageInformation) cannot be a scan's, or None."""
    size = reader.GetSize()
    if problem := voxel_count_problem(size):
        return problem
    raw = raw_spacing(path)
    if raw is not None and not all(math.isfinite(s) and s > 0 for s in raw):
        shown = ", ".join(f"{s:g}" for s in raw)
        return (
            f"header voxel size ({shown}) is zero, negative or not a number (ITK would read it as "
            "1 mm or drop its sign); fix the conversion that wrote it"
        )
    origin = _meta_origin(path)  # MetaImage's reader turns an unparsable Offset (nan) into 0
    if origin is not None and not all(math.isfinite(v) for v in origin):
        return f"header origin ({', '.join(f'{v:g}' for v in origin)}) is not finite; the header is damaged"
    if problem := geometry_problem(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()):
        return problem
    nifti = Path(path).name.lower().endswith((".nii", ".nii.gz"))
    declared = (declared_bytes(path) if nifti else None) or math.prod(
        size
    ) * reader.GetNumberOfComponents() * _bytes_per_component(reader)
    stored, compressed = _stored_bytes(Path(path))
    if stored is not None and declared > stored * (MAX_DEFLATE_RATIO if compressed else 1):
        return (
            f"header declares {'x'.join(map(str, size))} voxels ({declared / 2**20:,.1f} MiB) but the file "
            f"holds {stored / 2**10:,.0f} KiB{' compressed' if compressed else ''}: truncated, or the header is wrong"
        )
    return None


def _bytes_per_component(reader: sitk.ImageFileReader) -> int:
    one = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID(), reader.GetNumberOfComponents())
    return sitk.GetArrayViewFromImage(one).dtype.itemsize


def raw_spacing(path: Path) -> tuple[float, ...] | None:
    """The voxel size as the header's own bytes state it (NIfTI, MetaImage), or None."""
    name = Path(path).name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            return _nifti_pixdim(Path(path))
        if name.endswith((".mha", ".mhd")):
            fields = _meta_fields(Path(path))
            value = fields.get("elementspacing") or fields.get("elementsize")
            return tuple(float(v) for v in value.split()) if value else None
    except (OSError, ValueError, struct.error, EOFError):
        return None  # the reader's own error will say what is wrong
    return None


def _meta_origin(path: Path) -> tuple[float, ...] | None:
    if not Path(path).name.lower().endswith((".mha", ".mhd")):
        return None
    try:
        fields = _meta_fields(Path(path))
        value = fields.get("offset") or fields.get("origin") or fields.get("position")
        return tuple(float(v) for v in value.split()) if value else None
    except (OSError, ValueError):
        return None


def _nifti_pixdim(path: Path) -> tuple[float, ...] | None:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        header = fh.read(540)
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0]
        if size == 348:
            ndim = struct.unpack(endian + "h", header[40:42])[0]
            pixdim = struct.unpack(endian + "8f", header[76:108])
            break
        if size == 540:
            ndim = struct.unpack(endian + "q", header[16:24])[0]
            pixdim = struct.unpack(endian + "8d", header[104:168])
            break
    else:
        return None
    return tuple(float(p) for p in pixdim[1 : 1 + min(max(ndim, 1), 3)])


def _meta_fields(path: Path) -> dict[str, str]:
    """MetaImage's `Key = value` header lines (lower-case keys), up to ElementDataFile."""
    fields = {}
    with open(path, "rb") as fh:
        for raw in fh.read(1 << 16).split(b"\n"):
            key, _, value = raw.decode("latin-1").partition("=")
            fields[key.strip().lower()] = value.strip()
            if key.strip().lower() == "elementdatafile":
                break
    return fields


def _stored_bytes(path: Path) -> tuple[int | None, bool]:
    """(bytes that hold the voxels, whether they are deflated), or (None, _) when unknown."""
    name = path.name.lower()
    if name.endswith(".nii"):
        return path.stat().st_size, False
    if name.endswith(".nii.gz"):
        return path.stat().st_size, True
    if name.endswith((".mha", ".mhd")):
        fields = _meta_fields(path)
        compressed = fields.get("compresseddata", "false").lower() == "true"
        data = fields.get("elementdatafile", "")
        if data.upper() == "LOCAL":
            return path.stat().st_size, compressed
        target = path.parent / data
        return (target.stat().st_size, compressed) if data and target.is_file() else (None, compressed)
    if name.endswith(".nrrd"):
        return path.stat().st_size, True  # gzip or raw: the looser bound
    return None, False
