"""Image data sets held in memory as uint8 tensors, with DARTS-style augmentation
(random crop with padding, horizontal flip, normalisation, cutout) done in torch so a
seeded run is reproducible.

Sources, all local:
* ``digits``: scikit-learn's 1,797 8x8 digits (in the wheel); a fixed 80/20 split.
* ``fashion-mnist``: idx files (gzipped or not), from ``--data-dir`` or the Debian
  package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist).
* ``cifar10``: a ``cifar-10-batches-py`` folder (read by a restricted unpickler that
  only rebuilds plain containers and numpy arrays) or a ``cifar-10-batches-bin`` one;
  ``download=True`` fetches it with torchvision where there is internet."""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from genolang.errors import UsageError, did_you_mean

FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)


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

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[2])

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


# ---- digits ----------------------------------------------------------------------

def _digits(data_dir: str | None, download: bool) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = len(labels) // 5
    test, train = order[:n_test], order[n_test:]
    return _finish("digits", images[train], labels[train], images[test], labels[test],
                   Augment(crop_padding=1, flip=False, cutout=0))


# ---- Fashion-MNIST ---------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror or err}); check the file and its permissions") from None


def _read_idx(path: Path) -> np.ndarray:
    raw = _read_bytes(path)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise UsageError(f"{path}: a damaged gzip file ({err})") from None
    if len(raw) < 8 or raw[:2] != b"\x00\x00":
        raise UsageError(f"{path}: not an idx file")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise UsageError(f"{path}: expected unsigned byte data (idx type 0x08), got 0x{dtype_code:02x}")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UsageError(f"{path}: truncated idx file ({data.size} values for shape {dims})")
    return data.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for sub in ("", "FashionMNIST/raw", "raw"):
        for name in (stem, f"{stem}.gz"):
            p = folder / sub / name
            if p.is_file():
                return p
    return None


def _fashion(data_dir: str | None, download: bool) -> ImageData:
    folders = [Path(data_dir)] if data_dir else [Path(d) for d in FASHION_DIRS]
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for folder in folders:
        paths = [p for p in (_find_idx(folder, s) for s in stems) if p is not None]
        if len(paths) == len(stems):
            tx, ty, vx, vy = (_read_idx(p) for p in paths)
            return _finish("fashion-mnist",
                           torch.from_numpy(tx.copy()).unsqueeze(1), torch.from_numpy(ty.astype(np.int64)),
                           torch.from_numpy(vx.copy()).unsqueeze(1), torch.from_numpy(vy.astype(np.int64)),
                           Augment(crop_padding=2, flip=True, cutout=0))
    where = ", ".join(str(f) for f in folders)
    raise UsageError(f"Fashion-MNIST not found in {where}: need {', '.join(stems)} (optionally .gz). "
                     "Install the Debian package ('apt-get install dataset-fashion-mnist') or pass --data-dir "
                     "pointing at a folder with the idx files.")


# ---- CIFAR-10 --------------------------------------------------------------------

class _SafeUnpickler(pickle.Unpickler):
    """Rebuilds only plain containers and numpy arrays: a CIFAR batch, nothing else."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        # protocol 5 (Python 3's default for numpy arrays): np.frombuffer of the raw bytes
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    })

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode  # protocol 2 from Python 3 stores bytes as latin-1 text
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``codecs.encode`` restricted to the latin-1 round trip protocol-2 pickles use."""
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing to decode a data file with the codec {encoding!r}")
    return text.encode("latin-1", errors="strict")


def _load_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _SafeUnpickler(io.BytesIO(_read_bytes(path)), encoding="latin1").load()
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure means a bad file
        raise UsageError(f"{path}: not a CIFAR-10 python batch ({err})") from None
    if not isinstance(batch, dict):
        raise UsageError(f"{path}: not a CIFAR-10 python batch (no dict inside)")
    data = batch.get("data", batch.get(b"data"))
    labels = batch.get("labels", batch.get(b"labels"))
    if data is None or labels is None:
        raise UsageError(f"{path}: CIFAR-10 batch without 'data' and 'labels'")
    arr = np.asarray(data, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != 3072 or arr.shape[0] != len(labels):
        raise UsageError(f"{path}: CIFAR-10 batch has shape {arr.shape}; expected (N, 3072) with N labels")
    return arr.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _load_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(_read_bytes(path), dtype=np.uint8)
    if raw.size % 3073:
        raise UsageError(f"{path}: not a CIFAR-10 binary batch (size {raw.size} is not a multiple of 3073)")
    rows = raw.reshape(-1, 3073)
    return rows[:, 1:].reshape(-1, 3, 32, 32).copy(), rows[:, 0].astype(np.int64)


def _cifar(data_dir: str | None, download: bool) -> ImageData:
    root = Path(data_dir or ".")
    if download:
        try:
            from torchvision.datasets import CIFAR10

            CIFAR10(str(root), download=True)
        except Exception as err:  # noqa: BLE001 - network errors of all kinds
            raise UsageError(f"could not download CIFAR-10 into {root}: {err}") from None
    candidates = [root, root / "cifar-10-batches-py", root / "cifar-10-batches-bin"]
    for folder in candidates:
        if (folder / "data_batch_1").is_file() and (folder / "test_batch").is_file():
            load, names, test = _load_py_batch, [f"data_batch_{i}" for i in range(1, 6)], "test_batch"
        elif (folder / "data_batch_1.bin").is_file() and (folder / "test_batch.bin").is_file():
            load, names, test = _load_bin_batch, [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin"
        else:
            continue
        parts = [load(folder / n) for n in names if (folder / n).is_file()]
        tx = np.concatenate([p[0] for p in parts])
        ty = np.concatenate([p[1] for p in parts])
        vx, vy = load(folder / test)
        return _finish("cifar10",
                       torch.from_numpy(tx), torch.from_numpy(ty), torch.from_numpy(vx), torch.from_numpy(vy),
                       Augment(crop_padding=4, flip=True, cutout=16),
                       mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
    raise UsageError(f"CIFAR-10 not found under {root}: pass --data-dir pointing at a 'cifar-10-batches-py' "
                     "(or '-bin') folder or at its parent, or add --download on a machine with internet.")


def _finish(name: str, tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, augment: Augment,
            mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> ImageData:
    if mean is None or std is None:
        mean, std = channel_stats(tx)
    classes = int(max(int(ty.max()), int(vy.max())) + 1) if len(ty) else 0
    return ImageData(name, tx.contiguous(), ty, vx.contiguous(), vy, mean, std, augment, classes)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (sample) standard deviation of uint8 NCHW images scaled to
    [0, 1], computed from exact integer sums: the same values whatever the thread count
    (a float reduction differs in its last bits with the number of threads, and a
    resumed run must normalise exactly as the run it continues)."""
    x = images.to(torch.int64).transpose(0, 1).reshape(images.shape[1], -1)
    n = x.shape[1]
    sums = [int(v) for v in x.sum(dim=1)]
    squares = [int(v) for v in (x * x).sum(dim=1)]
    mean = tuple(s / n / 255.0 for s in sums)
    std = tuple(math.sqrt(max(q - s * s / n, 0.0) / max(n - 1, 1)) / 255.0 for s, q in zip(sums, squares))
    return mean, std


IMAGE_SETS: dict[str, Callable[[str | None, bool], ImageData]] = {
    "digits": _digits,
    "fashion-mnist": _fashion,
    "cifar10": _cifar,
}


def load_images(name: str, data_dir: str | None = None, download: bool = False) -> ImageData:
    """Load an image data set by name; a missing data set says how to get it."""
    if name not in IMAGE_SETS:
        raise UsageError(f"unknown image dataset '{name}'{did_you_mean(name, IMAGE_SETS)}; "
                         f"known: {', '.join(IMAGE_SETS)}")
    if data_dir is not None and not Path(data_dir).exists():
        raise UsageError(f"--data-dir {data_dir}: no such folder")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir}: not a folder; give the folder that holds the data set")
    return IMAGE_SETS[name](data_dir, download)
