"""Training recipes: every hyperparameter of a retraining run in one frozen dataclass,
with the DARTS defaults per data set and skeleton (DESIGN.md section 4).

* CIFAR-10 (``cifar``-stem skeletons): 600 epochs, batch 96, SGD momentum 0.9, lr 0.025
  cosine-annealed to 0, weight decay 3e-4, cutout 16, gradient norm clipped at 5; the
  auxiliary weight, drop path and label smoothing come from the skeleton.
* ImageNet-style skeletons (``stem = imagenet``): 250 epochs, batch 128, lr 0.1 decayed
  x0.97 per epoch, weight decay 3e-5, label smoothing from the skeleton (0.1).
* digits: 30 epochs, batch 64; Fashion-MNIST: 50 epochs, batch 96 (otherwise as CIFAR).
* CIFAR-100: as CIFAR-10; an image folder: 100 epochs, batch 64, no cutout.
* Penn Treebank and a text folder: the DARTS recurrent recipe (``TextRecipe``).

The learning-rate schedule is a closed form of the epoch (``lr_at``), so a resumed run
needs no scheduler state to continue exactly."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from genolang.data.registry import dataset_kind
from genolang.errors import UsageError
from genolang.run.state import differences
from genolang.spec.checked import NetworkSpec

SCHEDULES = ("cosine", "step", "constant")
FLOAT32_MAX = 3.4028234663852886e38  # optimizer steps convert the learning rate to float32


@dataclass(frozen=True)
class ImageRecipe:
    """Retraining a CNN on an image data set."""

    dataset: str
    epochs: int
    batch_size: int
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    schedule: str = "cosine"  # cosine (to lr_min) | step (x decay per epoch) | constant
    lr_min: float = 0.0
    decay: float = 0.97
    cutout: int = 0
    augment: bool = True
    drop_path: float = 0.0
    aux_weight: float = 0.0
    grad_clip: float = 5.0
    label_smoothing: float = 0.0
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    eval_batch_size: int | None = None
    amp: bool = False  # autocast: bfloat16 where the device supports it, else float16 with loss scaling
    channels_last: bool = False  # NHWC memory layout for the network and its inputs
    log_every: int = 20  # steps between progress reports on CUDA (each costs a host-device sync)
    sync_bn: bool = True  # under torchrun: batch norm over the global batch (else per process)

    kind = "image"

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based), as PyTorch's
        CosineAnnealingLR (T_max = epochs) or StepLR (step 1, gamma = decay) give it."""
        if self.schedule == "cosine":
            return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.epochs)) / 2
        if self.schedule == "step":
            return self.lr * self.decay ** epoch
        return self.lr

    def drop_path_at(self, epoch: int) -> float:
        """Drop-path probability of epoch ``epoch`` (0-based): rising linearly from 0."""
        return self.drop_path * epoch / self.epochs

    def replace(self, **changes: Any) -> ImageRecipe:
        return _replace(self, changes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class TextRecipe:
    """Retraining a recurrent cell on a corpus (DARTS's PTB recipe, after AWD-LSTM):
    SGD at ``lr`` with the step size scaled by seq_len / bptt, switching to ASGD when the
    validation loss has not improved on the best of all but the last ``nonmono``
    evaluations; temporal activation regularisation ``beta`` on the raw cell outputs,
    activation regularisation ``alpha`` on the dropped ones (0 in DARTS)."""

    dataset: str = "ptb"
    epochs: int = 8000
    batch_size: int = 64
    eval_batch_size: int = 10
    bptt: int = 35
    lr: float = 20.0
    grad_clip: float = 0.25
    weight_decay: float = 8e-7
    alpha: float = 0.0
    beta: float = 1e-3
    nonmono: int = 5
    max_seq_len_delta: int = 20
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None

    kind = "text"

    def lr_at(self, epoch: int) -> float:
        return self.lr

    def replace(self, **changes: Any) -> TextRecipe:
        return _replace(self, changes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


Recipe = ImageRecipe | TextRecipe


def _replace(recipe: Any, changes: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(recipe)}
    given = {k: v for k, v in changes.items() if v is not None}
    wrong = sorted(set(given) - names)
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        what = "image" if recipe.kind == "image" else "text"
        raise UsageError(f"{flags} does not apply to training on {what} data ({recipe.dataset})")
    new = dataclasses.replace(recipe, **given)
    validate(new)
    return new


def validate(recipe: Recipe) -> None:
    """A clear error for values no run can use."""
    if recipe.epochs < 1 or recipe.batch_size < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    if isinstance(recipe, ImageRecipe) and recipe.batch_size < 2:
        raise UsageError("--batch-size must be at least 2 to train on images: batch norm needs two images per batch")
    for f in dataclasses.fields(recipe):
        value = getattr(recipe, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
    if not 0 < recipe.lr <= FLOAT32_MAX:
        raise UsageError(f"--lr must be positive and finite (at most {FLOAT32_MAX:.3g}), got {recipe.lr}")
    if recipe.weight_decay < 0 or recipe.grad_clip < 0:
        raise UsageError("--weight-decay and --grad-clip must not be negative")
    for name in ("limit_train", "limit_test"):
        value = getattr(recipe, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if isinstance(recipe, ImageRecipe):
        if recipe.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule '{recipe.schedule}'; use {', '.join(SCHEDULES)}")
        if not 0 <= recipe.drop_path < 1 or not 0 <= recipe.label_smoothing < 1:
            raise UsageError("--drop-path and --label-smoothing must be in [0, 1)")
        if recipe.cutout < 0 or recipe.aux_weight < 0 or not 0 <= recipe.momentum < 1:
            raise UsageError("--cutout and --aux-weight must not be negative; --momentum must be in [0, 1)")
    elif recipe.bptt < 2:
        raise UsageError("--bptt must be at least 2")


def recipe_from_dict(d: dict[str, Any]) -> Recipe:
    """Read back ``to_dict`` (as stored in checkpoints)."""
    d = dict(d)
    kind = d.pop("kind", "image")
    cls = TextRecipe if kind == "text" else ImageRecipe
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


_IMAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cifar10": {"epochs": 600, "batch_size": 96, "cutout": 16},
    "digits": {"epochs": 30, "batch_size": 64, "cutout": 0},
    "fashion-mnist": {"epochs": 50, "batch_size": 96, "cutout": 0},
    "cifar100": {"epochs": 600, "batch_size": 96, "cutout": 16},
    # an image folder of any size: no cutout (its side depends on the image size), fewer epochs than CIFAR's
    "folder": {"epochs": 100, "batch_size": 64, "cutout": 0},
}


def default_recipe(dataset: str, network: NetworkSpec) -> Recipe:
    """The default recipe for ``dataset`` on ``network``."""
    kind = dataset_kind(dataset)
    if kind == "text":
        if network.kind != "rnn":
            raise UsageError(f"{dataset} is a text corpus; network '{network.name}' is a CNN skeleton. "
                             "Use a recurrent genotype on a recurrent skeleton such as ptb.")
        return TextRecipe(dataset=dataset)
    if network.kind != "cnn":
        raise UsageError(f"{dataset} is an image data set; network '{network.name}' is a recurrent skeleton. "
                         "Use a CNN genotype on a CNN skeleton such as cifar or small.")
    base: dict[str, Any] = dict(_IMAGE_DEFAULTS[dataset])
    base.update(drop_path=network.drop_path, label_smoothing=network.label_smoothing,
                aux_weight=network.auxiliary_weight if network.auxiliary is not None else 0.0)
    if network.stem == "imagenet":
        base.update(epochs=250, batch_size=128, lr=0.1, schedule="step", decay=0.97, weight_decay=3e-5)
    return ImageRecipe(dataset=dataset, **base)


def recipe_diff(a: Recipe, b: Recipe) -> list[str]:
    """Fields whose values differ, as ``name: a -> b``."""
    return differences(a.to_dict(), b.to_dict())
