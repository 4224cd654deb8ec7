"""CIFAR-10 and CIFAR-100 from the folders their archives unpack to.

* ``cifar10``: ``cifar-10-batches-py`` (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``, ``batches.meta``) or ``cifar-10-batches-bin``; ten classes.
* ``cifar100``: ``cifar-100-python`` (``train``, ``test``, ``meta``); the 100 fine
  labels (``fine_labels``), their names from ``meta`` (``fine_label_names``).

The python batches are pickles, read by a restricted unpickler that rebuilds only
plain containers and numpy arrays: a damaged or malicious file is an error, never
code run. The normalisation statistics are the usual ones of each training set.
``download=True`` fetches an archive with torchvision where there is internet."""

from __future__ import annotations

import dataclasses
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from genolang.data.images import Augment, ImageData, ImageRecord, finish, read_bytes
from genolang.errors import GenolangError, InputError, UsageError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
# the per-channel statistics of CIFAR-100's 50,000 training images, as commonly used
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
AUGMENT = Augment(crop_padding=4, flip=True, cutout=16)


class _SafeUnpickler(pickle.Unpickler):
    """Rebuilds only plain containers and numpy arrays: a CIFAR batch, nothing else."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        # protocol 5 (Python 3's default for numpy arrays): np.frombuffer of the raw bytes
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

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


def _unpickle(path: Path, what: str) -> dict[str | bytes, object]:
    try:
        batch = _SafeUnpickler(io.BytesIO(read_bytes(path)), encoding="latin1").load()
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure means a bad file
        raise InputError(f"{path}: not a {what} ({err})") from None
    if not isinstance(batch, dict):
        raise InputError(f"{path}: not a {what} (no dict inside)")
    return batch


def _get(batch: dict[str | bytes, object], key: str) -> object:
    return batch.get(key, batch.get(key.encode()))


def _load_py_batch(path: Path, labels_key: str = "labels",
                   what: str = "CIFAR-10 python batch") -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path, what)
    data, labels = _get(batch, "data"), _get(batch, labels_key)
    if data is None or labels is None:
        raise InputError(f"{path}: {what} without 'data' and '{labels_key}'")
    try:
        arr = np.asarray(data, dtype=np.uint8)
        label_arr = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: a {what} with unreadable data or labels ({err})") from None
    if arr.ndim != 2 or arr.shape[1] != 3072 or label_arr.shape != (arr.shape[0],):
        raise InputError(f"{path}: {what} has shape {arr.shape}; expected (N, 3072) with N labels")
    return arr.reshape(-1, 3, 32, 32), label_arr


def _load_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(read_bytes(path), dtype=np.uint8)
    if raw.size % 3073:
        raise InputError(f"{path}: not a CIFAR-10 binary batch (size {raw.size} is not a multiple of 3073)")
    rows = raw.reshape(-1, 3073)
    return rows[:, 1:].reshape(-1, 3, 32, 32).copy(), rows[:, 0].astype(np.int64)


def _download(cls_name: str, root: Path, what: str) -> None:
    try:
        import torchvision.datasets as tvd

        getattr(tvd, cls_name)(str(root), download=True)
    except Exception as err:  # noqa: BLE001 - network errors of all kinds
        raise GenolangError(f"could not download {what} into {root}: {err}") from None


def load_cifar10(data_dir: str | None, download: bool, like: ImageRecord | None = None) -> ImageData:
    root = Path(data_dir or ".")
    if download:
        _download("CIFAR10", root, "CIFAR-10")
    candidates = [root, root / "cifar-10-batches-py", root / "cifar-10-batches-bin"]
    load: Callable[[Path], tuple[np.ndarray, np.ndarray]]
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
        return finish("cifar10", torch.from_numpy(tx), torch.from_numpy(ty), torch.from_numpy(vx),
                      torch.from_numpy(vy), AUGMENT, mean=CIFAR10_MEAN, std=CIFAR10_STD, class_names=CIFAR10_CLASSES)
    raise UsageError(f"CIFAR-10 not found under {root}: pass --data-dir pointing at a 'cifar-10-batches-py' "
                     "(or '-bin') folder or at its parent, or add --download on a machine with internet.")


def _cifar100_names(path: Path) -> tuple[str, ...]:
    """The 100 fine class names from ``meta``; empty when the file is absent."""
    if not path.is_file():
        return ()
    names = _get(_unpickle(path, "CIFAR-100 meta file"), "fine_label_names")
    if not isinstance(names, (list, tuple)) or len(names) != 100:
        raise InputError(f"{path}: a CIFAR-100 meta file has 100 'fine_label_names'; this one does not. "
                         "Restore it from the archive or delete it (the classes are then known by number only)")
    return tuple(n.decode("latin-1") if isinstance(n, bytes) else str(n) for n in names)


def load_cifar100(data_dir: str | None, download: bool, like: ImageRecord | None = None) -> ImageData:
    root = Path(data_dir or ".")
    if download:
        _download("CIFAR100", root, "CIFAR-100")
    for folder in (root, root / "cifar-100-python"):
        if (folder / "train").is_file() and (folder / "test").is_file():
            what = "CIFAR-100 python batch"
            tx, ty = _load_py_batch(folder / "train", "fine_labels", what)
            vx, vy = _load_py_batch(folder / "test", "fine_labels", what)
            names = _cifar100_names(folder / "meta")
            for path, labels in ((folder / "train", ty), (folder / "test", vy)):
                if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < 100:
                    raise InputError(f"{path}: fine labels must be 0..99; found {int(labels.min())}..."
                                     f"{int(labels.max())}. The file is damaged; restore it from the archive")
            classes = names or tuple(str(i) for i in range(100))
            data = finish("cifar100", torch.from_numpy(tx), torch.from_numpy(ty), torch.from_numpy(vx),
                          torch.from_numpy(vy), AUGMENT, mean=CIFAR100_MEAN, std=CIFAR100_STD, class_names=classes)
            # without meta the classes are still 100, only unnamed (no names to check a model's against)
            return data if names else dataclasses.replace(data, class_names=())
    raise UsageError(f"CIFAR-100 not found under {root}: pass --data-dir pointing at a 'cifar-100-python' folder "
                     "(with the files train, test and meta) or at its parent, or add --download on a machine "
                     "with internet.")
