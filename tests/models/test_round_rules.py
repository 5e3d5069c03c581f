"""The round's rules on frames of a few rows."""

import numpy as np
import pandas as pd

from hybridlabel.models.round_rules import (
    case_updates,
    hidden_tumor,
    loss_classes,
    needs_ignore,
    prediction_set,
    training_set,
    tumor_donors,
    tumor_kept,
    usable,
)


def _cases() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "case_id": "s1",
                "role": "strong",
                "image_path": "i/s1",
                "label_path": "l/s1",
                "annotated_classes": [1, 2, 3],
                "quarantine_reason": None,
            },
            {
                "case_id": "p1",
                "role": "partial",
                "image_path": "i/p1",
                "label_path": "l/p1",
                "annotated_classes": [1, 14],
                "quarantine_reason": None,
            },
            {
                "case_id": "u1",
                "role": "unlabeled",
                "image_path": "i/u1",
                "label_path": None,
                "annotated_classes": None,
                "quarantine_reason": None,
            },
            {
                "case_id": "u2",
                "role": "unlabeled",
                "image_path": "i/u2",
                "label_path": None,
                "annotated_classes": None,
                "quarantine_reason": None,
            },
            {
                "case_id": "q1",
                "role": "strong",
                "image_path": "i/q1",
                "label_path": "l/q1",
                "annotated_classes": [1, 2, 3],
                "quarantine_reason": "image unreadable",
            },
        ]
    )


def _merged(case_id: str, sources: dict) -> dict:
    return {"case_id": case_id, "train_label": f"m/{case_id}", "sources": sources}


def test_usable_drops_quarantined_and_other_roles():
    assert list(usable(_cases(), ["strong"])["case_id"]) == ["s1"]


def test_prediction_set_is_sorted_records_of_the_predicted_roles():
    todo = prediction_set(_cases().iloc[::-1], ["partial", "unlabeled"])
    assert [c["case_id"] for c in todo] == ["p1", "u1", "u2"]
    assert todo[0]["annotated_classes"] == [1, 14] and "quarantine_reason" not in todo[0]


def test_tumor_kept_for_labeled_cases_and_selected_unlabeled_ones():
    todo = prediction_set(_cases(), ["partial", "unlabeled"])
    assert tumor_kept(todo, {"u1": "tumor_kept", "u2": "organs_kept"}) == [True, True, False]


def test_the_teacher_trains_on_labeled_cases_with_their_annotated_classes():
    train, annotated = training_set(_cases(), ["strong", "partial", "unlabeled"], {}, {})
    assert [c["train_label"] for c in train] == ["l/p1", "l/s1"]  # no label, no training; quarantine never
    assert annotated == {"p1": [1, 14], "s1": [1, 2, 3]}


def test_a_student_trains_on_merged_labels_except_unlabeled_cases_left_out():
    merged = {
        "p1": _merged("p1", {"1": "gt", "2": "pseudo", "3": "pseudo", "14": "gt"}),
        "u1": _merged("u1", {"1": "pseudo", "2": "pseudo", "3": "pseudo", "14": "ignore"}),
        "u2": _merged("u2", {"1": "pseudo", "2": "pseudo", "3": "pseudo", "14": "ignore"}),
    }
    train, annotated = training_set(
        _cases(), ["strong", "partial", "unlabeled"], merged, {"u1": "organs_kept", "u2": "sits_out"}, untrusted=[3]
    )
    assert {c["case_id"]: c["train_label"] for c in train} == {"p1": "m/p1", "s1": "l/s1", "u1": "m/u1"}
    assert annotated["p1"] == [1, 2, 14]  # pseudo class 3 is distrusted; its ground truth would not be
    assert annotated["u1"] == [1, 2] and annotated["s1"] == [1, 2, 3]


def test_loss_classes_only_for_a_partial_label_loss():
    assert loss_classes({"a": [1]}, "naive") is None
    assert loss_classes({"a": [1]}, "target_adaptive") == {"a": [1]}


def test_ignore_label_needed_for_unknown_voxels_or_a_tumour_an_organ_round_must_not_learn():
    clean = {"uses_ignore": False, "counts": {"1": 10}}
    with_tumor = {"uses_ignore": False, "counts": {"1": 10, "14": 3}}
    assert not needs_ignore([clean], "organs", 14)
    assert needs_ignore([clean, with_tumor], "organs", 14)
    assert not needs_ignore([with_tumor], "organs+tumor", 14)
    assert needs_ignore([{"uses_ignore": True, "counts": {}}], "organs+tumor", 14)


def test_case_updates_record_the_merge_scores_selection_and_training():
    todo = prediction_set(_cases(), ["partial", "unlabeled"])
    preds = {c["case_id"]: {"scores": {"organ_entropy": np.float32(0.1)}} for c in todo}
    merged = {
        c["case_id"]: {"path": f"h/{c['case_id']}", "sha256": "x", "sources": {"1": "gt"}, "tumors": []} for c in todo
    }
    selection = pd.DataFrame(
        [
            {"case_id": "u1", "decision": "organs_kept", "reason": "rank 1 of 2"},
            {"case_id": "u2", "decision": "sits_out", "reason": "rank 2 of 2"},
        ]
    )
    updates = case_updates(todo, preds, merged, selection, [{"case_id": "p1"}, {"case_id": "s1"}])
    assert updates["p1"]["hybrid_label_path"] == "h/p1" and updates["p1"]["trained"] is True
    assert updates["u2"]["selection"] == "sits_out" and "trained" not in updates["u2"]
    assert updates["s1"] == {"trained": True}  # trained on its own label, nothing merged


def test_the_ranking_scorer_is_computed_for_the_unlabeled_cases_it_ranks():
    from hybridlabel.models.round_rules import case_scorers, select_unlabeled

    todo = prediction_set(_cases(), ["partial", "unlabeled"])
    assert case_scorers(todo, "disagreement") == [
        ("entropy",),
        ("disagreement", "entropy"),
        ("disagreement", "entropy"),
    ]
    preds = {
        "p1": {"scores": {"organ_entropy": 0.5}},
        "u1": {
            "scores": {"organ_entropy": 0.1, "tumor_entropy": 0.1, "organ_disagreement": 0.9, "tumor_disagreement": 0.0}
        },
        "u2": {
            "scores": {"organ_entropy": 0.2, "tumor_entropy": 0.1, "organ_disagreement": 0.1, "tumor_disagreement": 0.0}
        },
    }
    kept = select_unlabeled(todo, preds, "disagreement", 1, 0).set_index("case_id")["decision"]
    assert kept["u2"] != "sits_out" and kept["u1"] == "sits_out"  # ranked by disagreement, not entropy
    assert select_unlabeled(todo, preds, "entropy", 1, 0).set_index("case_id")["decision"]["u1"] != "sits_out"


def test_training_labels_are_the_hybrid_label_else_the_own_one():
    import numpy as np
    import pandas as pd

    from hybridlabel.models.round_rules import training_label_paths

    cases = pd.DataFrame(
        {
            "case_id": ["c", "a", "b", "d", "e"],
            "trained": [True, True, False, True, True],
            "hybrid_label_path": ["c_h.nii.gz", None, "b_h.nii.gz", np.nan, None],
            "label_path": ["c.nii.gz", "a.nii.gz", "b.nii.gz", "d.nii.gz", None],
        }
    )
    # b did not train; d's missing hybrid label is NaN, not None; e has no label at all
    assert training_label_paths(cases) == ["a.nii.gz", "c_h.nii.gz", "d.nii.gz"]


def test_tumor_donors_are_cases_whose_tumour_label_is_ground_truth():
    cases = _cases().assign(image_sha256=lambda f: "sha-" + f["case_id"])
    train = [{"case_id": c} for c in ("s1", "p1", "u1", "u2")]
    merged = {
        "u1": _merged("u1", {"0": "pseudo", "1": "pseudo", "14": "pseudo"}),  # a kept pseudo tumour
        "u2": _merged("u2", {0: "pseudo", 14: "gt"}),
    }  # (sources as the merge returns them: int keys)
    donors = tumor_donors(cases, train, merged, 14)
    # p1 annotates the tumour and trains on its own label; s1 does not annotate it
    assert donors == [{"case_id": "p1", "image_sha256": "sha-p1"}, {"case_id": "u2", "image_sha256": "sha-u2"}]


def test_a_failed_prediction_leaves_the_round_quarantined_with_its_error():
    from hybridlabel.models.round_rules import without_failed_predictions

    todo = [{"case_id": "a"}, {"case_id": "b"}, {"case_id": "c"}]
    preds = [
        {"case_id": "a", "path": "a.nii.gz"},
        {"case_id": "b", "error": "ImageHeaderError: spacing"},
        {"case_id": "c", "path": "c.nii.gz"},
    ]
    kept, kept_preds, updates = without_failed_predictions(todo, preds, 2)
    assert [c["case_id"] for c in kept] == ["a", "c"] and [p["path"] for p in kept_preds] == ["a.nii.gz", "c.nii.gz"]
    assert updates == {
        "b": {"role": "quarantined", "quarantine_reason": "round 2: prediction failed: ImageHeaderError: spacing"}
    }


def test_a_quarantined_duplicate_id_is_not_marked_trained():
    from hybridlabel.models.round_rules import trained_rows

    cases = pd.DataFrame(
        {
            "case_id": ["a", "a", "b"],
            "role": ["strong", "quarantined", "strong"],
            "quarantine_reason": [None, "duplicate case id 'a'", None],
        }
    )
    assert trained_rows(cases, [{"case_id": "a"}]).tolist() == [True, False, False]


def test_complete_label_jobs_are_the_predicted_cases_the_loop_completes():
    from hybridlabel.models.round_rules import complete_label_jobs

    todo = [
        {"case_id": "s", "role": "strong"},
        {"case_id": "p", "role": "partial"},
        {"case_id": "u", "role": "unlabeled"},
        {"case_id": "x", "role": "partial"},
    ]
    merged = {c: {"path": f"{c}.merged"} for c in "spu"}  # x's merge is missing: not scored
    preds = {c: {"path": f"{c}.pred"} for c in "spux"}
    jobs = complete_label_jobs(todo, merged, preds)
    assert [(c["case_id"], h, r) for c, h, r in jobs] == [("p", "p.merged", "p.pred"), ("u", "u.merged", "u.pred")]


def test_a_tumour_hides_in_the_organs_ground_truth_tumours_lie_in():
    from hybridlabel.models.config import PipelineConfig

    config = PipelineConfig()
    labels, tumor_round = config.label_map, config.rounds[-1]
    hide = tumor_round.training.model_copy(update={"tumor_drawn_as_organ": True})
    off, tumor_round = tumor_round, tumor_round.model_copy(update={"training": hide})
    assert tumor_round.trains_tumor and not config.rounds[0].trains_tumor
    merged = [
        {"tumors": [{"organ": 1, "source": "gt"}, {"organ": 3, "source": "pseudo"}]},
        {"tumors": [{"organ": 2, "source": "gt"}, {"organ": None, "source": "gt"}]},
        {"tumors": [{"organ": "extra_organ", "source": "gt"}]},  # outside every organ
        {"tumors": []},
    ]
    assert hidden_tumor(tumor_round, merged, labels) == [14, [1, 2]]
    # no ground-truth tumour says where tumours lie: every organ may hide one
    assert hidden_tumor(tumor_round, merged[2:], labels) == [14, list(range(1, 14))]
    assert hidden_tumor(config.rounds[0], merged, labels) is None
    assert hidden_tumor(off, merged, labels) is None  # the default
