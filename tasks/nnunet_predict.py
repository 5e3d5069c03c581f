"""Predict cases with a trained model: label maps written in the input's geometry,
uncertainty computed from the probabilities in memory (never written per case)."""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from models.config import LabelMapConfig
from models.nnunet.identity import FINAL, checkpoint_path
from models.nnunet.predictor import ModelBundle, Segmenter
from models.uncertainty import entropy_scores
from tasks.imageio import array_to_image, read_image, spacing_zyx, write_image


def load_bundle(model_folder: Path, checkpoint: str = FINAL) -> ModelBundle:
    """A trained model folder, loaded as an archive is: weights-only unpickling, checked plans."""
    from tasks.model_archive import bundle_from, load_weights

    folder = Path(model_folder)
    ckpt = load_weights(checkpoint_path(folder, checkpoint), f"model {folder}")
    return bundle_from(ckpt, json.loads((folder / "plans.json").read_text()),
                       json.loads((folder / "dataset.json").read_text()), f"model {folder}")


def predict_case(segmenter: Segmenter, image_path: Path, out_path: Path, labels: LabelMapConfig) -> tuple[Path, dict]:
    """Write the label map of one image (file or DICOM folder); return it and its scores."""
    image = read_image(image_path)
    seg, probs = segmenter.predict(sitk.GetArrayViewFromImage(image), spacing_zyx(image))
    scores = entropy_scores(probs, seg, labels)
    del probs
    write_image(array_to_image(seg, image), out_path)
    return Path(out_path), scores
