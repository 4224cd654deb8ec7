"""Token corpora for language modelling, found by name in ``genolang.data.registry``:
Penn Treebank (``ptb``) and the user's own text folder (``text``). As in AWD-LSTM and
DARTS, every non-empty line is its whitespace-separated words followed by an
``<eos>`` token, and the vocabulary is built from the training split, in order of
first appearance."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path

import torch

from genolang.data.limits import check_memory
from genolang.data.registry import loader
from genolang.errors import InputError, UsageError

EOS = "<eos>"
UNK = "<unk>"


@dataclass(frozen=True)
class Corpus:
    """Token ids of the three splits and the vocabulary that maps them; ``unknown``
    counts the valid/test tokens mapped to ``<unk>`` because training never has them."""

    name: str
    vocab: tuple[str, ...]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    unknown: int = 0

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


def build_corpus(name: str, train: str, valid: str, test: str, unknown: str = "error") -> Corpus:
    """A corpus from raw text (tokenised as ``tokenize``, one line at a time, so the
    token ids take 8 bytes each and no list of words is ever held). A valid/test word
    outside the training vocabulary becomes ``<unk>`` where the training text has it;
    otherwise ``unknown`` decides: ``"error"`` (the PTB splits share one vocabulary
    with ``<unk>``, so another word means a wrong file) or ``"unk"`` (``<unk>`` is added
    to the end of the vocabulary, only when some word needs it)."""
    vocab: dict[str, int] = {}

    def ids(text: str, split: str, grow: bool) -> array[int]:
        out = array("q")
        for line in text.splitlines():
            words = line.split()
            if not words:
                continue
            for w in (*words, EOS):
                i = vocab.get(w)
                if i is None:
                    if grow:
                        i = vocab[w] = len(vocab)
                    elif UNK in vocab:
                        i = vocab[UNK]
                        unknown_count[0] += 1
                    elif unknown == "unk":
                        i = vocab[UNK] = len(vocab)
                        unknown_count[0] += 1
                    else:
                        raise InputError(f"{name}: word {w!r} of the {split} split is not in the training "
                                         "vocabulary and there is no <unk> token")
                out.append(i)
        return out

    unknown_count = [0]
    train_ids = ids(train, "train", True)
    unknown_count[0] = 0
    valid_ids, test_ids = ids(valid, "valid", False), ids(test, "test", False)

    def tensor(a: array[int]) -> torch.Tensor:
        # shares the array's memory (and keeps it alive): no copy of a large corpus
        return torch.frombuffer(a, dtype=torch.int64) if len(a) else torch.zeros(0, dtype=torch.long)

    return Corpus(name, tuple(vocab), tensor(train_ids), tensor(valid_ids), tensor(test_ids), unknown_count[0])


def read_texts(files: list[Path], what: str) -> list[str]:
    """The UTF-8 text of each file, after checking that they fit in memory as token
    ids (at most 4 ids per byte of text, 8 bytes each, and the text itself)."""
    sizes = []
    for f in files:
        try:
            sizes.append(f.stat().st_size)
        except OSError as err:
            raise InputError(f"{f}: cannot read ({err.strerror or err}); check the file and its permissions") from None
    check_memory(f"{what} ({sum(sizes):,} bytes of text)", 9 * sum(sizes), "use smaller text files")
    texts = []
    for f in files:
        try:
            texts.append(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"{f}: cannot read as UTF-8 text ({err}); save it as UTF-8") from None
    return texts


def load_corpus(name: str = "ptb", data_dir: str | None = None) -> Corpus:
    """Load a corpus by name; a missing corpus says how to get it."""
    return loader(name, "text")(data_dir)


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
