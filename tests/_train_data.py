"""Tiny data sets in the real on-disk formats, and tiny skeletons, written by the
training and data tests."""

from __future__ import annotations

import gzip
import pickle
import random
import struct
from pathlib import Path

import numpy as np

TINY_CNN = """genolang 1

# 3 cells of 4 channels: 8x8 -> 4x4 -> 2x2, auxiliary head after the last reduction.
network tiny {
    stem = cifar
    stem_multiplier = 2
    channels = 4
    layers = 3
    reduce_at = 1/3, 2/3
    auxiliary = 2/3
    auxiliary_weight = 0.4
    drop_path = 0.2
}
"""

TINY_RNN = """genolang 1

network rnn_tiny {
    stem = embedding
    embedding = 16
    hidden = 16
    dropout = 0.2
    dropout_h = 0.1
    dropout_x = 0.1
    dropout_i = 0.1
    dropout_e = 0.05
}
"""


def write_skeletons(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.geno").write_text(TINY_CNN)
    (folder / "rnn_tiny.geno").write_text(TINY_RNN)
    return folder / "tiny.geno", folder / "rnn_tiny.geno"


def cifar_like_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), [int(i % 10) for i in range(n)]


def write_cifar_py(root: Path, per_batch: int = 6, test: int = 10) -> Path:
    """``root/cifar-10-batches-py`` with five training batches and a test batch, each
    a pickled dict {'data': uint8 (N, 3072), 'labels': [...]} as in the real archive
    (pickle protocol 2 and Python's default, which store numpy arrays differently)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        data, labels = cifar_like_images(per_batch, i)
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {i} of 5", "data": data, "labels": labels,
                         "filenames": [f"img{i}_{j}.png" for j in range(per_batch)]}, f,
                        protocol=2 if i % 2 else pickle.DEFAULT_PROTOCOL)  # both layouts numpy writes
    data, labels = cifar_like_images(test, 99)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": labels}, f, protocol=2)
    return folder


def write_cifar_bin(root: Path, per_batch: int = 4, test: int = 5) -> Path:
    """``root/cifar-10-batches-bin``: rows of one label byte and 3072 pixel bytes."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)

    def rows(n: int, seed: int) -> bytes:
        data, labels = cifar_like_images(n, seed)
        return b"".join(bytes([lab]) + data[j].tobytes() for j, lab in enumerate(labels))

    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(rows(per_batch, i))
    (folder / "test_batch.bin").write_bytes(rows(test, 99))
    return folder


def _idx(dims: tuple[int, ...], data: bytes) -> bytes:
    return b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + data


def write_fashion(folder: Path, train: int = 20, test: int = 10, gz: bool = True) -> Path:
    """Fashion-MNIST idx files (gzipped as distributed, or raw)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": _idx((train, 28, 28), rng.integers(0, 256, train * 784, dtype=np.uint8).tobytes()),
        "train-labels-idx1-ubyte": _idx((train,), bytes(i % 10 for i in range(train))),
        "t10k-images-idx3-ubyte": _idx((test, 28, 28), rng.integers(0, 256, test * 784, dtype=np.uint8).tobytes()),
        "t10k-labels-idx1-ubyte": _idx((test,), bytes(i % 10 for i in range(test))),
    }
    for name, raw in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return folder


def write_ptb(folder: Path, train_lines: int = 300, other_lines: int = 40) -> Path:
    """A tiny corpus in the PTB layout (ptb.train.txt, ptb.valid.txt, ptb.test.txt) with
    enough structure to learn: runs of consecutive words from a 50-word vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(1)
    words = [f"w{i}" for i in range(50)] + ["<unk>"]

    def text(n: int) -> str:
        lines = []
        for _ in range(n):
            start = rnd.randint(0, 40)
            lines.append(" ".join(words[(start + j) % 50] if rnd.random() < 0.8 else rnd.choice(words)
                                  for j in range(rnd.randint(3, 12))))
        return "\n".join(lines) + "\n"

    for split, n in (("train", train_lines), ("valid", other_lines), ("test", other_lines)):
        (folder / f"ptb.{split}.txt").write_text(text(n))
    return folder
