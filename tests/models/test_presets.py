import pytest

from hybridlabel.models.presets import cpu_training


def test_a_cpu_budget_is_minutes_or_iterations():
    timed = cpu_training(2.0)
    assert timed.max_train_seconds == 120.0 and timed.epochs * timed.iterations_per_epoch > 100_000
    counted = cpu_training(iterations=510, init_from_parent=True, seed=3)
    assert counted.max_train_seconds is None and counted.epochs * counted.iterations_per_epoch == 500
    assert counted.init_from_parent and counted.seed == 3
    # the same network, loss and optimizer either way
    assert counted.model_copy(update={"epochs": timed.epochs, "max_train_seconds": 120.0, "seed": timed.seed,
                                      "init_from_parent": False}) == timed
    for both_or_neither in ({"minutes": 1.0, "iterations": 100}, {}):
        with pytest.raises(ValueError, match="minutes or in iterations"):
            cpu_training(**both_or_neither)
