"""CutMix inside nnU-Net's data loading, without copying its loader (models/cutmix.py).

nnU-Net's loader crops a patch of a case and hands it to the training transforms; the
paste goes between the two: the training transforms are wrapped (`PasteThenAugment`),
so a pasted tumour is rotated, scaled, mirrored and blurred with its host, and the
loader's dataset is wrapped (`CaseRecorder`) so that the paste knows whose patch it got
(only cases without a tumour label receive one). The validation loader's transforms
are not wrapped: validation patches are never pasted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hybridlabel.models.cutmix import PASTED, TumorObject, paste_random


class PasteThenAugment:
    """The training transforms, preceded by a paste into recipients' patches."""

    def __init__(
        self, augment, pool: list[TumorObject], recipients: set[str], organ_ids, probability: float, placement: str
    ):
        self.augment, self.pool, self.recipients = augment, pool, recipients
        self.organ_ids, self.probability, self.placement = tuple(organ_ids), probability, placement
        self.case: str | None = None  # set by CaseRecorder as nnU-Net loads each case

    def loading(self, key: str) -> None:
        self.case = key

    def __call__(self, image: torch.Tensor, segmentation: torch.Tensor, **kwargs):
        # np.random: the generator nnU-Net's loader draws from (seeded by the trainer)
        if self.pool and str(self.case) in self.recipients and np.random.random() < self.probability:
            paste_random(image.numpy(), segmentation[0].numpy(), self.pool, self.organ_ids, np.random, self.placement)
        return self.augment(image=image, segmentation=segmentation, **kwargs)


class CaseRecorder:
    """nnU-Net's dataset, telling `on_load` which case the loader loads (nnU-Net's loader
    does not pass the case on to the patch choice or the transforms)."""

    def __init__(self, dataset, on_load: Callable[[str], None]):
        self._dataset, self._on_load = dataset, on_load

    def load_case(self, key):
        self._on_load(key)
        return self._dataset.load_case(key)

    def __getattr__(self, name):
        return getattr(self._dataset, name)


def pasted_examples(data: torch.Tensor, target, limit: int) -> list[dict]:
    """Up to `limit` samples of a training batch that hold a paste, as the network got them
    (after augmentation): the first image channel, the decoded target and the box mask, on
    the axial slice through the box's centre for 3D patches."""
    full = target[0] if isinstance(target, (list, tuple)) else target
    out = []
    for i in range(full.shape[0]):
        if len(out) >= limit:
            break
        seg = full[i, 0].detach().cpu().numpy()
        box = seg >= PASTED
        if not box.any():
            continue
        image = data[i, 0].detach().cpu().float().numpy()
        if seg.ndim == 3:
            z = int(np.round(np.flatnonzero(box.any(axis=(1, 2))).mean()))
            image, seg, box = image[z], seg[z], box[z]
        out.append(
            {"image": image.astype(np.float32), "label": np.where(box, seg - PASTED, seg).astype(np.int16), "box": box}
        )
    return out
