"""Users' data: an image folder (ImageFolder layout, any size and mode), CIFAR-100 and a
text folder, loaded through the registry like the shipped sets; normalisation
statistics computed once and cached; clear errors for every broken folder; and tiny
`search`, `train` and `eval` runs on each folder."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _cli import fails_cleanly, fails_with_usage, run
from _search_util import write_tiny_cnn, write_tiny_rnn
from _train_data import write_skeletons
from genolang.data import folder as folder_mod
from genolang.data import load_corpus, load_images
from genolang.data.images import ImageRecord, channel_stats, class_digest
from genolang.data.registry import DATASETS, dataset_help, dataset_kind
from genolang.data.text import tokenize
from genolang.errors import GenolangError, InputError, UsageError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches into its own folder, never the user's ~/.cache."""
    where = tmp_path / "cache"
    monkeypatch.setenv("GENOLANG_CACHE_DIR", str(where))
    monkeypatch.delenv("GENOLANG_MAX_DATA_GIB", raising=False)
    return where


def image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0, value: int | None = None) -> Path:
    """A PNG of ``size`` (width, height) in ``mode``: random pixels, or all ``value``."""
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], channels)
    arr = np.full(shape, value, np.uint8) if value is not None else rng.integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if channels == 1 else arr).save(path)
    return path


def flat_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog", "emu"), per_class: int = 5,
                size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            image(root / name / f"{i}.png", size, mode, seed=100 * c + i)
    return root


def split_folder(root: Path, classes: tuple[str, ...] = ("a", "b"), train: int = 6, test: int = 2,
                 size: tuple[int, int] = (8, 8), mode: str = "L") -> Path:
    for c, name in enumerate(classes):
        for i in range(train):
            image(root / "train" / name / f"{i}.png", size, mode, seed=10 * c + i)
        for i in range(test):
            image(root / "test" / name / f"t{i}.png", size, mode, seed=1000 + 10 * c + i)
    return root


# ---- the registry -------------------------------------------------------------------

def test_the_registry_names_every_data_set_for_every_command() -> None:
    names = [d.name for d in DATASETS]
    assert {"cifar100", "folder", "text"} <= set(names)
    assert dataset_kind("folder") == "image" and dataset_kind("text") == "text"
    assert "folder (your image folder in --data-dir)" in dataset_help()
    assert dataset_help("text") == "ptb or text (your text folder in --data-dir)"
    with pytest.raises(UsageError, match="text data set; give one of the image data sets"):
        load_images("text", None)
    with pytest.raises(UsageError, match="did you mean 'folder'"):
        load_images("folders", None)
    for command in ("search", "train", "eval"):
        out = run(command, "--help").output.replace("\n", " ")
        assert "cifar100" in " ".join(out.split()) and "valid.txt" in out, command


# ---- image folder: layout, labels, splits, formats ---------------------------------------------

def test_a_flat_folder_is_labelled_by_sorted_class_names_with_a_stratified_held_out_split(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "imgs", classes=("zebra", "ant", "moth"), per_class=10)
    (root / "README.md").write_text("notes beside the class folders are ignored")
    (root / "ant" / ".DS_Store").write_bytes(b"\x00junk")
    data = load_images("folder", str(root))
    assert data.class_names == ("ant", "moth", "zebra") and data.classes == 3
    assert sorted(data.train_y.tolist()) == [0] * 8 + [1] * 8 + [2] * 8  # 20% of each class held out
    # in an order blind to the classes: a search's weight half and alpha half both hold every class
    half = len(data.train_y) // 2
    assert set(data.train_y[:half].tolist()) == set(data.train_y[half:].tolist()) == {0, 1, 2}
    assert data.test_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.train_x.shape == (24, 3, 8, 8) and data.test_x.shape == (6, 3, 8, 8)
    assert data.train_x.dtype == torch.uint8 and (data.in_channels, data.input_size) == (3, 8)
    again = load_images("folder", str(root))
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_x, data.test_x)
    # the held-out images are the same however the folder was made: chosen by their paths
    held = sorted(p for p in (root / "ant").iterdir() if p.suffix == ".png")
    pixels = {p.name: torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1) for p in held}
    test_ants = [name for name, x in pixels.items() if any(torch.equal(x, t) for t in data.test_x[:2])]
    assert len(test_ants) == 2
    img, label = data.dataset("train", augment=True)[0]
    assert img.shape == (3, 8, 8) and img.dtype == torch.float32 and int(label) == int(data.train_y[0])


def test_class_folders_are_read_recursively_and_a_link_loop_once(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "imgs", ("a", "b"), per_class=2)
    image(root / "a" / "more" / "deep.png", (8, 8))
    os.symlink(root / "a", root / "a" / "loop")  # a link back up the tree
    data = load_images("folder", str(root))
    assert len(data.train_y) + len(data.test_y) == 5


def test_train_and_test_folders_are_used_as_they_are(tmp_path: Path) -> None:
    root = split_folder(tmp_path / "d", train=6, test=3, size=(6, 6), mode="L")
    data = load_images("folder", str(root))
    assert data.train_x.shape == (12, 1, 6, 6) and data.test_x.shape == (6, 1, 6, 6)
    assert data.test_y.tolist() == [0, 0, 0, 1, 1, 1]
    first = torch.from_numpy(np.array(Image.open(root / "train" / "a" / "0.png")))
    assert any(torch.equal(x[0], first) and y == 0 for x, y in zip(data.train_x, data.train_y.tolist()))
    mean, std = channel_stats(data.train_x)
    assert data.mean == mean and data.std == std
    assert data.mean[0] == pytest.approx(float(data.train_x.double().mean() / 255), rel=1e-12)
    # train/ without test/: the held-out fraction is taken from train/
    (root / "test").rename(tmp_path / "elsewhere")
    assert load_images("folder", str(root)).test_x.shape == (2 * 1, 1, 6, 6)


def test_images_of_any_size_are_resized_to_the_median_shorter_side_and_centre_cropped(tmp_path: Path) -> None:
    root = tmp_path / "sizes"
    for name, sizes in (("a", [(6, 6), (12, 20), (10, 10)]), ("b", [(16, 10), (10, 30), (40, 40)])):
        for i, size in enumerate(sizes):
            image(root / "train" / name / f"{i}.png", size, "RGB", seed=i)
        image(root / "test" / name / "t.png", (64, 32), "RGB")
    data = load_images("folder", str(root))
    # shorter sides 6, 12, 10, 10, 10, 40 (train) and 32, 32 (test): the lower median is 10
    assert data.train_x.shape == (6, 3, 10, 10) and data.test_x.shape == (2, 3, 10, 10)
    assert data.augment.crop_padding == 1 and data.augment.flip
    # an image of the target size is taken as it is; a 10x30 one is its centre
    exact = torch.from_numpy(np.array(Image.open(root / "train" / "a" / "2.png"))).permute(2, 0, 1)
    assert any(torch.equal(x, exact) for x in data.train_x)
    tall = np.array(Image.open(root / "train" / "b" / "1.png"))
    assert any(torch.equal(x, torch.from_numpy(tall[10:20]).permute(2, 0, 1)) for x in data.train_x)


def test_mixed_modes_become_the_widest_present(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    image(root / "gray" / "0.png", (8, 8), "L", value=200)
    image(root / "gray" / "1.png", (8, 8), "L", value=10)
    image(root / "colour" / "0.png", (8, 8), "RGB", seed=1)
    image(root / "colour" / "1.png", (8, 8), "RGB", seed=2)
    data = load_images("folder", str(root))
    assert data.in_channels == 3
    grays = torch.cat([data.train_x, data.test_x])[torch.cat([data.train_y, data.test_y]) == 1]
    assert sorted(int(g[0, 0, 0]) for g in grays) == [10, 200]
    assert all(torch.equal(g[0], g[1]) and torch.equal(g[1], g[2]) for g in grays)  # gray replicated
    image(root / "colour" / "2.png", (8, 8), "RGBA", seed=3)
    assert load_images("folder", str(root)).in_channels == 4  # any alpha adds a channel to all
    gray_alpha = tmp_path / "la"
    flat_folder(gray_alpha, ("x", "y"), 3, mode="L")
    image(gray_alpha / "x" / "9.png", (8, 8), "LA")
    assert load_images("folder", str(gray_alpha)).in_channels == 2
    # palette images are colour; 16-bit grayscale is scaled to 8 bits
    pal = tmp_path / "pal"
    flat_folder(pal, ("x", "y"), 2, mode="L")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(pal / "x" / "deep.png")
    Image.new("P", (8, 8), 3).save(pal / "y" / "p.png")
    data = load_images("folder", str(pal))
    assert data.in_channels == 3
    both = torch.cat([data.train_x, data.test_x])
    assert any(bool((x == 255).all()) for x in both)  # the 16-bit white image


# ---- statistics: computed once, cached, recorded ------------------------------------------

def test_statistics_are_computed_once_and_then_read_from_the_cache(tmp_path: Path, cache_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = flat_folder(tmp_path / "imgs")
    calls = []

    def counting(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
        calls.append(len(x))
        return channel_stats(x)

    monkeypatch.setattr(folder_mod, "channel_stats", counting)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    first = load_images("folder", str(root))
    assert calls == [12]
    entries = list((cache_dir / "folder-stats").glob("*.json"))
    assert len(entries) == 1 and json.loads(entries[0].read_text())["mean"] == list(first.mean)
    second = load_images("folder", str(root))
    assert calls == [12] and second.mean == first.mean and second.std == first.std  # bit-identical, no recompute
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written into the data
    image(root / "cat" / "new.png", (8, 8), "RGB", seed=77)  # another file: another key
    load_images("folder", str(root))
    assert len(calls) == 2
    entries[0].write_text("{damaged")  # a damaged entry is computed again, not an error
    os.utime(root / "cat" / "new.png", ns=(1, 1))
    load_images("folder", str(root))
    assert len(calls) == 3


def test_an_unwritable_cache_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("GENOLANG_CACHE_DIR", str(blocker))
    root = flat_folder(tmp_path / "imgs")
    assert load_images("folder", str(root)).mean == load_images("folder", str(root)).mean


def test_a_constant_channel_is_only_centred(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    for c in ("a", "b"):
        for i in range(3):
            image(root / c / f"{i}.png", (4, 4), "L", value=90)
    data = load_images("folder", str(root))
    assert data.std == (1.0,) and bool(torch.isfinite(data.dataset("train")[0][0]).all())


def test_the_record_reads_a_folder_as_the_model_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = split_folder(tmp_path / "d", train=4, test=2, size=(10, 10), mode="RGB")
    data = load_images("folder", str(root))
    record = data.record()
    assert record["classes"] == ["a", "b"] and record["class_digest"] == class_digest(("a", "b"))
    like = ImageRecord(3, 6, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), ("a", "b"))
    decoded: list[Path] = []
    real = folder_mod._decode

    def decode(p: Path, m: str, s: int) -> torch.Tensor:
        decoded.append(p)
        return real(p, m, s)

    monkeypatch.setattr(folder_mod, "_decode", decode)
    again = load_images("folder", str(root), like=like)
    assert len(decoded) == 4 and all("test" in p.parts for p in decoded)  # only the test split is read
    assert again.test_x.shape == (4, 3, 6, 6) and again.mean == (0.5,) * 3 and again.std == (0.25,) * 3
    gray = load_images("folder", str(root), like=ImageRecord(1, 10, (0.5,), (0.2,), ("a", "b")))
    assert gray.test_x.shape == (4, 1, 10, 10)
    with pytest.raises(UsageError, match="other classes than the model was trained on") as err:
        load_images("folder", str(root), like=ImageRecord(3, 10, None, None, ("a", "c")))
    assert "missing here: c" in str(err.value) and "not known to the model: b" in str(err.value)
    with pytest.raises(UsageError, match="another label order"):
        load_images("folder", str(root), like=ImageRecord(3, 10, None, None, ("b", "a")))


# ---- image folder: every error is a UsageError that says what to do ----------------------------------

def _broken(tmp: Path, case: str) -> Path:
    root = tmp / "d"
    if case == "empty":
        root.mkdir()
    elif case == "one class":
        flat_folder(root, ("only",), 3)
    elif case == "class without images":
        flat_folder(root, ("a", "b"), 3)
        (root / "c" / "sub").mkdir(parents=True)
    elif case == "not an image":
        flat_folder(root, ("a", "b"), 3)
        (root / "b" / "labels.csv").write_text("x,y\n")
    elif case == "corrupt image":
        flat_folder(root, ("a", "b"), 3)
        (root / "a" / "bad.png").write_bytes(b"\x89PNG not really")
    elif case == "truncated image":
        flat_folder(root, ("a", "b"), 3, size=(64, 64))
        whole = (root / "a" / "1.png").read_bytes()
        (root / "a" / "1.png").write_bytes(whole[: len(whole) // 2])
    elif case == "image outside a class":
        flat_folder(root, ("a", "b"), 3)
        image(root / "stray.png", (8, 8))
    elif case == "missing test class":
        split_folder(root, ("a", "b", "c"))
        for p in (root / "test" / "c").iterdir():
            p.unlink()
        (root / "test" / "c").rmdir()
    elif case == "missing train class":
        split_folder(root, ("a", "b"))
        image(root / "test" / "z" / "0.png", (8, 8))
    elif case == "test without train":
        flat_folder(root / "test", ("a", "b"), 2)
    elif case == "folder beside train":
        split_folder(root)
        flat_folder(root / "val", ("a", "b"), 1)
    elif case == "float image":
        flat_folder(root, ("a", "b"), 3)
        Image.fromarray(np.zeros((8, 8), np.float32)).save(root / "a" / "f.tiff")
    elif case == "single images":
        flat_folder(root, ("a", "b"), 1)
    return root


@pytest.mark.parametrize("case,fragments", [
    ("empty", ["no class folders", "DIR/<class>/<image>"]),
    ("one class", ["only one class folder", "at least two"]),
    ("class without images", ["d/c: a class folder without images", "delete the folder"]),
    ("not an image", ["labels.csv: not an image file", "move it out of the class folder"]),
    ("corrupt image", ["bad.png: not a readable image", "replace it or delete it"]),
    ("truncated image", ["1.png: a damaged image", "replace it or delete it"]),
    ("image outside a class", ["stray.png: an image outside any class folder", "move it into"]),
    ("missing test class", ["test/c missing", "train/ has that class"]),
    ("missing train class", ["train/z missing", "test/ has that class"]),
    ("test without train", ["test/ without", "train/<class>/"]),
    ("folder beside train", ["d/val: a folder beside train/ and test/"]),
    ("float image", ["f.tiff", "mode 'F'", "8-bit"]),
    ("single images", ["no test images", "two or more"]),
])
def test_broken_image_folders_are_clear_errors(tmp_path: Path, case: str, fragments: list[str]) -> None:
    root = _broken(tmp_path, case)
    with pytest.raises(GenolangError) as err:
        load_images("folder", str(root))
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_a_folder_too_large_for_memory_is_refused_before_reading(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = flat_folder(tmp_path / "imgs", size=(32, 32))
    monkeypatch.setattr(folder_mod, "_decode", lambda *a: pytest.fail("decoded before the memory check"))
    monkeypatch.setenv("GENOLANG_MAX_DATA_GIB", "0.00001")
    with pytest.raises(GenolangError, match=r"15 images of 3x32x32 would take 0.0 MiB|15 images of 3x32x32") as err:
        load_images("folder", str(root))
    assert "GENOLANG_MAX_DATA_GIB" in str(err.value) and "downscale" in str(err.value)
    monkeypatch.setenv("GENOLANG_MAX_DATA_GIB", "lots")
    with pytest.raises(UsageError, match="a positive number"):
        load_images("folder", str(root))


def test_folder_needs_a_data_dir_and_cannot_be_downloaded(tmp_path: Path) -> None:
    fails_with_usage(run("train", "darts_v2", "--network", "small", "--dataset", "folder", "--run-dir", tmp_path / "r",
                      "--quiet"), "--dataset folder reads your own images: add --data-dir DIR")
    root = flat_folder(tmp_path / "imgs")
    with pytest.raises(UsageError, match="--download fetches CIFAR-10 or CIFAR-100"):
        load_images("folder", str(root), download=True)
    broken = _broken(tmp_path / "b", "corrupt image")
    fails_cleanly(run("train", "darts_v2", "--network", "small", "--dataset", "folder", "--data-dir", broken,
                      "--run-dir", tmp_path / "r2", "--quiet"), "bad.png: not a readable image")
    assert not (tmp_path / "r2" / "checkpoint.pt").exists()


# ---- CIFAR-100 -------------------------------------------------------------------------

def write_cifar100(root: Path, train: int = 20, test: int = 10, meta: bool = True) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for name, n, protocol in (("train", train, 2), ("test", test, pickle.DEFAULT_PROTOCOL)):
        with open(folder / name, "wb") as f:
            pickle.dump({"filenames": [f"{i}.png" for i in range(n)], "batch_label": name,
                         "fine_labels": [(7 * i) % 100 for i in range(n)], "coarse_labels": [i % 20 for i in range(n)],
                         "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}, f, protocol=protocol)
    if meta:
        with open(folder / "meta", "wb") as f:
            pickle.dump({"fine_label_names": [f"class{i:02d}" for i in range(100)],
                         "coarse_label_names": [f"super{i}" for i in range(20)]}, f, protocol=2)
    return folder


def test_cifar100_loads_fine_labels_with_the_restricted_unpickler(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path)
    for where in (tmp_path, folder):
        data = load_images("cifar100", str(where))
        assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (10, 3, 32, 32)
        assert data.classes == 100 and data.class_names[:2] == ("class00", "class01")
        assert data.train_y.tolist() == [(7 * i) % 100 for i in range(20)]
        assert data.mean == (0.5071, 0.4865, 0.4409) and data.augment.cutout == 16
    (folder / "meta").unlink()
    unnamed = load_images("cifar100", str(folder))
    assert unnamed.classes == 100 and unnamed.class_names == ()


def test_cifar100_errors(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
            return (os.system, (f"touch {marker}",))

    folder = write_cifar100(tmp_path)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": Evil()}, f)
    with pytest.raises(InputError, match=r"refusing to load posix.system|refusing to load"):
        load_images("cifar100", str(folder))
    assert not marker.exists()
    write_cifar100(tmp_path)
    with open(folder / "test", "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [0, 100]}, f)
    with pytest.raises(InputError, match=r"fine labels must be 0..99"):
        load_images("cifar100", str(folder))
    with open(folder / "test", "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(InputError, match="without 'data' and 'fine_labels'"):
        load_images("cifar100", str(folder))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match=r"CIFAR-100 not found .* 'cifar-100-python'"):
        load_images("cifar100", str(empty))


def test_training_a_step_on_cifar100(tmp_path: Path) -> None:
    write_cifar100(tmp_path / "data")
    tiny, _ = write_skeletons(tmp_path / "specs")
    result = run("train", "darts_v2", "--network", tiny, "--dataset", "cifar100", "--data-dir", tmp_path / "data",
                 "--epochs", "1", "--batch-size", "10", "--limit-train", "10", "--run-dir", tmp_path / "run",
                 "--quiet", "--json", "--no-tensorboard")
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert state["data_shape"]["classes"] == 100 and len(state["extra"]["classes"]) == 100


# ---- text folder ---------------------------------------------------------------------------

def write_text_folder(root: Path, train: str | None = None, valid: str | None = None,
                      test: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    words = "the cat sat on a mat and the dog ran to the red ball while it rained".split()
    lines = [" ".join(words[(i * 3 + j) % len(words)] for j in range(6)) for i in range(60)]
    (root / "train.txt").write_text(train if train is not None else "\n".join(lines) + "\n", encoding="utf-8")
    (root / "valid.txt").write_text(valid if valid is not None else "\n".join(lines[:30]) + "\n", encoding="utf-8")
    (root / "test.txt").write_text(test if test is not None else "\n".join(lines[30:45]) + "\n", encoding="utf-8")
    return root


def test_a_text_folder_is_tokenised_as_ptb_with_unknown_words_as_unk(tmp_path: Path) -> None:
    root = write_text_folder(tmp_path / "t", train="a b c\n\nb c  d\n", valid="a x\n", test="y y d\n")
    corpus = load_corpus("text", str(root))
    assert corpus.vocab == ("a", "b", "c", "<eos>", "d", "<unk>")  # training order, <unk> added at the end
    assert [corpus.vocab[i] for i in corpus.train] == tokenize("a b c\n\nb c  d\n")
    assert [corpus.vocab[i] for i in corpus.valid] == ["a", "<unk>", "<eos>"]
    assert [corpus.vocab[i] for i in corpus.test] == ["<unk>", "<unk>", "d", "<eos>"]
    assert corpus.unknown == 3
    known = load_corpus("text", str(write_text_folder(tmp_path / "k", train="a b\n", valid="b a\n", test="a\n")))
    assert "<unk>" not in known.vocab and known.unknown == 0  # only added when needed
    own = load_corpus("text", str(write_text_folder(tmp_path / "o", train="<unk> a\n", valid="z\n", test="a\n")))
    assert own.vocab == ("<unk>", "a", "<eos>") and own.valid.tolist() == [0, 2]


@pytest.mark.parametrize("case,fragments", [
    ("missing", ["missing valid.txt", "rename val.txt to valid.txt", "train.txt, DIR/valid.txt"]),
    ("empty", ["test.txt: no words", "every split needs text"]),
    ("binary", ["train.txt: cannot read as UTF-8 text", "save it as UTF-8"]),
    ("no dir", ["--dataset text reads your own corpus: add --data-dir DIR"]),
])
def test_broken_text_folders_are_clear_errors(tmp_path: Path, case: str, fragments: list[str]) -> None:
    root = write_text_folder(tmp_path / "t")
    if case == "missing":
        (root / "valid.txt").rename(root / "val.txt")
    elif case == "empty":
        (root / "test.txt").write_text("\n  \n")
    elif case == "binary":
        (root / "train.txt").write_bytes(b"\xff\xfe\x00 bad")
    with pytest.raises(GenolangError) as err:
        load_corpus("text", None if case == "no dir" else str(root))
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


# ---- the commands: search, train and eval take them alike --------------------------------------

def test_train_and_eval_on_an_image_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = split_folder(tmp_path / "imgs", ("bird", "fish"), train=6, test=3, size=(8, 8), mode="RGB")
    tiny, _ = write_skeletons(tmp_path / "specs")
    result = run("train", "darts_v2", "--network", tiny, "--dataset", "folder", "--data-dir", root, "--epochs", "1",
                 "--batch-size", "4", "--run-dir", tmp_path / "run", "--quiet", "--json", "--no-tensorboard")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["test_images"] == 6
    recipe = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert (recipe["epochs"], recipe["batch_size"], recipe["cutout"]) == (1, 4, 0)
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert state["data_shape"] == {"kind": "cnn", "in_channels": 3, "input_size": 8, "classes": 2, "ntokens": None}
    data = load_images("folder", str(root))
    assert state["extra"]["classes"] == ["bird", "fish"] and state["extra"]["mean"] == list(data.mean)
    evaluated = run("eval", tmp_path / "run", "--dataset", "folder", "--data-dir", root, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    first = json.loads(evaluated.output)
    assert first["test_images"] == 6 and first["test_acc"] == pytest.approx(out["test_acc"])
    # eval normalises with the statistics stored in the model, not with the folder's current ones
    image(root / "train" / "bird" / "extra.png", (8, 8), "RGB", value=255)
    monkeypatch.setattr(folder_mod, "channel_stats", lambda x: pytest.fail("eval recomputed the statistics"))
    again = json.loads(run("eval", tmp_path / "run", "--dataset", "folder", "--data-dir", root, "--json").output)
    assert again["test_loss"] == first["test_loss"]
    other = split_folder(tmp_path / "other", ("bird", "frog"), train=2, test=1, size=(8, 8), mode="RGB")
    fails_with_usage(run("eval", tmp_path / "run", "--dataset", "folder", "--data-dir", other),
                  "other classes than the model was trained on", "missing here: fish", "not known to the model: frog")


def test_search_on_an_image_folder(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "imgs", ("a", "b"), per_class=10, size=(10, 8), mode="L")
    net = write_tiny_cnn(tmp_path)
    result = run("search", "darts_cnn", "--network", net, "--dataset", "folder", "--data-dir", root, "--epochs", "1",
                 "--batch-size", "4", "--limit", "1", "--out", tmp_path / "found.geno", "--run-dir", tmp_path / "run",
                 "--quiet")
    assert result.exit_code == 0, result.output
    assert "genotype found : darts_cnn" in (tmp_path / "found.geno").read_text()
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["recipe"]["dataset"] == "folder"


def test_search_train_and_eval_on_a_text_folder(tmp_path: Path) -> None:
    root = write_text_folder(tmp_path / "corpus", test="the cat sat on a zebra\n" * 5)
    net = write_tiny_rnn(tmp_path)
    searched = run("search", "darts_rnn", "--network", net, "--dataset", "text", "--data-dir", root, "--epochs", "1",
                   "--batch-size", "4", "--limit", "1", "--out", tmp_path / "rnn.geno", "--run-dir", tmp_path / "s",
                   "--quiet")
    assert searched.exit_code == 0, searched.output
    _, rnn_tiny = write_skeletons(tmp_path / "specs")
    trained = run("train", tmp_path / "rnn.geno", "--network", rnn_tiny, "--dataset", "text", "--data-dir", root,
                  "--epochs", "1", "--batch-size", "4", "--run-dir", tmp_path / "t", "--quiet", "--json",
                  "--no-tensorboard")
    assert trained.exit_code == 0, trained.output
    evaluated = run("eval", tmp_path / "t", "--dataset", "text", "--data-dir", root, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["test_ppl"] > 1
    other = write_text_folder(tmp_path / "other", train="completely different words here\n" * 20)
    fails_with_usage(run("eval", tmp_path / "t", "--dataset", "text", "--data-dir", other), "tokens")
