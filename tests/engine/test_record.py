import pytest
import torch

from thrifty.engine import SampleRecord


def test_update_counts_and_loss_kinds():
    rec = SampleRecord(5)
    assert torch.isnan(rec.loss).all()
    rec.update(torch.tensor([1, 3]), torch.tensor([0.5, 2.0]), torch.tensor([True, False]),
               epoch=2, trained=True)
    rec.update(torch.tensor([3]), torch.tensor([1.0]), None, epoch=4, trained=False)
    assert rec.loss[1].item() == 0.5 and rec.loss[3].item() == 1.0
    assert rec.loss_epoch.tolist() == [-1, 2, -1, 4, -1]
    assert rec.times_trained.tolist() == [0, 1, 0, 1, 0]
    assert rec.times_forwarded.tolist() == [0, 0, 0, 1, 0]
    # the latest loss of any kind, and the latest of each kind apart
    assert rec.loss_kind.tolist() == [0, 1, 0, 2, 0]
    assert rec.losses(torch.tensor([3])).tolist() == [1.0]
    assert rec.losses(torch.tensor([1, 3]), "train").tolist() == [0.5, 2.0]
    assert torch.isnan(rec.losses(torch.tensor([1]), "probe")).all()
    rec.update(torch.tensor([1]), torch.tensor([7.0]), None, epoch=5, trained=False,
               kind="score")
    assert rec.loss[1].item() == 7.0 and rec.losses(torch.tensor([1]), "train").item() == 0.5
    assert rec.loss_kind[1].item() == 3
    with pytest.raises(ValueError, match="loss kind"):
        rec.losses(torch.tensor([1]), "eval")


def test_state_round_trip_and_size_check():
    rec = SampleRecord(4)
    rec.update(torch.tensor([0]), torch.tensor([3.0]), None, 0, True)
    rec.update(torch.tensor([1]), torch.tensor([2.0]), None, 0, False)
    other = SampleRecord(4)
    other.load_state_dict(rec.state_dict())
    assert other.loss[0].item() == 3.0 and other.losses(torch.tensor([1]), "probe").item() == 2.0
    assert other.loss_kind.tolist() == rec.loss_kind.tolist()
    with pytest.raises(ValueError, match="another dataset"):
        SampleRecord(3).load_state_dict(rec.state_dict())
    with pytest.raises(ValueError, match="at least one"):
        SampleRecord(0)
