import pytest
import torch

from thrifty.engine import SampleRecord


def test_update_and_freshness():
    rec = SampleRecord(5)
    assert torch.isnan(rec.loss).all()
    rec.update(torch.tensor([1, 3]), torch.tensor([0.5, 2.0]), torch.tensor([True, False]),
               epoch=2, trained=True)
    rec.update(torch.tensor([3]), torch.tensor([1.0]), None, epoch=4, trained=False)
    assert rec.loss[1].item() == 0.5 and rec.loss[3].item() == 1.0
    assert rec.loss_epoch.tolist() == [-1, 2, -1, 4, -1]
    assert rec.times_trained.tolist() == [0, 1, 0, 1, 0]
    assert rec.times_forwarded.tolist() == [0, 0, 0, 1, 0]
    assert rec.fresh(torch.arange(5), epoch=4, max_age=1).tolist() == [
        False, False, False, True, False]
    assert rec.fresh(torch.arange(5), epoch=4, max_age=2).tolist() == [
        False, True, False, True, False]


def test_state_round_trip_and_size_check():
    rec = SampleRecord(4)
    rec.update(torch.tensor([0]), torch.tensor([3.0]), None, 0, True)
    rec.extra["h"] = torch.ones(4)
    other = SampleRecord(4)
    other.load_state_dict(rec.state_dict())
    assert other.loss[0].item() == 3.0 and torch.equal(other.extra["h"], torch.ones(4))
    with pytest.raises(ValueError, match="another dataset"):
        SampleRecord(3).load_state_dict(rec.state_dict())
    with pytest.raises(ValueError, match="at least one"):
        SampleRecord(0)
