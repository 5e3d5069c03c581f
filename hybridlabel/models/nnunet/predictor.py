"""Prediction with nnU-Net's `nnUNetPredictor`, in process, returning the label map and
the class probabilities in memory (so uncertainty needs no probability file).

The network is rebuilt from the plans by our trainer class and loaded with the given
weights (manual initialisation), so no trainer lookup through environment variables
happens in the caller's process. Test-time augmentation: `none`, `flip4` (the image
plus one flip per axis, as the FLARE23 iterative-training paper did) or `mirror8`
(nnU-Net's mirroring over every combination of axes).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Tta = Literal["none", "flip4", "mirror8"]


@dataclass
class ModelBundle:
    """What a trained model folder holds, loaded: everything prediction needs."""

    plans: dict
    dataset_json: dict
    configuration: str
    weights: dict
    mirror_axes: tuple[int, ...] | None


def _predictor_class():
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    class TtaPredictor(nnUNetPredictor):
        tta: str = "mirror8"

        @torch.inference_mode()
        def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
            if self.tta != "flip4" or not self.use_mirroring or not self.allowed_mirroring_axes:
                return super()._internal_maybe_mirror_and_predict(x)
            prediction = self.network(x)
            axes = [a + 2 for a in self.allowed_mirroring_axes]
            for axis in axes:  # one flip per axis, no combinations
                prediction += torch.flip(self.network(torch.flip(x, (axis,))), (axis,))
            return prediction / (len(axes) + 1)

    return TtaPredictor


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(device)


class Segmenter:
    def __init__(self, bundle: ModelBundle, device: str = "auto", tta: Tta = "none", tile_step_size: float = 0.5):
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        from hybridlabel.models.nnunet.network import build_network

        self.device = pick_device(device)
        plans_manager = PlansManager(bundle.plans)
        config = plans_manager.get_configuration(bundle.configuration)
        network = build_network(bundle.plans, bundle.dataset_json, bundle.configuration)
        network.load_state_dict(bundle.weights)
        n_out = plans_manager.get_label_manager(bundle.dataset_json).num_segmentation_heads
        # nnU-Net prints a warning about perform_everything_on_device on every CPU predictor,
        # even when it is off; it would land in every `predict` run and round log
        with contextlib.redirect_stdout(io.StringIO()):
            predictor = _predictor_class()(
                tile_step_size=tile_step_size,
                use_gaussian=True,
                use_mirroring=tta != "none",
                perform_everything_on_device=self.device.type == "cuda",
                device=self.device,
                verbose=False,
                verbose_preprocessing=False,
                allow_tqdm=False,
            )
        predictor.tta = tta
        predictor.manual_initialization(
            network,
            plans_manager,
            config,
            [bundle.weights],
            bundle.dataset_json,
            "HybridLabelTrainer",
            bundle.mirror_axes or (0, 1, 2),
        )
        self.predictor = predictor
        self.n_classes = n_out
        # channel c of the probabilities is class classes[c] (the ignore label has none)
        self.classes = sorted(int(v) for k, v in bundle.dataset_json["labels"].items() if k != "ignore")[:n_out]
        self.n_parameters = sum(p.numel() for p in network.parameters())

    def predict(self, image: np.ndarray, spacing_zyx) -> tuple[np.ndarray, np.ndarray]:
        """(z, y, x) CT -> (uint8 label map, float16 probabilities (C, z, y, x)) on the input grid."""
        data = np.asarray(image, dtype=np.float32)[None]
        seg, probs = self.predictor.predict_single_npy_array(
            data, {"spacing": [float(s) for s in spacing_zyx]}, None, None, True
        )
        return np.asarray(seg, dtype=np.uint8), np.asarray(probs, dtype=np.float16)
