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
