"""Data sets that work offline: image sets as in-memory tensors (digits, Fashion-MNIST,
CIFAR-10) and token corpora (Penn Treebank), found by name in a registry."""

from genolang.data.images import IMAGE_SETS, ImageData, load_images
from genolang.data.registry import dataset_kind, dataset_names
from genolang.data.text import TEXT_SETS, Corpus, load_corpus

__all__ = [
    "IMAGE_SETS", "ImageData", "load_images", "TEXT_SETS", "Corpus", "load_corpus", "dataset_kind", "dataset_names",
]
