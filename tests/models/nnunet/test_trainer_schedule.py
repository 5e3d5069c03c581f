import pytest
import torch

from hybridlabel.models.nnunet.trainers.hybridlabel_trainer import WallClockPolyLR


def test_learning_rate_decays_over_the_wall_clock_budget():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    clock = {"t": 0.0}
    schedule = WallClockPolyLR(optimizer, 1e-3, budget_seconds=100.0, elapsed=lambda: clock["t"])
    seen = []
    for t in (0.0, 50.0, 90.0, 150.0):
        clock["t"] = t
        schedule.step(7)  # nnU-Net passes the epoch; the budget's share spent decides
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen[0] == pytest.approx(1e-3)
    assert seen[1] == pytest.approx(1e-3 * 0.5**0.9)
    assert seen[2] == pytest.approx(1e-3 * 0.1**0.9)
    assert seen[3] == 0.0
