"""thrifty: train on less.

Data reduction before training (offline reducers), per-epoch sample selection (samplers),
per-batch backward selection (selectors) and model compression, all driven by one engine
that counts every unit of work so that speed-ups and accuracy costs are measured honestly.
"""

__version__ = "0.1.0"

__all__ = ["Thrift", "Workload", "__version__"]


def __getattr__(name: str):
    # imported on first use, so that `import thrifty` (and `thrifty --help`) stays light
    if name == "Thrift":
        from thrifty.integrations.own_loop import Thrift

        return Thrift
    if name == "Workload":
        from thrifty.workload import Workload

        return Workload
    raise AttributeError(f"module 'thrifty' has no attribute {name!r}")
