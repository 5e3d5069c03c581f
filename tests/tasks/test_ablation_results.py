"""The ablation's rows: the iterations behind a model count its parents' only while it
started from them."""

from hybridlabel.tasks.ablation_results import _trained_iterations


def _round(epochs: int, warm: bool) -> dict:
    return {"training": {"epochs": epochs, "iterations_per_epoch": 10, "init_from_parent": warm}}


def test_a_warm_started_model_carries_its_parents_iterations():
    rounds = [_round(3, False), _round(2, True), _round(4, True), _round(1, False), _round(5, True)]
    assert [_trained_iterations(rounds, r) for r in range(5)] == [30, 50, 90, 10, 60]
