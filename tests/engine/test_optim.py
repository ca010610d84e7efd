import math

import pytest
import torch

from thrifty.engine import build_optimizer, build_scheduler


def lrs(name: str, epochs: int, steps_per_epoch: list[int], **kw) -> list[float]:
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, "sgd", lr=0.1)
    sched = build_scheduler(opt, name, epochs, **kw)
    out = []
    for steps in steps_per_epoch:
        out.append(opt.param_groups[0]["lr"])
        for _ in range(steps):
            opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("name,kw,expected", [
    ("cosine", {}, [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]),
    ("step", {"step_size": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05]),
    ("multistep", {"milestones": [1, 3], "gamma": 0.1}, [0.1, 0.01, 0.01, 0.001]),
    ("exponential", {"gamma": 0.9}, [0.1, 0.09, 0.081, 0.0729]),
    ("constant", {}, [0.1] * 4),
])
def test_per_epoch_schedules_ignore_steps_per_epoch(name, kw, expected):
    full = lrs(name, 4, [10, 10, 10, 10], **kw)
    varying = lrs(name, 4, [10, 3, 0, 7], **kw)  # a method changes steps per epoch
    assert full == pytest.approx(expected) and varying == pytest.approx(expected)


def test_adamw_and_errors():
    model = torch.nn.Linear(2, 2)
    assert isinstance(build_optimizer(model, "adamw", lr=1e-3), torch.optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(model, "lion")
    with pytest.raises(ValueError, match="positive"):
        build_optimizer(model, "sgd", lr=0)
    opt = build_optimizer(model)
    with pytest.raises(ValueError, match="milestones"):
        build_scheduler(opt, "multistep", 10)
    with pytest.raises(ValueError, match="unknown schedule"):
        build_scheduler(opt, "warmup", 10)
