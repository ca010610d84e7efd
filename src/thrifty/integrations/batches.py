"""Batches of any shape, as the user's loader yields them: tuples ``(x, y, idx)`` or dicts
with named input, target and index keys (Hugging Face style, where the model takes the
dict itself). One :class:`BatchFormat` splits such a batch into what selection needs
(input, target, dataset index) and joins the parts back in the same shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

INDEX_KEY = "index"


@dataclass(frozen=True)
class BatchFormat:
    """Where the input, the target and the dataset index sit in a batch.

    Args:
        input_key: dict batches: the key of the model input, or ``None`` (default) when the
            model takes the whole dict minus the target and index (``model(**inputs)``;
            every other key travels with the samples). With a key, only the input, target
            and index are kept in the batches a selector packs.
        target_key: dict batches: the key of the targets. Default ``"labels"``.
        index_key: dict batches: the key of the dataset index. Default ``"index"``.

    Tuple batches are always ``(input, target, index)`` (the order
    :class:`~thrifty.data.IndexedDataset` yields).
    """

    input_key: str | None = None
    target_key: str = "labels"
    index_key: str = INDEX_KEY

    def split(self, batch: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """``(input, target, index)`` of a batch; the index as a CPU long tensor."""
        if type(batch) in (tuple, list) and len(batch) == 3:  # without ABC checks
            x, y, idx = batch
            return x, y, torch.as_tensor(idx).long().cpu()
        if isinstance(batch, Mapping):
            missing = [k for k in (self.target_key, self.index_key) if k not in batch]
            if missing:
                raise ValueError(
                    f"the batch has keys {sorted(batch)} but no {missing}: load from "
                    f"Thrift(...).dataset (it adds {self.index_key!r}) and name the target "
                    "key with target_key=")
            if self.input_key is not None:
                x = batch[self.input_key]
            else:
                x = {k: v for k, v in batch.items() if k not in (self.target_key,
                                                                 self.index_key)}
            return x, batch[self.target_key], torch.as_tensor(batch[self.index_key]).long().cpu()
        if isinstance(batch, Sequence) and len(batch) == 3:
            x, y, idx = batch
            return x, y, torch.as_tensor(idx).long().cpu()
        shape = f"a {type(batch).__name__} of {len(batch)}" if isinstance(batch, Sequence) \
            else type(batch).__name__
        raise ValueError(f"a batch must be (input, target, index) or a dict with "
                         f"{self.target_key!r} and {self.index_key!r}; got {shape}. Load "
                         "from Thrift(...).dataset, which adds the dataset index")

    def join(self, x: Any, y: torch.Tensor, idx: torch.Tensor, like: Any) -> Any:
        """A batch in the shape of ``like`` from its parts (:meth:`split`'s inverse)."""
        if isinstance(like, Mapping):
            inputs = {self.input_key: x} if self.input_key is not None else dict(x)
            return {**inputs, self.target_key: y, self.index_key: idx}
        return (x, y, idx) if isinstance(like, tuple) else [x, y, idx]
