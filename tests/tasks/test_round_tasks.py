"""Round tasks: one case's failure is that case's record."""


def test_a_case_whose_prediction_fails_is_recorded_not_raised(tmp_path, monkeypatch):
    """A per-case failure inside a round (here the probe's header ITK cannot hold) is that
    case's record; no journal entry is written, so a rerun tries it again."""
    from hybridlabel.models.config import LabelMapConfig
    from hybridlabel.tasks import round_tasks
    from hybridlabel.tasks.files.imageio import ImageHeaderError

    def failing(*args):
        raise ImageHeaderError("x.mha: spacing (1e+30, 1, 1) mm lies outside 0.05-50 mm\nsecond line")

    monkeypatch.setattr(round_tasks, "_predict_locked", failing)
    record = round_tasks.predict_case_step(
        "model", {"case_id": "x", "image_path": "x.mha"}, str(tmp_path), LabelMapConfig()
    )
    assert record == {
        "case_id": "x",
        "error": "ImageHeaderError: x.mha: spacing (1e+30, 1, 1) mm lies outside 0.05-50 mm",
    }
    assert not (tmp_path / "journal").exists()


def test_voxel_confidence_travels_from_the_prediction_step_to_the_merge(tmp_path, monkeypatch):
    """`merge.min_voxel_confidence` set: the prediction step writes the confidence map and
    records it (a journal of its own), and the merge step hands it to the merge."""
    import numpy as np
    import SimpleITK as sitk

    from hybridlabel.models.config import PipelineConfig
    from hybridlabel.tasks import round_tasks

    labels = PipelineConfig().label_map
    pred = np.zeros((4, 6, 6), np.uint8)
    pred[1:3, 1:5, 1:5] = 1  # a pseudo liver, its left half unsure
    conf = np.full(pred.shape, 255, np.uint8)
    conf[:, :, :3] = 60

    def predicting(model_dir, device, tta, image, out, labels, scorers, reference, confidence_out, min_tumor_peak):
        out.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.GetImageFromArray(pred), str(out))
        if confidence_out is not None:
            sitk.WriteImage(sitk.GetImageFromArray(conf), str(confidence_out))
        return out, {"organ_entropy": 0.1}

    monkeypatch.setattr(round_tasks, "_predict_locked", predicting)
    case = {"case_id": "u1", "image_path": "u1.nii.gz"}
    plain = round_tasks.predict_case_step("m", case, str(tmp_path / "p0"), labels)
    assert "confidence_path" not in plain
    record = round_tasks.predict_case_step("m", case, str(tmp_path / "p1"), labels, confidence=True)
    assert record["confidence_path"] == str(tmp_path / "p1" / "u1.confidence.nii.gz")
    assert record["inputs"] != plain["inputs"]  # a workdir predicted without it predicts again
    merge = PipelineConfig(merge={"min_voxel_confidence": 0.5, "min_component_mm3": 0}).merge
    merged = round_tasks.merge_case_step(case, record, str(tmp_path / "m"), merge, labels, False, "organs+tumor")
    hybrid = sitk.GetArrayFromImage(sitk.ReadImage(merged["path"]))
    assert (hybrid[:, :, :3] == labels.ignore_id).all() and (hybrid[1:3, 1:5, 3:5] == 1).all()
    assert merged["uses_ignore"]
    # the same labels with other confidences (a prediction redone): merged again, not taken from the journal
    conf[:] = 255
    again = round_tasks.predict_case_step("m", case, str(tmp_path / "p1"), labels, confidence=True)
    assert again["sha256"] == record["sha256"]  # same journal inputs: the prediction is reused as is
    sitk.WriteImage(sitk.GetImageFromArray(conf), again["confidence_path"])
    remerged = round_tasks.merge_case_step(case, again, str(tmp_path / "m"), merge, labels, False, "organs+tumor")
    assert not remerged["uses_ignore"] and remerged["inputs"] != merged["inputs"]


def test_the_tumour_peak_rule_reaches_the_prediction_and_its_journal(tmp_path, monkeypatch):
    """`min_tumor_peak` is handed to the prediction and is one of its journal's inputs: a
    case predicted without it (or with another bar) is predicted again, the same bar is not."""
    import numpy as np
    import SimpleITK as sitk

    from hybridlabel.models.config import LabelMapConfig
    from hybridlabel.tasks import round_tasks

    seen = []

    def predicting(model_dir, device, tta, image, out, labels, scorers, reference, confidence_out, min_tumor_peak):
        seen.append(min_tumor_peak)
        out.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 3), np.uint8)), str(out))
        return out, {"organ_entropy": 0.1}

    monkeypatch.setattr(round_tasks, "_predict_locked", predicting)
    case, step = {"case_id": "u1", "image_path": "u1.nii.gz"}, str(tmp_path / "p")
    for bar in (None, 0.9, 0.9, 0.8):
        round_tasks.predict_case_step("m", case, step, LabelMapConfig(), min_tumor_peak=bar)
    assert seen == [None, 0.9, 0.8]
