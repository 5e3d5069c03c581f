import logging
import re
import time

from hybridlabel.cli.demo import demo_config
from hybridlabel.flows.timing import budget_line, timed
from hybridlabel.models.presets import CPU_ITERATIONS
from hybridlabel.tasks.events import LOGGER


def test_the_budget_is_said_before_it_is_spent():
    rounds = demo_config().rounds
    line = budget_line(rounds)
    total = CPU_ITERATIONS["teacher"] + 2 * CPU_ITERATIONS["student"]
    assert line.startswith(f"training budget: {total} iterations") and "teacher 1500 iterations" in line
    timed_rounds = [
        r.model_copy(update={"training": r.training.model_copy(update={"max_train_seconds": 120.0})}) for r in rounds
    ]
    assert "6.0 min" in budget_line(timed_rounds) and "iterations (" not in budget_line(timed_rounds)
    assert "teacher" not in budget_line(rounds, start_round=1)  # a resumed run counts what is left


def test_a_training_line_gives_the_machines_rate(caplog):
    stages: dict[str, float] = {}
    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        with timed(stages, "train", 4, "iterations"):
            time.sleep(0.2)  # four "iterations" of at least 0.05 s each
    rate = float(re.search(r"\(([0-9.]+) s/iteration", caplog.text).group(1))
    assert "4 iterations" in caplog.text and stages["train"] >= 0.2 and rate >= 0.05
