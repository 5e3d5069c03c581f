"""The ablation's rows: the iterations behind a model count its parents' only while it
started from them."""

import pandas as pd

from hybridlabel.tasks.ablation_results import _trained_iterations, merge_rows


def _round(epochs: int, warm: bool) -> dict:
    return {"training": {"epochs": epochs, "iterations_per_epoch": 10, "init_from_parent": warm}}


def test_a_warm_started_model_carries_its_parents_iterations():
    rounds = [_round(3, False), _round(2, True), _round(4, True), _round(1, False), _round(5, True)]
    assert [_trained_iterations(rounds, r) for r in range(5)] == [30, 50, 90, 10, 60]


def test_a_run_of_more_seeds_keeps_the_earlier_seeds_rows_and_replaces_its_own():
    earlier = pd.DataFrame(
        {
            "arm": ["teacher_long", "round 2", "teacher_long", "round 2"],
            "seed": [1, 1, 2, 2],
            "organ_dsc": [0.8, 0.7, 0.8, 0.6],
        }
    )
    new = pd.DataFrame(
        {"arm": ["teacher_long", "round 2", "round 2"], "seed": [3, 3, 2], "organ_dsc": [0.9, 0.85, 0.65]}
    )
    merged = merge_rows(earlier, new)
    assert sorted(zip(merged["arm"], merged["seed"], merged["organ_dsc"])) == sorted(
        [
            ("teacher_long", 1, 0.8),
            ("round 2", 1, 0.7),
            ("teacher_long", 2, 0.8),
            ("round 2", 2, 0.65),
            ("teacher_long", 3, 0.9),
            ("round 2", 3, 0.85),
        ]
    )
    assert list(merged["seed"]) == sorted(merged["seed"])
    assert merge_rows(None, new) is new and merge_rows(earlier, new.iloc[:0]) is earlier
