from hybridlabel.models.presets import CPU_ITERATIONS, cpu_preset, cpu_training


def test_a_cpu_budget_counts_iterations_not_seconds():
    counted = cpu_training(510, init_from_parent=True, seed=3)
    assert counted.max_train_seconds is None and counted.epochs * counted.iterations_per_epoch == 500
    assert counted.init_from_parent and counted.seed == 3
    assert (counted.configuration, counted.network, counted.optimizer) == ("2d", "tiny", "adam")


def test_the_cpu_preset_gives_every_machine_the_same_models():
    rounds = cpu_preset().rounds
    assert all(r.training.max_train_seconds is None for r in rounds)  # no wall-clock budget anywhere
    iterations = [r.training.epochs * r.training.iterations_per_epoch for r in rounds]
    assert iterations == [CPU_ITERATIONS["teacher"]] + [CPU_ITERATIONS["student"]] * (len(rounds) - 1)
    assert [r.training.init_from_parent for r in rounds] == [False] + [True] * (len(rounds) - 1)
