"""Models by name (see :mod:`thrifty.models.registry`)."""

from thrifty.models.cifar import cifar_mobilenet_v2, cifar_resnet
from thrifty.models.registry import MODELS, create_model, load_weights, register_model
from thrifty.models.small import MLP, SmallCNN

__all__ = ["MLP", "MODELS", "SmallCNN", "cifar_mobilenet_v2", "cifar_resnet", "create_model",
           "load_weights", "register_model"]
