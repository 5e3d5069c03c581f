"""Checks ITK's NIfTI reader cannot make: it loads a truncated file without complaint
(filling the missing voxels with zeros) and silently turns NaN voxels into 0. MHA and
NRRD readers raise on truncation by themselves, and keep NaN."""

from __future__ import annotations

import gzip
import struct
import zlib
from math import prod
from pathlib import Path

import numpy as np

# NIfTI datatype codes of floating-point voxels -> numpy type
FLOAT_TYPES = {16: "f4", 64: "f8"}


def nifti_problem(path: Path) -> tuple[str, str] | None:
    """None when the file holds all the voxel bytes its header announces and every
    floating-point voxel is finite; else (kind, one-line reason), kind = truncated | nonfinite."""
    path = Path(path)
    gz = path.name.lower().endswith(".gz")
    opener = gzip.open if gz else open
    if _complete_by_size(path, gz, opener):
        return None
    try:
        with opener(path, "rb") as fh:
            header = fh.read(540)
            info = _header_info(header)
            if info is None:
                return None  # not a NIfTI header we know; leave the verdict to ITK
            needed, offset, endian, datatype = info
            have, nonfinite = len(header), 0
            carry = header[offset:] if offset < len(header) else b""
            skipped = min(len(header), offset)
            while block := fh.read(1 << 22):
                have += len(block)
                if datatype in FLOAT_TYPES:
                    if skipped < offset:  # header extensions before the voxels
                        cut = min(len(block), offset - skipped)
                        skipped += cut
                        block = block[cut:]
                    carry, nonfinite = _count_nonfinite(carry + block, endian + FLOAT_TYPES[datatype], nonfinite)
            if datatype in FLOAT_TYPES and carry:
                _, nonfinite = _count_nonfinite(carry, endian + FLOAT_TYPES[datatype], nonfinite)
    except (EOFError, OSError, zlib.error) as exc:
        return "truncated", f"file is truncated or corrupt ({exc.__class__.__name__}: {str(exc)[:80]})"
    if have < needed:
        return "truncated", f"file is truncated: {have} of {needed} bytes"
    if nonfinite:
        return "nonfinite", f"image has {nonfinite} NaN or infinite voxels; fix the conversion that wrote it"
    return None


def declared_bytes(path: Path) -> int | None:
    """The bytes a NIfTI file's header says it holds (vox_offset + voxels x bitpix / 8), as
    stored: ITK reports the pixel type after the rescale (int16 with a slope reads as
    float32), which is not what the file holds. None when the header is not NIfTI."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            info = _header_info(fh.read(540))
    except (EOFError, OSError, zlib.error, struct.error):
        return None
    return info[0] if info else None


def _complete_by_size(path: Path, gz: bool, opener) -> bool:
    """O(1) answer for integer voxels: the file size (or gzip's ISIZE trailer, the
    uncompressed size mod 2**32) equals what the header announces. Anything else,
    float voxels included, goes through the full scan."""
    try:
        with opener(path, "rb") as fh:
            info = _header_info(fh.read(540))
        if info is None or info[3] in FLOAT_TYPES:
            return False
        if not gz:
            return path.stat().st_size >= info[0]
        with open(path, "rb") as raw:
            raw.seek(-4, 2)
            isize = struct.unpack("<I", raw.read(4))[0]
        return isize == info[0] % 2**32
    except (EOFError, OSError, zlib.error, struct.error):
        return False


def _count_nonfinite(data: bytes, dtype: str, count: int) -> tuple[bytes, int]:
    size = np.dtype(dtype).itemsize
    usable = len(data) - len(data) % size
    values = np.frombuffer(data[:usable], dtype=dtype)
    return data[usable:], count + int(values.size - np.count_nonzero(np.isfinite(values)))


def _header_info(header: bytes) -> tuple[int, int, str, int] | None:
    if len(header) < 348:
        return None
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0]
        if size == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", header[70:74])
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if size == 540 and len(header) >= 540:
            datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    offset = max(offset, 348)
    return offset + prod(max(1, d) for d in dims[1 : ndim + 1]) * bitpix // 8, offset, endian, datatype
