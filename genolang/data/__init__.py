"""Data sets: image sets as in-memory tensors (digits, Fashion-MNIST, CIFAR-10,
CIFAR-100, the user's image folder) and token corpora (Penn Treebank, the user's text
folder), one module per kind, found by name in ``genolang.data.registry``.

The names below are imported on first use, so ``genolang.data.registry`` (which the
command line reads for names and help texts) never imports torch."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ImageData": "genolang.data.images", "ImageRecord": "genolang.data.images", "load_images": "genolang.data.images",
    "Corpus": "genolang.data.text", "load_corpus": "genolang.data.text",
    "dataset_kind": "genolang.data.registry", "dataset_names": "genolang.data.registry",
    "dataset_help": "genolang.data.registry", "DATASETS": "genolang.data.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genolang.data' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
