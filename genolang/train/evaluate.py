"""Evaluating a saved model (from ``genolang train`` or ``genolang compile -o``) on the
test split of a data set it fits."""

from __future__ import annotations

import os
from typing import Any

from genolang.data.images import ImageRecord, load_images
from genolang.data.registry import dataset_kind
from genolang.data.text import batchify, load_corpus
from genolang.errors import UsageError
from genolang.nets.checkpoint import load_model
from genolang.nets.compile import DataShape
from genolang.nets.rnn import RNNModel
from genolang.run.evaluate import evaluate_images, evaluate_text, perplexity
from genolang.run.runtime import pick_device
from genolang.train.images import loader, shape_of, subset
from genolang.train.text import vocab_digest


def evaluate_checkpoint(path: str | os.PathLike[str], dataset: str, *, data_dir: str | None = None,
                        download: bool = False, batch_size: int | None = None, bptt: int = 35,
                        device: str = "cpu", limit: int | None = None) -> dict[str, Any]:
    """Test loss and accuracy (images) or perplexity (text) of the model in ``path``.
    A model built for another data shape than ``dataset``'s is a clear error."""
    kind = dataset_kind(dataset)
    dev = pick_device(device)
    model, geno, network, meta = load_model(path, map_location="cpu")
    shape: DataShape = meta["data_shape"]
    where = f"{path} (genotype {geno.name} on network {network.name}, built for {shape.describe()})"
    base: dict[str, Any] = {"checkpoint": str(path), "genotype": geno.name, "network": network.name,
                            "dataset": dataset}
    if not meta["verified"]:
        base["note"] = (f"{path} was written by a genolang without checksums; it was loaded unverified (save it "
                        "again to add one)")
    if kind == "text":
        if shape.kind != "rnn":
            raise UsageError(f"{where} is an image model; {dataset} is a text corpus")
        corpus = load_corpus(dataset, data_dir)
        if corpus.ntokens != shape.ntokens:
            raise UsageError(f"{where}: {dataset} has {corpus.ntokens} tokens; the model expects {shape.ntokens}")
        stored = meta["extra"].get("vocab")
        if stored is not None and stored != vocab_digest(corpus):
            raise UsageError(f"{where} was trained on another vocabulary than this {dataset}")
        assert isinstance(model, RNNModel)
        test = corpus.test[:limit] if limit else corpus.test
        data = batchify(test, batch_size or 10).to(dev)
        loss = evaluate_text(model.to(dev), data, bptt)
        return {**base, "test_loss": loss, "test_ppl": perplexity(loss), "test_tokens": int(data.numel())}
    if shape.kind != "cnn":
        raise UsageError(f"{where} is a language model; {dataset} is an image data set")
    images = load_images(dataset, data_dir, download, like=ImageRecord.from_model(shape, meta["extra"]))
    have = shape_of(images)
    if have != shape:
        raise UsageError(f"{where}, but {dataset} has {have.describe()}; evaluate it on data of that shape, or "
                         f"compile the genotype for this data set ('genolang compile GENOTYPE --network "
                         f"{network.name} --dataset {dataset} -o FILE')")
    test_set = images.dataset("test", indices=subset(len(images.test_y), limit))
    result = evaluate_images(model.to(dev), loader(test_set, batch_size or 256, None, 0, dev), dev)
    return {**base, "test_loss": result["loss"], "test_acc": result["acc"], "test_images": result["n"]}
