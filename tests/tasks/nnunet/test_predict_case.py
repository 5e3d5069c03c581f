"""`predict_case` applies the tumour rule to what it writes and to the mirrored pass it
compares with (the network replaced by a known function: no model trains here)."""

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.config import LabelMapConfig
from hybridlabel.tasks.nnunet.predict import predict_case

LABELS = LabelMapConfig()


class SpeckSegmenter:
    """A liver with an unsure tumour speck at x = 1 (peak 0.6): the mirrored pass sees it at
    the other side, so without the rule the two passes disagree on it."""

    classes = list(range(15))

    def __init__(self):
        self.calls = 0

    def predict(self, image, spacing):
        self.calls += 1
        probs = np.zeros((15, *image.shape), np.float16)
        probs[0] = 1
        probs[:, 1:5, 1:7, 1:7] = 0
        probs[1, 1:5, 1:7, 1:7] = 1  # liver
        probs[1, 2, 2, 1], probs[14, 2, 2, 1] = 0.4, 0.6  # the speck at x = 1
        return probs.argmax(0).astype(np.uint8), probs


def test_the_rule_reaches_the_label_map_and_the_mirrored_pass(tmp_path):
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((6, 8, 8), np.int16)), str(image))
    scorers = ("entropy", "disagreement")
    seg = SpeckSegmenter()
    out, scores = predict_case(seg, image, tmp_path / "raw.nii.gz", LABELS, scorers)
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert raw[2, 2, 1] == 14 and seg.calls == 2  # without the rule the speck stays ...
    assert scores["tumor_disagreement"] > 0  # ... and the mirrored pass disagrees on it
    out, scores = predict_case(seg, image, tmp_path / "rule.nii.gz", LABELS, scorers, min_tumor_peak=0.9)
    ruled = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert ruled[2, 2, 1] == 1 and not (ruled == 14).any()  # the speck is liver again
    assert scores["tumor_disagreement"] == 0
