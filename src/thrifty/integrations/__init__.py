"""thrifty inside training code that is not thrifty's engine: your own PyTorch loop
(:class:`Thrift`), PyTorch Lightning and Hugging Face ``transformers`` (optional extras)."""

from thrifty.integrations.batches import BatchFormat
from thrifty.integrations.own_loop import Thrift, ThriftLoader, ThriftSampler, model_output

__all__ = ["BatchFormat", "Thrift", "ThriftLoader", "ThriftSampler", "model_output"]
