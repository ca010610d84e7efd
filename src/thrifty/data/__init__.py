"""Datasets and index-carrying batches (see :mod:`thrifty.data.datasets`)."""

from thrifty.data.datasets import (
    DATASETS,
    DatasetNotFoundError,
    load_cifar,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    load_synthetic,
)
from thrifty.data.tensor import (
    Batch,
    IndexedDataset,
    TensorData,
    cat_rows,
    dataset_labels,
    eval_view,
    iterate_batches,
    random_crop_flip,
    slice_rows,
    take_rows,
)

__all__ = [
    "DATASETS", "Batch", "DatasetNotFoundError", "IndexedDataset", "TensorData",
    "dataset_labels", "eval_view", "iterate_batches", "load_cifar", "load_dataset", "load_digits",
    "load_fashion_mnist", "load_image_folder", "load_synthetic", "random_crop_flip",
    "cat_rows", "slice_rows", "take_rows",
]
