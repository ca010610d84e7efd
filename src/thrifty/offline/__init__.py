"""Offline reducers: which samples exist for a run (RPC, RPD; IDS and SSP to come)."""

from thrifty.offline.random import RPC, RPD, random_per_class, random_per_dataset

__all__ = ["RPC", "RPD", "random_per_class", "random_per_dataset"]
