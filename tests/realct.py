"""The real CT of tests/data/real-ct in FLARE23 ids (TotalSegmentator ids mapped per its README)."""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

REAL_CT = Path(__file__).parent / "data" / "real-ct"
TOTALSEG_TO_FLARE = {5: 1, 2: 2, 1: 3, 7: 4, 52: 5, 63: 6, 8: 7, 9: 8, 4: 9, 15: 10, 6: 11, 19: 12, 3: 13}


def to_flare(totalseg: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for ts, flare in TOTALSEG_TO_FLARE.items():
        lut[ts] = flare
    return lut[totalseg]


def read_flare(name: str) -> tuple[np.ndarray, sitk.Image]:
    image = sitk.ReadImage(str(REAL_CT / name))
    return to_flare(sitk.GetArrayFromImage(image)), image
