"""The FLARE23 label map and the role vocabulary of the design (pure constants)."""

from __future__ import annotations

FLARE23_LABELS: dict[int, str] = {
    0: "background",
    1: "liver",
    2: "right_kidney",
    3: "spleen",
    4: "pancreas",
    5: "aorta",
    6: "inferior_vena_cava",
    7: "right_adrenal_gland",
    8: "left_adrenal_gland",
    9: "gallbladder",
    10: "esophagus",
    11: "stomach",
    12: "duodenum",
    13: "left_kidney",
    14: "tumor",
}
FLARE23_TUMOR_ID = 14
FLARE23_ORGAN_IDS: tuple[int, ...] = tuple(range(1, 14))

# NSD tolerances in mm, FLARE23 evaluation.
FLARE23_NSD_TOLERANCE_MM: dict[int, float] = {
    1: 5,
    2: 3,
    3: 3,
    4: 5,
    5: 2,
    6: 2,
    7: 2,
    8: 2,
    9: 2,
    10: 3,
    11: 5,
    12: 7,
    13: 3,
    14: 2,
}

ROLES: tuple[str, ...] = ("strong", "partial", "tumor_only", "unlabeled", "val", "quarantined")
