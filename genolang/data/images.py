"""Image data sets held in memory as uint8 tensors, with DARTS-style augmentation
(random crop with padding, horizontal flip, normalisation, cutout) done in torch so a
seeded run is reproducible.

The sources are modules of their own, named in ``genolang.data.registry``:
``digits`` (scikit-learn's 8x8 digits), ``fashion`` (Fashion-MNIST idx files),
``cifar`` (CIFAR-10 and CIFAR-100 batches, through a restricted unpickler) and
``folder`` (the user's image folder). ``load_images`` finds a loader by name.

A trained model remembers how its data was read (``ImageData.record``: the
normalisation statistics and the class names, stored in the checkpoint's ``extra``);
``load_images(..., like=ImageRecord.from_model(...))`` reads data the same way again
and refuses data whose classes are not the model's."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from genolang.data.registry import loader
from genolang.errors import InputError, UsageError


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation: crop padding (0 = none), flips, cutout length."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0


@dataclass(frozen=True)
class ImageData:
    """A whole image data set in memory: NCHW uint8 images and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment
    classes: int
    class_names: tuple[str, ...] = ()  # label i is class_names[i]; empty where unknown

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[2])

    def record(self) -> dict[str, Any]:
        """What a model trained on this data keeps in its checkpoint's ``extra`` so that
        ``eval`` reads data the same way: the normalisation statistics and, where the
        data set names its classes, the names and their digest."""
        out: dict[str, Any] = {"mean": list(self.mean), "std": list(self.std)}
        if self.class_names:
            out["classes"] = list(self.class_names)
            out["class_digest"] = class_digest(self.class_names)
        return out

    def dataset(self, split: str, augment: bool = False, cutout: int | None = None,
                indices: torch.Tensor | None = None) -> ImageDataset:
        """The train or test split (optionally a subset), normalised, augmented for
        training when ``augment``; ``cutout`` overrides the data set's default."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        if indices is not None:
            x, y = x[indices], y[indices]
        aug = self.augment if augment else Augment()
        if cutout is not None and augment:
            aug = Augment(aug.crop_padding, aug.flip, cutout)
        return ImageDataset(x, y, self.mean, self.std, aug)


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Normalised (and optionally augmented) float images from a uint8 tensor."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                 augment: Augment) -> None:
        self.x, self.y, self.augment = x, y, augment
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = (self.x[i].float() / 255.0 - self.mean) / self.std
        a = self.augment
        if a.crop_padding:
            img = random_crop(img, a.crop_padding)
        if a.flip and torch.rand(()) < 0.5:
            img = img.flip(-1)
        if a.cutout:
            img = cutout(img, a.cutout)
        return img, self.y[i]


def random_crop(img: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the original size at a random offset."""
    _, h, w = img.shape
    padded = torch.nn.functional.pad(img, (padding, padding, padding, padding))
    top = int(torch.randint(0, 2 * padding + 1, ()))
    left = int(torch.randint(0, 2 * padding + 1, ()))
    return padded[:, top:top + h, left:left + w]


def cutout(img: torch.Tensor, length: int) -> torch.Tensor:
    """Zero one ``length`` x ``length`` square at a uniformly random centre, clipped at
    the border (DeVries and Taylor, 2017, as used by DARTS)."""
    _, h, w = img.shape
    cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
    y0, y1 = max(cy - length // 2, 0), min(cy + length // 2, h)
    x0, x1 = max(cx - length // 2, 0), min(cx + length // 2, w)
    out = img.clone()
    out[:, y0:y1, x0:x1] = 0.0
    return out


def read_bytes(path: Path) -> bytes:
    """The bytes of a data file; a clear error when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err}); check the file and its permissions") from None


def finish(name: str, tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, augment: Augment,
           mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
           class_names: tuple[str, ...] = ()) -> ImageData:
    """An ``ImageData`` from both splits; the statistics of the training images unless
    given; as many classes as ``class_names`` or, without names, the largest label + 1."""
    if mean is None or std is None:
        mean, std = channel_stats(tx)
    if class_names:
        classes = len(class_names)
        for split, labels in (("training", ty), ("test", vy)):
            if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < classes:
                raise InputError(
                    f"{name}: a {split} label is {int(labels.min()) if int(labels.min()) < 0 else int(labels.max())}, "
                    f"outside 0..{classes - 1} for its {classes} classes; the data files are damaged"
                )
    else:
        classes = int(max(int(ty.max()), int(vy.max())) + 1) if len(ty) else 0
    return ImageData(name, tx.contiguous(), ty, vx.contiguous(), vy, mean, std, augment, classes, class_names)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (sample) standard deviation of uint8 NCHW images scaled to
    [0, 1], computed from exact integer sums: the same values whatever the thread count
    (a float reduction differs in its last bits with the number of threads, and a
    resumed run must normalise exactly as the run it continues). The sums run over
    chunks of at most ``CHUNK`` values, so memory stays bounded for any data set."""
    channels = int(images.shape[1])
    per_image = max(int(images[0].numel()) if len(images) else 1, 1)
    step = max(1, CHUNK // per_image)
    sums, squares = [0] * channels, [0] * channels
    for i in range(0, int(images.shape[0]), step):
        x = images[i:i + step].to(torch.int64).transpose(0, 1).reshape(channels, -1)
        sums = [a + int(v) for a, v in zip(sums, x.sum(dim=1))]
        squares = [a + int(v) for a, v in zip(squares, (x * x).sum(dim=1))]
    n = int(images.shape[0]) * int(images[0, 0].numel()) if len(images) else 0
    if n == 0:
        return (0.0,) * channels, (1.0,) * channels
    mean = tuple(s / n / 255.0 for s in sums)
    std = tuple(math.sqrt(max(q - s * s / n, 0.0) / max(n - 1, 1)) / 255.0 for s, q in zip(sums, squares))
    return mean, std


CHUNK = 1 << 24  # values summed at once by channel_stats (128 MiB as int64)


def class_digest(names: tuple[str, ...] | list[str]) -> str:
    """A fingerprint of the class names in label order (label i must mean class i)."""
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ImageRecord:
    """How a model's data was read, as its checkpoint remembers it: the input shape,
    the normalisation statistics and the class names (each None where unknown, as in
    a model compiled without training or saved by an older genolang)."""

    in_channels: int | None = None
    input_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None

    @staticmethod
    def from_model(shape: Any, extra: Mapping[str, Any]) -> ImageRecord:
        """From a loaded checkpoint: its ``data_shape`` (a ``DataShape``) and ``extra``."""
        def floats(key: str) -> tuple[float, ...] | None:
            value = extra.get(key)
            if value is None:
                return None
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
                raise InputError(f"the checkpoint's '{key}' is damaged ({value!r}); save the model again")
            return tuple(float(v) for v in value)

        names = extra.get("classes")
        if names is not None and (not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names)):
            raise InputError(f"the checkpoint's class names are damaged ({names!r}); save the model again")
        return ImageRecord(getattr(shape, "in_channels", None), getattr(shape, "input_size", None),
                           floats("mean"), floats("std"), tuple(names) if names is not None else None)


def check_classes(names: tuple[str, ...], like: ImageRecord | None, where: str) -> None:
    """A clear error when data with classes ``names`` (at ``where``) is not the data a
    model with record ``like`` was trained on."""
    if like is None or like.classes is None or tuple(names) == like.classes:
        return

    def show(items: list[str] | tuple[str, ...]) -> str:
        return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "")

    if not names:
        return  # data that do not name their classes (CIFAR-100 without its meta file): nothing to compare
    if set(names) == set(like.classes):
        detail = "the same names, but in another label order"
    else:
        missing = [c for c in like.classes if c not in set(names)]
        new = [c for c in names if c not in set(like.classes)]
        detail = "; ".join(part for part in (f"missing here: {show(missing)}" if missing else "",
                                             f"not known to the model: {show(new)}" if new else "") if part)
    raise UsageError(f"{where} has other classes than the model was trained on ({detail}); the model's classes "
                     f"are {show(like.classes)}. Evaluate it on data with the same class folders, or train a model "
                     "on these data")


def load_images(name: str, data_dir: str | None = None, download: bool = False,
                like: ImageRecord | None = None) -> ImageData:
    """Load an image data set by name; a missing data set says how to get it. With
    ``like`` (a model's record), read the data as that model's were: its classes must
    match, its normalisation statistics are used, and a folder is brought to its input
    size and channels."""
    load = loader(name, "image")
    if data_dir is not None and not Path(data_dir).exists():
        raise UsageError(f"--data-dir {data_dir}: no such folder")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir}: not a folder; give the folder that holds the data set")
    data: ImageData = load(data_dir, download, like)
    if like is None:
        return data
    check_classes(data.class_names, like, f"{name}" + (f" in {data_dir}" if data_dir else ""))
    if like.mean is not None and like.std is not None and len(like.mean) == len(like.std) == data.in_channels:
        data = replace(data, mean=like.mean, std=like.std)
    return data
