"""Fast inference for the exported model: the label map only, no probabilities.

Shortcuts (each measured on the phantom val cases, docs/inference.md):
- body crop: the CT is cropped to the body (voxels above -500 HU, largest component,
  plus a margin) before nnU-Net's preprocessing, so no sliding window runs on the air
  around the patient; the label outside is background;
- logits back to the input grid by separable linear interpolation, one output slice at a
  time, argmax per slice: nnU-Net resamples every class probability at full resolution
  on the CPU first (the 47-89 s we measured on a 512 x 512 x 120 case on a GPU machine);
- half precision on a GPU (autocast), no test-time augmentation unless asked.
Without `fast`, the same class runs nnU-Net's own path (whole volume, its resampling).
"""

from __future__ import annotations

import numpy as np
import torch

from hybridlabel.models.nnunet.predictor import ModelBundle, Segmenter
from hybridlabel.models.tumor_filter import drop_unsure_tumors, unsure_tumor_voxels

BODY_HU = -500.0


def body_box(image: np.ndarray, spacing_zyx, margin_mm: float = 10.0) -> tuple[slice, ...]:
    """Bounding box of the body in a (z, y, x) CT: the largest component above -500 HU
    (found on a coarse grid, which is enough for a box), grown by `margin_mm`."""
    import cc3d

    step = tuple(max(1, int(round(4.0 / max(s, 1e-3)))) for s in spacing_zyx)  # ~4 mm grid
    coarse = np.ascontiguousarray(image[:: step[0], :: step[1], :: step[2]] > BODY_HU)
    if not coarse.any():
        return tuple(slice(0, n) for n in image.shape)
    body = cc3d.largest_k(coarse, k=1, connectivity=6) > 0
    box = []
    for axis, (n, st, sp) in enumerate(zip(image.shape, step, spacing_zyx)):
        hits = np.flatnonzero(body.any(axis=tuple(a for a in range(3) if a != axis)))
        grow = int(np.ceil(margin_mm / sp)) + st
        box.append(slice(max(0, hits[0] * st - grow), min(n, (hits[-1] + 1) * st + grow)))
    return tuple(box)


def _source_index(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation neighbours and weights (align_corners=False, as torch)."""
    u = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(u).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (u - lo).astype(np.float32)


def logits_to_labels(
    logits: torch.Tensor, shape: tuple[int, int, int], tumor_channel: int | None = None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """(C, z', y', x') logits -> (z, y, x) uint8 argmax on `shape`: bilinear in-plane per
    source slice, linear along z per output slice; memory O(C * y * x). With a
    `tumor_channel`, also that channel's softmax probability (float16) and the argmax
    without it (what a dropped tumour voxel becomes), on the same grid."""
    import torch.nn.functional as F

    lo, hi, w = _source_index(shape[0], logits.shape[1])
    cache: dict[int, torch.Tensor] = {}

    def plane(i: int) -> torch.Tensor:
        if i not in cache:
            if len(cache) > 2:
                cache.pop(min(cache))
            cache[i] = F.interpolate(logits[:, i][None], size=shape[1:], mode="bilinear", align_corners=False)[0]
        return cache[i]

    out = np.empty(shape, dtype=np.uint8)
    tumor = None if tumor_channel is None else (np.empty(shape, np.float16), np.empty(shape, np.uint8))
    for z in range(shape[0]):
        a = plane(int(lo[z]))
        mixed = a if hi[z] == lo[z] or w[z] == 0 else torch.lerp(a, plane(int(hi[z])), float(w[z]))
        out[z] = mixed.argmax(0).to(torch.uint8).cpu().numpy()
        if tumor is not None:
            tumor[0][z] = torch.softmax(mixed.float(), 0)[tumor_channel].cpu().numpy()
            top2 = mixed.topk(2, dim=0).indices
            tumor[1][z] = torch.where(top2[0] == tumor_channel, top2[1], top2[0]).to(torch.uint8).cpu().numpy()
    return out, tumor


class FastSegmenter(Segmenter):
    """`predict_label(image, spacing)` -> uint8 label map on the input grid. `tumor_filter`
    (tumour class, min peak): predicted tumours never that sure take their next-ranked
    class (`models/tumor_filter.py`), on either path."""

    def __init__(
        self, bundle: ModelBundle, device: str = "auto", tta: str = "none", fast: bool = True, body_crop: bool = True
    ):
        super().__init__(bundle, device=device, tta="mirror8" if tta == "mirror" else tta)
        self.fast, self.body_crop = fast, body_crop  # body_crop=False: to measure that shortcut alone
        self.bundle = bundle

    def predict_label(
        self, image: np.ndarray, spacing_zyx, tumor_filter: tuple[int, float] | None = None
    ) -> np.ndarray:
        tumor_filter = tumor_filter if tumor_filter and tumor_filter[0] in self.classes else None
        if not self.fast:
            if tumor_filter is None:
                data = np.asarray(image, dtype=np.float32)[None]
                seg = self.predictor.predict_single_npy_array(
                    data, {"spacing": [float(s) for s in spacing_zyx]}, None, None, False
                )
                return np.asarray(seg, dtype=np.uint8)
            seg, probs = self.predict(image, spacing_zyx)
            return drop_unsure_tumors(seg, probs, self.classes, *tumor_filter)[0]
        from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

        p = self.predictor
        box = body_box(image, spacing_zyx) if self.body_crop else tuple(slice(0, n) for n in image.shape)
        crop = np.asarray(image[box], dtype=np.float32)[None]
        data, _, props = DefaultPreprocessor(verbose=False).run_case_npy(
            crop,
            None,
            {"spacing": [float(s) for s in spacing_zyx]},
            p.plans_manager,
            p.configuration_manager,
            p.dataset_json,
        )
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            logits = p.predict_logits_from_preprocessed_data(torch.from_numpy(data)).to(self.device)
            if self.device.type == "cuda":
                logits = logits.half()
            channel = None if tumor_filter is None else self.classes.index(tumor_filter[0])
            inner, tumor = logits_to_labels(logits, tuple(props["shape_after_cropping_and_before_resampling"]), channel)
        if tumor is not None:
            unsure = unsure_tumor_voxels(inner, tumor[0], channel, tumor_filter[1])
            inner[unsure] = tumor[1][unsure]
        transposed = np.zeros(props["shape_before_cropping"], dtype=np.uint8)
        transposed[tuple(slice(a, b) for a, b in props["bbox_used_for_cropping"])] = inner
        out = np.zeros(image.shape, dtype=np.uint8)
        out[box] = transposed.transpose(p.plans_manager.transpose_backward)
        return out
