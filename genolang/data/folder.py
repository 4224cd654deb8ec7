"""The user's own images: ``--dataset folder --data-dir DIR`` in torchvision's
ImageFolder layout.

Layout. One subfolder per class, its name the class name; labels are the class names
in sorted order (as ImageFolder numbers them). Either

* ``DIR/train/<class>/...`` and ``DIR/test/<class>/...`` (the same class folders in
  both), or
* ``DIR/<class>/...`` (or ``DIR/train/<class>/...`` without ``test/``): then a fixed,
  stratified ``HELD_OUT`` fraction (20%) of each class becomes the test split, the
  images whose SHA-256 of their path (relative to DIR) ranks first; at least one per
  class that has two or more images. The split is the same on every machine and
  moves only a few images when images are added.

A class folder may have subfolders (read recursively, following links). Names that
start with a dot (``.DS_Store``, ``.ipynb_checkpoints``) are skipped; any other file in
a class folder must be an image of one of torchvision's ImageFolder types (.jpg .jpeg
.png .ppm .bmp .pgm .tif .tiff .webp), else it is an error naming the file; files
beside the class folders (a README, a labels.csv) are ignored. Images are read with
Pillow, ImageFolder's reader, in sorted path order, with their EXIF orientation
applied; an animated image gives its first frame.

One input format. The network takes square images of one size and channel count:

* size: every image is resized (bilinear, antialiased, torchvision's ``resize``) so
  its shorter side is S, then centre-cropped to S x S, where S is the median shorter
  side of the folder's images (the lower median): a folder of images of one square
  size keeps it. To get another size, resize the files first.
* channels: grayscale is 1 channel, colour (RGB, palette, CMYK, YCbCr ...) 3; an
  alpha channel (RGBA, LA, palette or grayscale with transparency) adds one. Mixed
  modes convert to the widest present in the folder: any colour image makes every
  image RGB, any alpha makes every image carry one. 16-bit grayscale is scaled
  to 8 bits; 32-bit float images are refused.

Before decoding, the images' headers are read and the memory the data set would take
is checked against the limit of ``genolang.data.limits``. Normalisation statistics
(per-channel mean and standard deviation of the training split, exact integer sums)
are computed once and cached by ``genolang.data.cache``, keyed by the training files'
paths, sizes and modification times and the input format. A model trained on a
folder stores them and the class names in its checkpoint; ``eval`` reads the folder
with those (``like``) and decodes only the test split."""

from __future__ import annotations

import hashlib
import os
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from genolang.data import cache
from genolang.data.images import Augment, ImageData, ImageRecord, channel_stats, check_classes
from genolang.data.limits import check_memory
from genolang.errors import InputError, UsageError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

HELD_OUT = 0.2
CACHE_KIND = "folder-stats"
MODE_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
_GRAY = {"1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_GRAY_ALPHA = {"LA"}
_COLOUR = {"RGB", "RGBX", "P", "CMYK", "YCbCr", "HSV"}
_COLOUR_ALPHA = {"RGBA", "RGBa", "PA"}
LAYOUT = ("DIR/<class>/<image> (a held-out 20% of each class is the test split) or "
          "DIR/train/<class>/<image> with DIR/test/<class>/<image>")


def _extensions() -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


@dataclass(frozen=True)
class _File:
    path: Path
    rel: str  # relative to DIR, with '/'
    label: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    colour: bool
    alpha: bool


# ---- listing ------------------------------------------------------------------------

def _visible(name: str) -> bool:
    return not name.startswith(".")


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if _visible(e.name)), key=lambda e: e.name)
    except OSError as err:
        raise InputError(f"{folder}: cannot list the folder ({err.strerror or err}); check its permissions") from None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _class_folders(top: Path, root: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """The class folders in ``top`` (sorted by name); an image beside them is an error."""
    classes: dict[str, Path] = {}
    for entry in _entries(top):
        if _is_dir(entry):
            classes[entry.name] = Path(entry.path)
        elif entry.name.lower().endswith(extensions):
            raise InputError(f"{entry.path}: an image outside any class folder, so it has no label; move it into "
                             f"the folder of its class ({top}/<class>/)")
    if not classes:
        raise InputError(f"{top}: no class folders. Put the images of each class in a folder of their own: {LAYOUT}")
    return classes


def _images_of(folder: Path, root: Path, label: int, extensions: tuple[str, ...]) -> list[_File]:
    """Every image under a class folder, sorted by path; anything else is an error."""
    out: list[_File] = []
    seen: set[str] = set()

    def failed(err: OSError) -> None:
        raise InputError(f"{err.filename or folder}: cannot list the folder ({err.strerror or err}); "
                         "check its permissions")

    for here, dirs, files in os.walk(folder, onerror=failed, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:  # a link back up the tree: read each folder once
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if _visible(d))
        for name in sorted(f for f in files if _visible(f)):
            path = Path(here) / name
            if not name.lower().endswith(extensions):
                raise InputError(f"{path}: not an image file of a type genolang reads ({' '.join(extensions)}); "
                                 "move it out of the class folder (or convert it to PNG)")
            try:
                st = path.stat()
            except OSError as err:
                raise InputError(f"{path}: cannot read ({err.strerror or err}); check the file (a broken link?) "
                                 "and its permissions") from None
            out.append(_File(path, path.relative_to(root).as_posix(), label, st.st_size, st.st_mtime_ns))
    if not out:
        raise InputError(f"{folder}: a class folder without images; put the images of class '{folder.name}' in it "
                         "or delete the folder")
    return sorted(out, key=lambda f: f.rel)


def _hold_out(files: list[_File]) -> tuple[list[_File], list[_File]]:
    """(train, test) of one class: the ``HELD_OUT`` fraction whose path digests rank
    first is the test split (at least one, and never all, of two or more images)."""
    n = len(files)
    k = min(max(int(n * HELD_OUT + 0.5), 1), n - 1) if n >= 2 else 0
    ranked = sorted(files, key=lambda f: hashlib.sha256(f.rel.encode("utf-8")).digest())
    test = {f.rel for f in ranked[:k]}
    return [f for f in files if f.rel not in test], [f for f in files if f.rel in test]


def _mismatch(root: Path, train: list[str], test: list[str]) -> str | None:
    missing_test = [c for c in train if c not in set(test)]
    missing_train = [c for c in test if c not in set(train)]
    if not missing_test and not missing_train:
        return None
    parts = []
    if missing_test:
        parts.append(f"{', '.join(str(root / 'test' / c) for c in missing_test[:5])} missing "
                     "(train/ has that class; add its test images or remove it from train/)")
    if missing_train:
        parts.append(f"{', '.join(str(root / 'train' / c) for c in missing_train[:5])} missing "
                     "(test/ has that class; add its training images or remove it from test/)")
    return "train/ and test/ must hold the same class folders: " + "; ".join(parts)


def list_folder(root: Path) -> tuple[list[str], list[_File], list[_File]]:
    """(class names, training files, test files) of an image folder; labels index the
    sorted class names."""
    extensions = _extensions()
    split = root / "train"
    if split.is_dir():
        for entry in _entries(root):
            if entry.name not in ("train", "test") and _is_dir(entry):
                raise InputError(f"{entry.path}: a folder beside train/ and test/. With train/ present, {root} holds "
                                 "only train/ and test/ (search takes its validation half from train/); merge it "
                                 "into those or move it out")
            if entry.name.lower().endswith(extensions):
                raise InputError(f"{entry.path}: an image outside any class folder; move it into "
                                 f"{root}/train/<class>/ or {root}/test/<class>/")
        train_classes = _class_folders(split, root, extensions)
        has_test = (root / "test").is_dir()
        test_classes = _class_folders(root / "test", root, extensions) if has_test else {}
        if has_test:
            problem = _mismatch(root, list(train_classes), list(test_classes))
            if problem:
                raise InputError(problem)
    elif (root / "test").is_dir():
        raise InputError(f"{root}/test/ without {root}/train/: put the training images in {root}/train/<class>/ "
                         f"(or give the class folders directly: {LAYOUT})")
    else:
        train_classes, test_classes = _class_folders(root, root, extensions), {}
    names = list(train_classes)
    if len(names) < 2:
        raise InputError(f"{root}: only one class folder ({train_classes[names[0]]}); a classifier needs at least two "
                         f"classes, each in a folder of its own: {LAYOUT}")
    train: list[_File] = []
    test: list[_File] = []
    for label, name in enumerate(names):
        files = _images_of(train_classes[name], root, label, extensions)
        if test_classes:
            train.extend(files)
            test.extend(_images_of(test_classes[name], root, label, extensions))
        else:
            tr, te = _hold_out(files)
            train.extend(tr)
            test.extend(te)
    if len(train) < 2:
        raise InputError(f"{root}: {len(train)} training image; training needs at least two")
    if not test:
        raise InputError(f"{root}: no test images: every class has a single image, and a held-out test image needs "
                         "a class with two or more. Add images, or give a test split in test/<class>/")
    # the training images in an order fixed by their paths but blind to their classes: a search
    # takes its weight half and its alpha half as the first and the second half of this order,
    # which in class order would hold different classes
    train.sort(key=lambda f: hashlib.sha256(b"order:" + f.rel.encode("utf-8")).digest())
    return names, train, test


# ---- reading --------------------------------------------------------------------------

def _open(path: Path) -> PILImage:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except Image.DecompressionBombError as err:
        raise InputError(f"{path}: too large to read safely ({err}); downscale it") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image (damaged, or not the format its name says); replace it "
                         "or delete it") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err}); check the file and its permissions") from None
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow's plugins raise many kinds of errors on damaged files
        raise InputError(f"{path}: not a readable image ({type(err).__name__}: {err}); replace it or delete "
                         "it") from None


def _kind(path: Path, mode: str, info: dict[str, Any]) -> tuple[bool, bool]:
    """(colour, alpha) of a Pillow image mode."""
    transparent = "transparency" in info
    if mode in _GRAY:
        return False, transparent and mode == "L"
    if mode in _GRAY_ALPHA:
        return False, True
    if mode in _COLOUR:
        return True, transparent and mode in ("P", "RGB")
    if mode in _COLOUR_ALPHA:
        return True, True
    raise InputError(f"{path}: images of Pillow mode '{mode}' (such as 32-bit float or CIE Lab) are not read; "
                     "save it as an 8-bit grayscale or colour (RGB) image")


def _header(path: Path) -> _Header:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's large-image warning: the image is resized anyway
        with _open(path) as img:
            mode, info, (width, height) = img.mode, dict(img.info), img.size
    colour, alpha = _kind(path, mode, info)
    if width < 1 or height < 1:
        raise InputError(f"{path}: an empty image ({width}x{height}); replace it or delete it")
    return _Header(width, height, colour, alpha)


def _to_8bit(img: PILImage) -> PILImage:
    """16-bit (or 32-bit integer) grayscale scaled to 8 bits, 0..65535 -> 0..255."""
    from PIL import Image

    arr = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
    return Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8))


def _decode(path: Path, mode: str, size: int) -> torch.Tensor:
    """One image as a (C, size, size) uint8 tensor in ``mode``."""
    import torchvision.transforms.functional as TF
    from PIL import ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _open(path) as img:
            try:
                img.load()
                img = ImageOps.exif_transpose(img)
                if img.mode.startswith("I"):
                    img = _to_8bit(img)
                img = img.convert(mode)
                if img.size != (size, size):
                    img = TF.resize(img, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
                    img = TF.center_crop(img, [size, size])
                tensor: torch.Tensor = TF.pil_to_tensor(img)
                return tensor
            except (UsageError, MemoryError):
                raise
            except Exception as err:  # noqa: BLE001 - Pillow's plugins raise many kinds of errors on damaged files
                raise InputError(f"{path}: a damaged image ({err}); replace it or delete it") from None


def _read_all(files: list[_File], mode: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.empty((len(files), MODE_CHANNELS[mode], size, size), dtype=torch.uint8)
    for i, f in enumerate(files):
        x[i] = _decode(f.path, mode, size)
    return x, torch.tensor([f.label for f in files], dtype=torch.int64)


# ---- the format, the statistics -------------------------------------------------------------

def input_format(headers: list[_Header]) -> tuple[str, int]:
    """(Pillow mode, side) that every image is brought to: the widest mode present,
    the median shorter side."""
    colour = any(h.colour for h in headers)
    alpha = any(h.alpha for h in headers)
    mode = ("RGB" if colour else "L") + ("A" if alpha else "")
    return mode, int(statistics.median_low(min(h.width, h.height) for h in headers))


def _stats(root: Path, train: list[_File], x: torch.Tensor, mode: str,
           size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The training split's channel statistics, from the cache when the same files were
    read the same way before; a constant channel (std 0) is only centred."""
    key = cache.digest({"kind": CACHE_KIND, "mode": mode, "size": size,
                        "files": [[f.rel, f.size, f.mtime_ns] for f in train]})
    hit = cache.read(CACHE_KIND, key)
    mean = std = None
    if hit is not None:
        m, s = hit.get("mean"), hit.get("std")
        if isinstance(m, list) and isinstance(s, list) and len(m) == len(s) == x.shape[1] and \
                all(isinstance(v, float) for v in [*m, *s]):
            mean, std = tuple(m), tuple(s)
    if mean is None or std is None:
        mean, std = channel_stats(x)
        cache.write(CACHE_KIND, key, {"folder": str(root), "images": len(train), "mode": mode, "size": size,
                                      "mean": list(mean), "std": list(std)})
    return mean, tuple(v if v > 0 else 1.0 for v in std)


def _like_mode(like: ImageRecord, root: Path) -> str | None:
    if like.in_channels is None:
        return None
    for mode, channels in MODE_CHANNELS.items():
        if channels == like.in_channels:
            return mode
    raise UsageError(f"the model takes {like.in_channels}-channel images; an image folder gives 1 (grayscale), "
                     f"2 (grayscale and alpha), 3 (colour) or 4 (colour and alpha): it cannot be evaluated on {root}")


def load(data_dir: str | None, download: bool, like: ImageRecord | None = None) -> ImageData:
    """The image folder ``data_dir`` (see the module's description); with ``like``, in
    the format, classes and normalisation of the model it describes."""
    if data_dir is None:
        raise UsageError(f"--dataset folder reads your own images: add --data-dir DIR, laid out as {LAYOUT}")
    if download:
        raise UsageError("--download fetches CIFAR-10 or CIFAR-100; an image folder is read from --data-dir as it is")
    root = Path(data_dir)
    names, train, test = list_folder(root)
    check_classes(tuple(names), like, str(root))
    mode = _like_mode(like, root) if like is not None else None
    size = like.input_size if like is not None else None
    # eval: the model knows its input format and statistics, so the training images need no reading
    test_only = like is not None and mode is not None and size is not None and like.mean is not None \
        and like.std is not None
    to_read = test if test_only else train + test
    # every file's header first: an unreadable file is reported before anything is decoded
    headers = {f.rel: _header(f.path) for f in to_read}
    if mode is None or size is None:
        found_mode, found_size = input_format(list(headers.values()))
        mode, size = mode or found_mode, size or found_size
    channels = MODE_CHANNELS[mode]
    check_memory(f"{root}: {len(to_read):,} images of {channels}x{size}x{size}", len(to_read) * channels * size * size,
                 f"downscale the image files (a copy of the folder) so their shorter sides are smaller than {size} "
                 "pixels (genolang takes the median shorter side)")
    test_x, test_y = _read_all(test, mode, size)
    if test_only:
        train_x = torch.empty((0, channels, size, size), dtype=torch.uint8)
        train_y = torch.empty((0,), dtype=torch.int64)
        assert like is not None and like.mean is not None and like.std is not None
        mean, std = like.mean, like.std
    else:
        train_x, train_y = _read_all(train, mode, size)
        mean, std = _stats(root, train, train_x, mode, size)
    return ImageData("folder", train_x, train_y, test_x, test_y, mean, std,
                     Augment(crop_padding=max(1, size // 8), flip=True, cutout=0), len(names), tuple(names))
