import torch

from thrifty.utils.random import draw_generator


def _draw(seed, epoch, name):
    return torch.randperm(50, generator=draw_generator(seed, epoch, name))


def test_a_draw_depends_on_its_seed_epoch_and_name_alone():
    first = _draw(1, 3, "random-adaptive")
    torch.rand(10)  # other randomness in between changes nothing
    assert torch.equal(first, _draw(1, 3, "random-adaptive"))
    assert not torch.equal(first, _draw(2, 3, "random-adaptive"))
    assert not torch.equal(first, _draw(1, 4, "random-adaptive"))
    assert not torch.equal(first, _draw(1, 3, "loss-adaptive"))


def test_seeds_beyond_64_bits_and_negative_seeds_are_usable():
    assert torch.equal(_draw(-1, 0, "x"), _draw(2**64 - 1, 0, "x"))  # the low 64 bits
    assert len(_draw(2**70, 0, "x")) == 50
