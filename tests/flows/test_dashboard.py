"""The round line and the pipeline overview the dashboard shows."""


def test_the_round_line_warns_when_a_model_learned_little():
    from hybridlabel.flows.dashboard import round_line

    means = {
        "val_gt": {"organ mean (present)": {"dsc": 0.2}},
        "complete_hybrid": {"organ mean (present)": {"dsc": 0.9}},
        "complete_raw": {"organ mean (present)": {"dsc": 0.6}},
    }
    line = round_line(1, "s", {"predicted": 4, "trained": 5}, means, None, {"train": 60.0}, floor=0.5)
    assert "labels organ DSC 0.900 (raw predictions 0.600)" in line
    assert "learned little: val organ DSC 0.200 is below the floor 0.50" in line and "\n" not in line


def test_the_pipeline_overview_shows_every_round_the_verdict_so_far_and_the_queue():

    from hybridlabel.flows.dashboard import pipeline_overview

    def row(r, dsc, labels=None, reviewed=None):
        means = {"val_gt": {"organ mean (present)": {"dsc": dsc}}}
        if labels is not None:
            means["complete_hybrid"] = {"organ mean (present)": {"dsc": labels}}
        return {
            "round": r,
            "name": f"r{r}",
            "status": "completed",
            "mean_metrics": means,  # decoded, as data_registry.frames.records gives them
            "counts": {"reviewed": reviewed} if reviewed else {},
            "stage_seconds": {"train": 120.0},
        }

    text = pipeline_overview([row(0, 0.70), row(1, 0.75, 0.72, reviewed=2)], {1: 2}, [1])
    assert "so far: round 1 at 0.750 val organ DSC (+0.050 over the teacher)" in text
    assert "| 1 | r1 | completed | 0.750 | +0.050 | 0.720 | 2 | 2.0 |" in text
    assert "round 1: queue written, 2 correction(s) taken" in text
    assert "no round completed yet" in pipeline_overview([], {}, [])
