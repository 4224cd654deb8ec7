"""The user's own corpus: ``--dataset text --data-dir DIR`` with ``DIR/train.txt``,
``DIR/valid.txt`` and ``DIR/test.txt`` (UTF-8), for recurrent search and training.

Tokenised exactly as Penn Treebank: each non-empty line is its whitespace-separated
words and ``<eos>``. The vocabulary is the training split's words in order of first
appearance; a valid/test word that training never has becomes ``<unk>`` (added to the
end of the vocabulary only when some word needs it and training has no ``<unk>`` of
its own; ``Corpus.unknown`` counts them). Search trains the alphas on valid.txt, so
every split needs words; a model's checkpoint keeps a digest of the vocabulary, and
``eval`` refuses a corpus with another one."""

from __future__ import annotations

from pathlib import Path

from genolang.data.text import Corpus, build_corpus, read_texts
from genolang.errors import InputError, UsageError

SPLITS = ("train", "valid", "test")
LAYOUT = "DIR/train.txt, DIR/valid.txt and DIR/test.txt (UTF-8 text, one sentence or line of words per line)"


def load(data_dir: str | None) -> Corpus:
    if data_dir is None:
        raise UsageError(f"--dataset text reads your own corpus: add --data-dir DIR with {LAYOUT}")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise UsageError(f"--data-dir {folder}: no such folder; give the folder with {LAYOUT}")
    files = [folder / f"{s}.txt" for s in SPLITS]
    missing = [f for f in files if not f.is_file()]
    if missing:
        hints = []
        for f in missing:
            for other in (f"ptb.{f.stem}.txt", "val.txt" if f.stem == "valid" else "", f"{f.stem}.tokens"):
                if other and (folder / other).is_file():
                    hints.append(f"rename {other} to {f.name}")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise UsageError(f"{folder}: missing {', '.join(f.name for f in missing)}{hint}; a text folder holds {LAYOUT}")
    train, valid, test = read_texts(files, f"the corpus in {folder}")
    corpus = build_corpus("text", train, valid, test, unknown="unk")
    for f, ids in zip(files, (corpus.train, corpus.valid, corpus.test)):
        if len(ids) == 0:
            raise InputError(f"{f}: no words; every split needs text (training learns from train.txt, search and "
                             "early stopping measure valid.txt, eval test.txt)")
    return corpus
