"""Tiny specs and data shared by the search tests (supernet, architect, loop)."""

from __future__ import annotations

from pathlib import Path

from genolang.spec.checked import NetworkSpec, SpaceSpec
from genolang.spec.lookup import load_named

TINY_CNN = """genolang 1

# 3 cells of 4 channels on 8x8 images: normal, reduce, reduce (8 -> 4 -> 2)
network tiny_search {
    stem = cifar
    stem_multiplier = 3
    channels = 4
    layers = 3
    reduce_at = 1/3, 2/3
    input_size = 8
}
"""

TINY_RNN = """genolang 1

network tiny_rnn {
    stem = embedding
    embedding = 8
    hidden = 8
    dropout = 0.75
    dropout_h = 0.25
    dropout_x = 0.75
    dropout_i = 0.2
    dropout_e = 0
    tied = true
}
"""

WORDS = "the cat sat on a mat and the dog ran to the red ball while it rained".split()


def darts_cnn() -> SpaceSpec:
    space = load_named("space", "darts_cnn")
    assert isinstance(space, SpaceSpec)
    return space


def tiny_network() -> NetworkSpec:
    return NetworkSpec("tiny_search", "cnn", "cifar", channels=4, layers=3, input_size=8)


def write_tiny_cnn(folder: Path) -> Path:
    path = folder / "tiny_search.geno"
    path.write_text(TINY_CNN, encoding="utf-8")
    return path


def write_tiny_rnn(folder: Path) -> Path:
    path = folder / "tiny_rnn.geno"
    path.write_text(TINY_RNN, encoding="utf-8")
    return path


def write_tiny_corpus(folder: Path, lines: int = 60) -> Path:
    """ptb.{train,valid,test}.txt of a few hundred tokens from a 17-word vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", lines), ("valid", lines // 2), ("test", lines // 4)):
        text = "\n".join(" ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(6)) for i in range(n))
        (folder / f"ptb.{split}.txt").write_text(text + "\n", encoding="utf-8")
    return folder
