"""Fashion-MNIST: idx files (gzipped or not), from ``--data-dir`` or the Debian
package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist); 28x28, one
channel, ten classes."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from genolang.data.images import Augment, ImageData, ImageRecord, finish, read_bytes
from genolang.errors import InputError, UsageError

FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _read_idx(path: Path) -> np.ndarray:
    raw = read_bytes(path)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise InputError(f"{path}: a damaged gzip file ({err})") from None
    if len(raw) < 8 or raw[:2] != b"\x00\x00":
        raise InputError(f"{path}: not an idx file")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise InputError(f"{path}: expected unsigned byte data (idx type 0x08), got 0x{dtype_code:02x}")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise InputError(f"{path}: truncated idx file ({data.size} values for shape {dims})")
    return data.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for sub in ("", "FashionMNIST/raw", "raw"):
        for name in (stem, f"{stem}.gz"):
            p = folder / sub / name
            if p.is_file():
                return p
    return None


def load(data_dir: str | None, download: bool, like: ImageRecord | None = None) -> ImageData:
    folders = [Path(data_dir)] if data_dir else [Path(d) for d in FASHION_DIRS]
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for folder in folders:
        found = [_find_idx(folder, s) for s in stems]
        paths = [p for p in found if p is not None]
        if len(paths) == len(found):
            tx, ty, vx, vy = (_read_idx(p) for p in paths)
            return finish("fashion-mnist", torch.from_numpy(tx.copy()).unsqueeze(1),
                          torch.from_numpy(ty.astype(np.int64)), torch.from_numpy(vx.copy()).unsqueeze(1),
                          torch.from_numpy(vy.astype(np.int64)), Augment(crop_padding=2, flip=True, cutout=0),
                          class_names=CLASSES)
    where = ", ".join(str(f) for f in folders)
    raise UsageError(f"Fashion-MNIST not found in {where}: need {', '.join(stems)} (optionally .gz). "
                     "Install the Debian package ('apt-get install dataset-fashion-mnist') or pass --data-dir "
                     "pointing at a folder with the idx files.")
