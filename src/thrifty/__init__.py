"""thrifty: train on less.

Data reduction before training (offline reducers), per-epoch sample selection (samplers),
per-batch backward selection (selectors) and model compression, all driven by one engine
that counts every unit of work so that speed-ups and accuracy costs are measured honestly.
"""

__version__ = "0.1.0"
