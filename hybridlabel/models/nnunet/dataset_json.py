"""dataset.json of a round's nnU-Net dataset (pure)."""

from __future__ import annotations

from hybridlabel.models.config import LabelMapConfig


def dataset_json(
    labels: LabelMapConfig, n_training: int, with_ignore: bool = False, file_ending: str = ".nii.gz", tumor: bool = True
) -> dict:
    """nnU-Net v2's dataset.json: CT channel, the label map (names -> ids) and, when the
    hybrid labels use it, the `ignore` label (the id after the last class)."""
    names = {name: int(i) for i, name in sorted(labels.labels.items()) if tumor or i != labels.tumor_id}
    if with_ignore:
        names["ignore"] = max(names.values()) + 1  # nnU-Net: the ignore label is the highest value
    return {
        "channel_names": {"0": "CT"},
        "labels": names,
        "numTraining": int(n_training),
        "file_ending": file_ending,
        "name": "hybridlabel",
        "description": "hybrid labels written by hybridlabel",
    }
