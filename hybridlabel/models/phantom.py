"""Synthetic abdominal CT phantoms with complete and FLARE23-style partial labels (pure).

Arrays are (z, y, x); spacing is given in the same order, in mm. Patient axes follow
LPS as SimpleITK writes them: x grows to the patient's left, y to posterior, z to
superior. Organ geometry is written in body-relative units (u, v, w): u and v in
[-1, 1] across the body's left-right and antero-posterior semi-axes, w in units of
ORGAN_HALF_HEIGHT_MM around the scan's centre, so a longer scan adds slices above and
below the organs instead of stretching them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from hybridlabel.models.partiality import partial_label
from hybridlabel.models.phantom_sites import REFERENCE_SITE, Site

ORGAN_HALF_HEIGHT_MM = 110.0
AIR_HU, FAT_HU, BONE_HU = -1000.0, -100.0, 450.0


@dataclass(frozen=True)
class OrganShape:
    label: int
    hu: float
    center: tuple[float, float, float]  # (u, v, w)
    radii: tuple[float, float, float]  # (u, v, w); a tube ignores w and spans w_range
    tube: bool = False
    w_range: tuple[float, float] = (-1.0, 1.0)


# Paint order matters: later shapes overwrite earlier ones where they touch. The adrenals
# and the esophagus are drawn ~1.4x their real width, so that at the phantom's 4 mm voxels
# they span ~4-5 voxels across as they do at FLARE's ~0.8 mm (at real width, no model here
# learned them in minutes: val Dice 0 for every round of the demo). Mean HU
# follow a portal-venous CT loosely, spread apart so that neighbouring organs differ by
# more than the noise: the phantom is meant to be learnable on a CPU in minutes.
ORGANS: tuple[OrganShape, ...] = (
    OrganShape(1, 95, (-0.45, -0.10, 0.35), (0.38, 0.45, 0.35)),  # liver
    OrganShape(3, 130, (0.55, 0.30, 0.35), (0.15, 0.22, 0.22)),  # spleen
    OrganShape(11, 20, (0.35, -0.25, 0.40), (0.25, 0.20, 0.25)),  # stomach
    OrganShape(2, 190, (-0.40, 0.45, -0.10), (0.14, 0.16, 0.25)),  # right kidney
    OrganShape(13, 190, (0.40, 0.45, -0.05), (0.14, 0.16, 0.25)),  # left kidney
    OrganShape(4, 60, (0.05, 0.15, 0.00), (0.35, 0.08, 0.08)),  # pancreas
    OrganShape(12, 40, (-0.12, 0.02, -0.15), (0.10, 0.10, 0.20)),  # duodenum
    OrganShape(9, 5, (-0.30, -0.35, 0.05), (0.08, 0.10, 0.13)),  # gallbladder
    OrganShape(7, -20, (-0.28, 0.38, 0.28), (0.07, 0.09, 0.12)),  # right adrenal
    OrganShape(8, -20, (0.30, 0.38, 0.25), (0.07, 0.09, 0.12)),  # left adrenal
    OrganShape(6, 160, (-0.15, 0.42, 0.0), (0.065, 0.065, 0.0), tube=True, w_range=(-1.0, 0.7)),  # IVC
    OrganShape(5, 240, (0.08, 0.45, 0.0), (0.06, 0.06, 0.0), tube=True),  # aorta
    OrganShape(10, 75, (0.05, 0.30, 0.0), (0.07, 0.07, 0.0), tube=True, w_range=(0.6, 1.2)),  # esophagus
)
SPINE = OrganShape(0, BONE_HU, (0.0, 0.75, 0.0), (0.12, 0.12, 0.0), tube=True, w_range=(-9.0, 9.0))
TUMOR_HOSTS: tuple[tuple[int, float], ...] = ((1, 0.5), (2, 0.15), (13, 0.15), (4, 0.2))

SIZES: dict[str, dict] = {
    # ~ a 2-core CPU learns this in minutes: 40 (+-8) x 64 x 80 voxels of 5 x 4 x 4 mm
    "small": {"shape": (40, 64, 80), "spacing": (5.0, 4.0, 4.0), "slice_spread": 8},
    # FLARE-like in-plane grid for benchmarks
    "flare": {"shape": (200, 512, 512), "spacing": (2.5, 0.8, 0.8), "slice_spread": 0},
}

# Between-patient variation, so that a few strong cases under-cover the cohort the way they
# do in real data: body habitus, organ position and size, contrast phase, scan length.
# Every case draws from the same distributions; nothing but its labels marks a strong case.
BODY_FILL = ((0.78, 0.95), (0.72, 0.90))  # body semi-axes as a share of the field of view (x, y)
ORGAN_JITTER = 0.05  # organ centre shift, body-relative units
ORGAN_SCALE = (0.85, 1.15)
# contrast phase as an enhancement factor: enhancing organs' HU above 40 scale by it
# (early/late venous phase against the portal-venous means above)
ENHANCEMENT = (0.8, 1.2)
ENHANCING = frozenset({1, 2, 3, 4, 5, 6, 13})


@dataclass
class PhantomCase:
    image: np.ndarray  # int16 HU, (z, y, x)
    label: np.ndarray  # uint8, complete: 13 organs + tumour 14
    organ_label: np.ndarray  # uint8, organs only: tumour voxels carry their host organ
    spacing: tuple[float, float, float]  # (z, y, x) mm
    tumors: list[dict] = field(default_factory=list)  # host organ and voxels per tumour


def _body_axes_mm(shape, spacing, fill: tuple[float, float]) -> tuple[float, float]:
    half_x = shape[2] * spacing[2] / 2.0
    half_y = shape[1] * spacing[1] / 2.0
    return fill[0] * half_x, fill[1] * half_y


def _paint(
    target: np.ndarray, value, shape: OrganShape, jitter: np.ndarray, scale: float, grid_shape, spacing, body_axes
) -> np.ndarray:
    """Return the boolean mask of one shape (computed in its bounding box only)."""
    (nz, ny, nx), (sz, sy, sx) = grid_shape, spacing
    bx, by = body_axes
    cu, cv, cw = np.asarray(shape.center) + jitter
    cx_mm = nx * sx / 2 + cu * bx
    cy_mm = ny * sy / 2 + cv * by
    cz_mm = nz * sz / 2 + cw * ORGAN_HALF_HEIGHT_MM
    rx, ry = shape.radii[0] * bx * scale, shape.radii[1] * by * scale
    if shape.tube:
        z0 = nz * sz / 2 + shape.w_range[0] * ORGAN_HALF_HEIGHT_MM
        z1 = nz * sz / 2 + shape.w_range[1] * ORGAN_HALF_HEIGHT_MM
        rz, cz_mm = (z1 - z0) / 2, (z0 + z1) / 2
    else:
        rz = shape.radii[2] * ORGAN_HALF_HEIGHT_MM * scale
    lo = [max(0, int((c - r) / s)) for c, r, s in ((cz_mm, rz, sz), (cy_mm, ry, sy), (cx_mm, rx, sx))]
    hi = [
        min(n, int(np.ceil((c + r) / s)) + 1)
        for c, r, s, n in ((cz_mm, rz, sz, nz), (cy_mm, ry, sy, ny), (cx_mm, rx, sx, nx))
    ]
    mask = np.zeros(grid_shape, dtype=bool)
    if any(high <= low for low, high in zip(lo, hi)):
        return mask
    z = ((np.arange(lo[0], hi[0]) + 0.5) * sz - cz_mm)[:, None, None]
    y = ((np.arange(lo[1], hi[1]) + 0.5) * sy - cy_mm)[None, :, None]
    x = ((np.arange(lo[2], hi[2]) + 0.5) * sx - cx_mm)[None, None, :]
    inplane = (x / rx) ** 2 + (y / ry) ** 2
    inside = (inplane <= 1.0) & (np.abs(z) <= rz) if shape.tube else inplane + (z / rz) ** 2 <= 1.0
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    mask[box] = inside
    target[box][inside] = value
    return mask


def generate_phantom(
    rng: np.random.Generator,
    size: str = "small",
    shape: tuple[int, int, int] | None = None,
    site: Site = REFERENCE_SITE,
) -> PhantomCase:
    """One synthetic abdominal CT with its complete label, as `site` scans it; variation
    between patients comes from `rng`. An explicit `shape` keeps its grid as given."""
    base = SIZES[size]
    spacing = (
        base["spacing"][0] * site.slice_factor,
        base["spacing"][1] * site.inplane_factor,
        base["spacing"][2] * site.inplane_factor,
    )
    spacing = tuple(round(float(s), 4) for s in spacing)
    if shape:
        grid, spread = tuple(shape), 0
    else:  # the field of view in mm is the size's: a finer spacing gives more voxels
        z_scale = site.coverage / site.slice_factor
        grid = (
            round(base["shape"][0] * z_scale),
            round(base["shape"][1] / site.inplane_factor),
            round(base["shape"][2] / site.inplane_factor),
        )
        spread = round(base["slice_spread"] * z_scale)
    grid = (grid[0] + int(rng.integers(-spread, spread + 1)),) + grid[1:]
    fill = tuple(min(0.97, rng.uniform(lo * site.habitus, hi * site.habitus)) for lo, hi in BODY_FILL)
    body_axes = _body_axes_mm(grid, spacing, fill)
    enhancement = rng.uniform(*site.enhancement)
    hu = np.full(grid, AIR_HU, dtype=np.float32)
    organ_label = np.zeros(grid, dtype=np.uint8)

    body = OrganShape(0, FAT_HU, (0.0, 0.0, 0.0), (1.0, 1.0, 0.0), tube=True, w_range=(-9.0, 9.0))
    _paint(hu, FAT_HU, body, np.zeros(3), 1.0, grid, spacing, body_axes)
    _paint(hu, BONE_HU, SPINE, np.zeros(3), 1.0, grid, spacing, body_axes)
    shift = np.array([0.0, 0.0, rng.uniform(-0.1, 0.1)])  # scan coverage varies
    host_hu: dict[int, float] = {}
    for organ in ORGANS:
        jitter = shift + rng.uniform(-ORGAN_JITTER, ORGAN_JITTER, size=3)
        base_hu = 40 + (organ.hu - 40) * enhancement if organ.label in ENHANCING else organ.hu
        organ_hu = base_hu + rng.uniform(-6, 6)
        mask = _paint(hu, organ_hu, organ, jitter, rng.uniform(*ORGAN_SCALE), grid, spacing, body_axes)
        organ_label[mask] = organ.label
        host_hu[organ.label] = organ_hu

    label = organ_label.copy()
    tumors: list[dict] = []
    hosts, weights = zip(*TUMOR_HOSTS)
    for _ in range(int(rng.integers(0, site.max_tumors + 1))):
        host = int(rng.choice(hosts, p=np.asarray(weights) / sum(weights)))
        voxels = np.argwhere(ndimage.binary_erosion(organ_label == host, iterations=2))
        if len(voxels) == 0:
            continue
        center = voxels[rng.integers(len(voxels))]
        radius_mm = max(rng.uniform(8.0, 20.0), 2.5 * max(spacing[1:]))
        lo = [max(0, int(c - radius_mm / s) - 1) for c, s in zip(center, spacing)]
        hi = [min(n, int(c + radius_mm / s) + 2) for c, s, n in zip(center, spacing, grid)]
        zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        ball = (
            ((zz - center[0]) * spacing[0]) ** 2
            + ((yy - center[1]) * spacing[1]) ** 2
            + ((xx - center[2]) * spacing[2]) ** 2
        ) <= radius_mm**2
        box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        inside = ball & (organ_label[box] == host)  # tumours stay inside their organ
        label[box][inside] = 14
        hu[box][inside] = host_hu[host] - rng.uniform(20, 35)  # low contrast
        tumors.append({"host": host, "voxels": int(inside.sum())})

    hu = ndimage.gaussian_filter(hu, sigma=site.blur_voxels)  # reconstruction kernel, partial volume
    hu += rng.normal(0.0, site.noise_hu, size=grid).astype(np.float32) + np.float32(site.hu_offset)
    image = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return PhantomCase(image, label, organ_label, spacing, tumors)


def phantom_partial_label(case: PhantomCase, annotated: tuple[int, ...]) -> np.ndarray:
    """The label an annotator covering only `annotated` would have drawn."""
    return partial_label(case.label, case.organ_label, annotated)
