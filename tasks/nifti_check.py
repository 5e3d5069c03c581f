"""Detect truncated NIfTI files, which ITK's NIfTI reader loads without complaint
(it fills the missing voxels with zeros); MHA and NRRD readers raise by themselves."""

from __future__ import annotations

import gzip
import struct
import zlib
from math import prod
from pathlib import Path


def nifti_truncation(path: Path) -> str | None:
    """None when the file holds all the voxel bytes its header announces, else why not."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(540)
            needed = _needed_bytes(header)
            if needed is None:
                return None  # not a NIfTI header we know; leave the verdict to ITK
            have = len(header)
            while block := fh.read(1 << 22):
                have += len(block)
    except (EOFError, OSError, zlib.error) as exc:
        return f"file is truncated or corrupt ({exc.__class__.__name__}: {str(exc)[:80]})"
    if have < needed:
        return f"file is truncated: {have} of {needed} bytes"
    return None


def _needed_bytes(header: bytes) -> int | None:
    if len(header) < 348:
        return None
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0]
        if size == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if size == 540 and len(header) >= 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    return max(offset, 348) + prod(max(1, d) for d in dims[1:ndim + 1]) * bitpix // 8
