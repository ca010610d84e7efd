"""Per-draw random generators: a draw that can be regenerated from its own seed alone."""

from __future__ import annotations

import zlib

import numpy as np
import torch


def draw_generator(seed: int, epoch: int, name: str) -> torch.Generator:
    """A generator seeded by ``(seed, epoch, name)`` alone (via :class:`numpy.random.SeedSequence`),
    so that a method's draw at an epoch can be regenerated and does not depend on what else
    consumed randomness before it.

    Args:
        seed: the run's seed (only its low 64 bits are used).
        epoch: the 0-based epoch of the draw (or any other draw index).
        name: who draws, e.g. the method's name; different names give independent streams.
    """
    entropy = [seed & 0xFFFF_FFFF_FFFF_FFFF, epoch, zlib.crc32(name.encode())]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))
