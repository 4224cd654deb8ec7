"""Data sets from tiny folders in the real formats (CIFAR-10 python and binary batches,
Fashion-MNIST idx files, PTB text), trained on for a step through the same code path,
and clear errors for missing or broken data."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from _cli import fails_with_usage, run
from _train_data import (
    cifar_like_images,
    write_cifar_bin,
    write_cifar_py,
    write_fashion,
    write_ptb,
    write_skeletons,
)
from genolang.data import load_corpus, load_images
from genolang.data.images import channel_stats
from genolang.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- CIFAR-10 --------------------------------------------------------------------

def test_fake_cifar_python_batches_load(tmp_path: Path) -> None:
    folder = write_cifar_py(tmp_path)
    loaded = [load_images("cifar10", str(where)) for where in (tmp_path, folder)]
    for data in loaded:
        assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (10, 3, 32, 32)
        assert data.train_x.dtype == torch.uint8 and data.classes == 10
        assert (data.in_channels, data.input_size) == (3, 32)
        assert data.mean == (0.4914, 0.4822, 0.4465)
    data = loaded[-1]
    pixels, labels = cifar_like_images(6, 1)  # what write_cifar_py put in data_batch_1
    assert torch.equal(data.train_x[0], torch.from_numpy(pixels[0].reshape(3, 32, 32)))
    assert data.train_y[:6].tolist() == labels
    img, label = data.dataset("train", augment=True)[0]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32 and int(label) == labels[0]


def test_fake_cifar_binary_batches_load(tmp_path: Path) -> None:
    folder = write_cifar_bin(tmp_path)
    data = load_images("cifar10", str(folder))
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (5, 3, 32, 32)
    row = (folder / "data_batch_1.bin").read_bytes()[:3073]
    assert int(data.train_y[0]) == row[0]
    assert data.train_x[0].flatten().tolist() == list(row[1:])


def test_training_a_step_on_fake_cifar(tmp_path: Path) -> None:
    write_cifar_py(tmp_path / "data")
    tiny, _ = write_skeletons(tmp_path / "specs")
    result = run("train", "darts_v2", "--network", tiny, "--dataset", "cifar10", "--data-dir", tmp_path / "data",
                 "--epochs", "1", "--batch-size", "10", "--limit-train", "11", "--run-dir", tmp_path / "run",
                 "--quiet", "--json", "--no-tensorboard")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["test_images"] == 10 and 0.0 <= out["test_acc"] <= 1.0
    recipe = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert recipe["cutout"] == 16 and recipe["batch_size"] == 10
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert state["data_shape"] == {"kind": "cnn", "in_channels": 3, "input_size": 32, "classes": 10, "ntokens": None}


def test_cifar_pickles_cannot_run_code(tmp_path: Path) -> None:
    folder = write_cifar_py(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({"data": Evil(), "labels": []}, f)
    with pytest.raises(InputError, match="refusing to load"):
        load_images("cifar10", str(tmp_path))
    assert not marker.exists()


def test_damaged_cifar_batch_is_a_clear_error(tmp_path: Path) -> None:
    folder = write_cifar_py(tmp_path)
    (folder / "test_batch").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a CIFAR-10 python batch"):
        load_images("cifar10", str(tmp_path))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(InputError, match="expected \\(N, 3072\\)"):
        load_images("cifar10", str(tmp_path))


# ---- Fashion-MNIST and digits --------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_idx_files(tmp_path: Path, gz: bool) -> None:
    write_fashion(tmp_path, train=20, test=10, gz=gz)
    data = load_images("fashion-mnist", str(tmp_path))
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    assert data.train_y.tolist() == [i % 10 for i in range(20)] and data.classes == 10
    assert (data.in_channels, data.input_size) == (1, 28)


def test_training_a_step_on_fashion_mnist(tmp_path: Path) -> None:
    write_fashion(tmp_path / "fashion", train=12, test=6)
    tiny, _ = write_skeletons(tmp_path / "specs")
    result = run("train", "darts_v1", "--network", tiny, "--dataset", "fashion-mnist", "--data-dir",
                 tmp_path / "fashion", "--epochs", "1", "--batch-size", "6", "--run-dir", tmp_path / "run",
                 "--quiet", "--json", "--no-tensorboard")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["test_images"] == 6


def test_damaged_idx_files(tmp_path: Path) -> None:
    write_fashion(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x0a\x01")
    with pytest.raises(InputError, match="truncated idx file"):
        load_images("fashion-mnist", str(tmp_path))
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(InputError, match="damaged gzip"):
        load_images("fashion-mnist", str(tmp_path))


def test_digits_ship_offline_and_normalise_the_same_with_any_thread_count() -> None:
    data = load_images("digits")
    assert data.train_x.shape[1:] == (1, 8, 8) and len(data.train_y) + len(data.test_y) == 1797
    torch.set_num_threads(2)
    try:
        assert load_images("digits").mean == data.mean and load_images("digits").std == data.std
    finally:
        torch.set_num_threads(1)
    x = data.train_x.double() / 255
    assert data.mean[0] == pytest.approx(float(x.mean()), rel=1e-12)
    assert data.std[0] == pytest.approx(float(x.std()), rel=1e-9)
    assert channel_stats(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8)) == ((1.0,), (0.0,))


# ---- PTB ----------------------------------------------------------------------------

def test_ptb_folder_loads(tmp_path: Path) -> None:
    write_ptb(tmp_path)
    corpus = load_corpus("ptb", str(tmp_path))
    assert corpus.vocab[-1] != "" and "<eos>" in corpus.vocab and "<unk>" in corpus.vocab
    assert corpus.ntokens == len(set(corpus.vocab)) <= 52
    assert len(corpus.train) > len(corpus.valid) > 0


# ---- missing and broken data -------------------------------------------------------------

@pytest.mark.parametrize("dataset,fragments", [
    ("cifar10", ["CIFAR-10 not found", "--download"]),
    ("fashion-mnist", ["Fashion-MNIST not found", "apt-get install dataset-fashion-mnist", "--data-dir"]),
    ("ptb", ["Penn Treebank not found", "ptb.train.txt"]),
])
def test_missing_data_sets_say_how_to_get_them(tmp_path: Path, dataset: str, fragments: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    genotype, network = ("darts_rnn_v2", "ptb_search") if dataset == "ptb" else ("darts_v2", "small_search")
    result = run("train", genotype, "--network", network, "--dataset", dataset, "--data-dir", empty,
                 "--epochs", "1", "--run-dir", tmp_path / "run", "--quiet", "--no-tensorboard")
    fails_with_usage(result, *fragments)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("dataset", ["cifar10", "fashion-mnist", "ptb", "digits"])
def test_data_dir_that_is_not_a_folder(tmp_path: Path, dataset: str) -> None:
    genotype, network = ("darts_rnn_v2", "ptb_search") if dataset == "ptb" else ("darts_v2", "small_search")
    fails_with_usage(run("train", genotype, "--network", network, "--dataset", dataset, "--data-dir", tmp_path / "nope",
                      "--run-dir", tmp_path / "run", "--quiet"), "no such folder")
    (tmp_path / "file").write_text("x")
    result = run("train", genotype, "--network", network, "--dataset", dataset, "--data-dir", tmp_path / "file",
                 "--run-dir", tmp_path / "run2", "--quiet")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_unknown_data_set_and_wrong_kind(tmp_path: Path) -> None:
    fails_with_usage(run("train", "darts_v2", "--network", "small", "--dataset", "cifar-10"), "did you mean 'cifar10'")
    fails_with_usage(run("train", "darts_v2", "--network", "small", "--dataset", "ptb", "--run-dir", tmp_path / "r"),
                  "text corpus")
    fails_with_usage(
        run("train", "darts_rnn_v2", "--network", "ptb", "--dataset", "digits", "--run-dir", tmp_path / "r"),
        "image data set",
    )
