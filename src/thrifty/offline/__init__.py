"""Offline reducers: which samples exist for a run (RPC, RPD, IDS, SSP), and the embedders
and registry tools the embedding-based ones use."""

from thrifty.offline.embedders import (
    Embedder,
    PixelPCAEmbedder,
    SnapshotEmbedder,
    TorchvisionEmbedder,
    make_embedder,
)
from thrifty.offline.ids import IDS, IDSRegistry, IDSSampler
from thrifty.offline.random import RPC, RPD, random_per_class, random_per_dataset
from thrifty.offline.ssp import SSP, ssp_scores, ssp_select

__all__ = ["IDS", "RPC", "RPD", "SSP", "Embedder", "IDSRegistry", "IDSSampler",
           "PixelPCAEmbedder", "SnapshotEmbedder", "TorchvisionEmbedder", "make_embedder",
           "random_per_class", "random_per_dataset", "ssp_scores", "ssp_select"]
