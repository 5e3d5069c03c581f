from hybridlabel.models.round_counts import label_source_counts, tumor_organ_counts


def test_cases_per_class_and_source_leave_background_out():
    rows = [
        {"label_sources": {"0": "gt", "1": "gt", "2": "pseudo"}},
        {"label_sources": {"1": "pseudo", "2": "pseudo"}},
        {"label_sources": None},  # a case with no label yet
    ]
    counts = label_source_counts(rows)
    assert sorted(map(tuple, counts[["class_id", "source", "cases"]].values.tolist())) == [
        (1, "gt", 1),
        (1, "pseudo", 1),
        (2, "pseudo", 2),
    ]
    assert list(label_source_counts([]).columns) == ["class_id", "source", "cases"]


def test_kept_tumours_per_named_organ():
    tumors = [
        {"organ": 1, "kept": True},
        {"organ": 1},
        {"organ": 2, "kept": False},  # dropped by the merge: not counted
        {"organ": 99},  # an id the label map does not name
        {"organ": "none"},
    ]
    counts = tumor_organ_counts(tumors, {1: "liver", 2: "right_kidney"})
    assert dict(zip(counts["organ"], counts["tumours"])) == {"liver": 2, "99": 1, "none": 1}
    assert tumor_organ_counts([], {}).empty
