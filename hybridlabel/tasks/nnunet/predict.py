"""Predict cases with a trained model: label maps written in the input's geometry,
uncertainty computed from the probabilities in memory (never written per case; only
their per-voxel maximum, as uint8, where the merge's voxel-confidence rule asks for it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.models.nnunet.identity import FINAL, checkpoint_path
from hybridlabel.models.nnunet.predictor import ModelBundle, Segmenter
from hybridlabel.models.tumor_filter import drop_unsure_tumors
from hybridlabel.models.uncertainty import NEEDS_SECOND_PREDICTION, ScoreInputs, case_scores
from hybridlabel.tasks.files.imageio import array_to_image, read_image, spacing_zyx, write_image
from hybridlabel.tasks.files.orient import to_image_grid, to_model_orientation


def load_bundle(model_folder: Path, checkpoint: str = FINAL) -> ModelBundle:
    """A trained model folder, loaded as an archive is: weights-only unpickling, checked plans."""
    from hybridlabel.tasks.model.archive import bundle_from, load_weights

    folder = Path(model_folder)
    ckpt = load_weights(checkpoint_path(folder, checkpoint), f"model {folder}")
    return bundle_from(
        ckpt,
        json.loads((folder / "plans.json").read_text()),
        json.loads((folder / "dataset.json").read_text()),
        f"model {folder}",
    )


def predict_case(
    segmenter: Segmenter,
    image_path: Path,
    out_path: Path,
    labels: LabelMapConfig,
    scorers: tuple[str, ...] = ("entropy",),
    reference: Path | None = None,
    confidence_out: Path | None = None,
    min_tumor_peak: float | None = None,
) -> tuple[Path, dict]:
    """Write the label map of one image (file or DICOM folder); return it and its scores.
    A scorer that compares two predictions compares with `reference` (a label map of the
    same case on the same grid, e.g. the previous round's) or else with a mirrored pass.
    The network sees the image in the model's orientation; the label map is written on the
    image's own grid. `confidence_out`: also write each voxel's highest class probability
    there, as round(255 p) in uint8 on the same grid (`merge.min_voxel_confidence` reads it).
    `min_tumor_peak`: a predicted tumour never this sure takes its next-ranked class
    (`models/tumor_filter.py`), before the scores."""
    original = read_image(image_path)
    image = to_model_orientation(original)
    array, spacing = sitk.GetArrayViewFromImage(image), spacing_zyx(image)

    def predicted(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seg, probs = segmenter.predict(volume, spacing)
        if min_tumor_peak is not None:
            seg, _ = drop_unsure_tumors(seg, probs, segmenter.classes, labels.tumor_id, min_tumor_peak)
        return seg, probs

    seg, probs = predicted(array)
    other = None
    if NEEDS_SECOND_PREDICTION & set(scorers):
        if reference is not None and Path(reference).is_file():
            other = sitk.GetArrayFromImage(to_model_orientation(read_image(Path(reference))))
        else:  # mirrored along x, predicted (the same rule), mirrored back
            other = np.ascontiguousarray(predicted(np.ascontiguousarray(array[:, :, ::-1]))[0][:, :, ::-1])
        if other.shape != seg.shape:
            raise ValueError(f"{reference}: shape {other.shape} differs from the prediction's {seg.shape}")
    scores = case_scores(ScoreInputs(seg, probs, other), labels, scorers)
    if confidence_out is not None:
        confidence = np.rint(probs.max(axis=0) * 255).astype(np.uint8)
        write_image(to_image_grid(array_to_image(confidence, image), original), confidence_out)
    del probs
    write_image(to_image_grid(array_to_image(seg, image), original), out_path)
    return Path(out_path), scores
