"""Search methods as compositions of components (``genolang.search.components``).

A ``MethodSpec`` names its relaxation, supernet transforms, regularizers, perturbation
and selection (each with its hyperparameters), the architecture gradient (first order,
or second order with the finite-difference or the exact Hessian-vector product), the
warm-up epochs with frozen alphas and the order of the two steps. ``METHODS`` holds the
published combinations with their papers' defaults; every part can be overridden
(``genolang search --method NAME --relaxation ... --set gumbel.tau_max=5``).

``MethodRun`` is a method's live components for one search: the drivers
(``search.images``, ``search.text``) call only ``prepare``, ``start_epoch``,
``arch_step_due``, ``architect``, ``weight_phase`` and ``select``."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from genolang.errors import UsageError, did_you_mean
from genolang.run import dist
from genolang.search.architect import Architect, ArchitectConfig
from genolang.search.components import ComponentSpec, Param, registry
from genolang.spec.checked import GenotypeSpec, SpaceSpec

STEP_ORDERS = ("arch_first", "weight_first")
HESSIANS = ("fd", "exact")


@dataclass(frozen=True)
class MethodSpec:
    """A search method: its components and how the two steps run."""

    name: str
    relaxation: ComponentSpec = field(default_factory=lambda: ComponentSpec.of("relaxation", "softmax"))
    transforms: tuple[ComponentSpec, ...] = ()
    regularizers: tuple[ComponentSpec, ...] = ()
    perturbation: ComponentSpec | None = None
    selection: ComponentSpec = field(default_factory=lambda: ComponentSpec.of("selection", "magnitude"))
    warmup: float = 0.0  # the fraction of the epochs with frozen alphas (PC-DARTS: 15 of 50)
    step_order: str = "arch_first"
    arch_steps: bool = True  # random search with weight sharing trains the weights only
    paper: str = ""

    def components(self) -> list[ComponentSpec]:
        out = [self.relaxation, *self.transforms, *self.regularizers, self.selection]
        return out + ([self.perturbation] if self.perturbation is not None else [])

    def arch_weight_decay(self) -> float | None:
        """The alpha weight decay one of the regularizers stands for, if any (DrNAS's KL
        term: 0, as its code sets), in place of the recipe's default."""
        for r in self.regularizers:
            value = getattr(registry("regularizer")[r.name], "arch_weight_decay", None)
            if value is not None:
                return float(value)
        return None

    def describe(self) -> str:
        parts = [f"relaxation {self.relaxation.describe()}"]
        parts += [f"transform {t.describe()}" for t in self.transforms]
        parts += [f"regularizer {r.describe()}" for r in self.regularizers]
        if self.perturbation is not None:
            parts.append(f"perturbation {self.perturbation.describe()}")
        parts.append(f"selection {self.selection.describe()}")
        if self.warmup:
            parts.append(f"warm-up {self.warmup:g} of the epochs")
        if self.step_order != "arch_first":
            parts.append("weight step first")
        if not self.arch_steps:
            parts.append("no architecture steps")
        return f"{self.name}: " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "relaxation": self.relaxation.to_json(),
            "transforms": [t.to_json() for t in self.transforms],
            "regularizers": [r.to_json() for r in self.regularizers],
            "perturbation": self.perturbation.to_json() if self.perturbation is not None else None,
            "selection": self.selection.to_json(), "warmup": self.warmup, "step_order": self.step_order,
            "arch_steps": self.arch_steps,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> MethodSpec:
        return MethodSpec(
            name=str(d["name"]), relaxation=ComponentSpec.from_json("relaxation", d["relaxation"]),
            transforms=tuple(ComponentSpec.from_json("transform", t) for t in d.get("transforms", ())),
            regularizers=tuple(ComponentSpec.from_json("regularizer", r) for r in d.get("regularizers", ())),
            perturbation=(ComponentSpec.from_json("perturbation", d["perturbation"])
                          if d.get("perturbation") else None),
            selection=ComponentSpec.from_json("selection", d["selection"]), warmup=float(d.get("warmup", 0.0)),
            step_order=str(d.get("step_order", "arch_first")), arch_steps=bool(d.get("arch_steps", True)),
        )


@dataclass(frozen=True)
class Preset:
    """A published method: its components and how its optimizer settings differ from
    DARTS's on CIFAR-10. On the paper's data set (``paper_recipe``) those settings are
    taken as they are; on other data the learning rates are scaled by the same ratios to
    DARTS's (``lr_scale``, ``arch_lr_scale``), the rest stays the data set's."""

    spec: Callable[[], MethodSpec]
    paper_recipe: Mapping[str, Any] = field(default_factory=dict)  # on cifar10
    lr_scale: float = 1.0
    arch_lr_scale: float = 1.0
    arch_betas: tuple[float, float] | None = None
    lr_min: float | None = None
    order: int = 1
    nesterov: bool = False  # Nesterov momentum for the weights (GDAS), wherever the weights have momentum


def _darts() -> MethodSpec:
    return MethodSpec("darts", paper="Liu, Simonyan and Yang, DARTS, ICLR 2019")


def _drnas() -> MethodSpec:
    # the official DARTS-space search runs two stages of 25 epochs (partial channels K 6
    # then 4, 7 then 4 ops per edge) with the alphas frozen for the first 10 of each;
    # genolang runs one stage: frozen for 0.4 of the epochs, that fraction of each stage
    # and of the whole (30 of 50 epochs take architecture steps, as there)
    return MethodSpec("drnas", relaxation=ComponentSpec.of("relaxation", "dirichlet"), warmup=0.4,
                      paper="Chen, Wang, Cheng, Tang and Hsieh, DrNAS, ICLR 2021")


def _fair_darts() -> MethodSpec:
    return MethodSpec("fair_darts", relaxation=ComponentSpec.of("relaxation", "sigmoid"),
                      regularizers=(ComponentSpec.of("regularizer", "zero_one"),),
                      selection=ComponentSpec.of("selection", "threshold"),
                      paper="Chu, Zhou, Zhang and Li, Fair DARTS, ECCV 2020")


def _beta_darts() -> MethodSpec:
    return MethodSpec("beta_darts", regularizers=(ComponentSpec.of("regularizer", "beta_decay"),),
                      paper="Ye, Li, Wang, Li, Wang, Fan and Zhang, beta-DARTS, CVPR 2022")


def _sdarts_rs() -> MethodSpec:
    return MethodSpec("sdarts_rs", perturbation=ComponentSpec.of("perturbation", "random_smoothing"),
                      paper="Chen and Hsieh, SDARTS (random smoothing), ICML 2020")


def _pc_darts() -> MethodSpec:
    # the arch steps start at epoch 15 of 50 (train_search.py: ``if epoch >= 15``): 0.3 of the epochs
    return MethodSpec("pc_darts", transforms=(ComponentSpec.of("transform", "partial_channels", k=4,
                                                                  edge_norm=True),),
                      warmup=0.3, paper="Xu et al., PC-DARTS, ICLR 2020")


def _gdas() -> MethodSpec:
    return MethodSpec("gdas", relaxation=ComponentSpec.of("relaxation", "gumbel", tau_max=10.0, tau_min=0.1),
                      step_order="weight_first", paper="Dong and Yang, GDAS, CVPR 2019")


def _darts_minus() -> MethodSpec:
    return MethodSpec("darts_minus", transforms=(ComponentSpec.of("transform", "aux_skip", beta=1.0,
                                                                     decay="linear"),),
                      paper="Chu et al., DARTS-, ICLR 2021")


def _random_ws() -> MethodSpec:
    return MethodSpec("random_ws", relaxation=ComponentSpec.of("relaxation", "uniform_paths"),
                      selection=ComponentSpec.of("selection", "rank_samples"), arch_steps=False,
                      paper="Li and Talwalkar, Random Search and Reproducibility for NAS, UAI 2019")


def _darts_pt() -> MethodSpec:
    return MethodSpec("darts_pt", selection=ComponentSpec.of("selection", "perturbation"),
                      paper="Wang, Cheng, Chen, Tang and Hsieh, Rethinking Architecture Selection in "
                            "Differentiable NAS (DARTS-PT), ICLR 2021")


PRESETS: dict[str, Preset] = {
    "darts": Preset(_darts),
    # DrNAS, DARTS space on CIFAR-10: SGD 0.1 cosine to 0, alpha Adam 6e-4 (its l2 default is
    # the alpha weight decay 1e-3, DARTS's); C=36 and 20 cells there (the skeleton is the user's)
    "drnas": Preset(_drnas, {"lr": 0.1, "lr_min": 0.0, "arch_lr": 6e-4}, lr_scale=4.0, arch_lr_scale=2.0,
                    lr_min=0.0),
    # FairDARTS: SGD 0.005 cosine to 0.001, alpha Adam 3e-3 with betas (0.9, 0.999), batch 128
    "fair_darts": Preset(_fair_darts, {"lr": 0.005, "arch_lr": 3e-3, "batch_size": 128}, lr_scale=0.2,
                         arch_lr_scale=10.0, arch_betas=(0.9, 0.999)),
    "beta_darts": Preset(_beta_darts),  # DARTS's settings otherwise
    "sdarts_rs": Preset(_sdarts_rs),  # DARTS's settings otherwise (first order, as the authors ran it)
    # train_search.py: batch 256, lr 0.1 cosine to 0, arch lr 6e-4 (4x and 2x DARTS's)
    "pc_darts": Preset(_pc_darts, paper_recipe={"batch_size": 256, "lr": 0.1, "lr_min": 0.0, "arch_lr": 6e-4},
                       lr_scale=4.0, arch_lr_scale=2.0, lr_min=0.0),
    # GDAS-NASNet-CIFAR.config: 250 epochs, batch 256, SGD lr 0.025 cosine to 0.001 with Nesterov
    # momentum 0.9, wd 5e-4; Adam 3e-4 (0.5, 0.999) wd 1e-3 as DARTS
    "gdas": Preset(_gdas, paper_recipe={"epochs": 250, "batch_size": 256, "weight_decay": 5e-4}, nesterov=True),
    # run_darts_minus.sh: DARTS's first-order recipe, auxiliary skip beta 1 decaying linearly
    "darts_minus": Preset(_darts_minus),
    # a DARTS search (50 epochs, first order on CIFAR-10), then the perturbation selection
    "darts_pt": Preset(_darts_pt),
    # randomNAS_release's CNN defaults (random_weight_share.py --benchmark cnn): 100 epochs,
    # gradient norm clipped at 0.25 (its argparse default, shared with the PTB benchmark)
    "random_ws": Preset(_random_ws, paper_recipe={"epochs": 100, "grad_clip": 0.25}),
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UsageError(f"no search method named '{name}'{did_you_mean(name, PRESETS)}; "
                         f"known: {', '.join(preset_names())}")
    return PRESETS[name]


def override(spec: MethodSpec, *, relaxation: str | None = None, transforms: tuple[str, ...] | None = None,
             regularizers: tuple[str, ...] | None = None, perturbation: str | None = None,
             selection: str | None = None, params: Mapping[str, Param] | None = None,
             warmup: float | None = None, step_order: str | None = None) -> MethodSpec:
    """``spec`` with components replaced and hyperparameters set: ``params`` maps
    ``component.parameter`` (the component's name) to a value."""
    changes: dict[str, Any] = {}
    if relaxation is not None:
        changes["relaxation"] = ComponentSpec.of("relaxation", relaxation)
    if transforms is not None:
        changes["transforms"] = tuple(ComponentSpec.of("transform", t) for t in transforms if t != "none")
    if regularizers is not None:
        changes["regularizers"] = tuple(ComponentSpec.of("regularizer", r) for r in regularizers if r != "none")
    if perturbation is not None:
        changes["perturbation"] = None if perturbation == "none" else ComponentSpec.of("perturbation", perturbation)
    if selection is not None:
        changes["selection"] = ComponentSpec.of("selection", selection)
    if warmup is not None:
        if not 0.0 <= warmup < 1.0:
            raise UsageError(f"--warmup is the fraction of the epochs with frozen alphas, from 0 to below 1; "
                             f"got {warmup}")
        changes["warmup"] = warmup
    if step_order is not None:
        if step_order not in STEP_ORDERS:
            raise UsageError(f"--step-order must be one of {', '.join(STEP_ORDERS)}, not {step_order!r}")
        changes["step_order"] = step_order
    out = dataclasses.replace(spec, **changes)
    for key, value in (params or {}).items():
        out = _set_param(out, key, value)
    return out


def _set_param(spec: MethodSpec, key: str, value: Param) -> MethodSpec:
    component, dot, param = key.partition(".")
    if not dot or not param:
        raise UsageError(f"--set {key}={value}: write COMPONENT.PARAMETER=VALUE, e.g. --set gumbel.tau_max=5")
    parts = spec.components()
    matches = [c for c in parts if c.name == component]
    if not matches:
        raise UsageError(f"--set {key}: method {spec.name} has no component '{component}'"
                         f"{did_you_mean(component, [c.name for c in parts])}; its components: "
                         f"{', '.join(c.name for c in parts)}")
    old = matches[0]
    new = ComponentSpec.of(old.kind, old.name, **{**dict(old.params), param: value})

    def swap(c: ComponentSpec) -> ComponentSpec:
        return new if c == old else c

    return dataclasses.replace(
        spec, relaxation=swap(spec.relaxation), transforms=tuple(swap(t) for t in spec.transforms),
        regularizers=tuple(swap(r) for r in spec.regularizers), selection=swap(spec.selection),
        perturbation=swap(spec.perturbation) if spec.perturbation is not None else None)


# ---- a method's components for one search ------------------------------------------------

@dataclass
class SelectionContext:
    """What a selection sees: the trained model, the space, the genotype's name, and
    the driver's hooks (None where the driver has none: the recurrent driver cannot
    fine-tune).

    * ``score(batches, train_mode)``: the supernet's validation score as it is now,
      higher is better (accuracy for images, minus the loss per token for text), under
      ``no_grad``; ``batches=None`` is the whole validation split (``--limit`` caps
      it), an int that many batches of the search's batch size from a cycling iterator
      over the shuffled split (each call takes the next ones, as random search's code
      does). ``train_mode`` keeps batch norm on batch statistics (DARTS-PT's
      evaluation); the running statistics are left as they were.
    * ``fine_tune(lr)``: restart the weight optimizer (its momentum) at a constant
      learning rate ``lr`` for the epochs ``train_epoch`` runs (DARTS-PT).
    * ``train_epoch(state, planned)``: one more epoch of the search's steps (an
      architecture step, then a weight step) after the search's epochs, logged and
      checkpointed like one: ``state`` (plain data: numbers, words, lists, dicts) is
      the selection's, kept in the checkpoint so that ``--resume`` continues the
      selection; ``planned`` is the number of such epochs the selection runs in all.
      Returns the epoch's metrics.
    * ``resumed``: the ``state`` of the last checkpointed ``train_epoch`` when the run
      resumes in the middle of the selection, else None.
    * ``note(message)``: a line of progress; ``record(entry)``: a line of the run
      folder's ``selection.jsonl`` (each decision and its scores).
    * ``summary``: lines the selection adds to the found genotype's provenance header;
      ``metrics``: the last epoch's record (``train_epoch`` updates it); ``epochs_done``:
      the search's and the selection's epochs so far; ``lr``: the search's initial
      weight learning rate."""

    space: SpaceSpec
    model: Any
    name: str
    score: Callable[..., float] | None = None
    fine_tune: Callable[[float], None] | None = None
    train_epoch: Callable[[Mapping[str, Any], int], Mapping[str, Any]] | None = None
    resumed: Mapping[str, Any] | None = None
    note: Callable[[str], None] = lambda message: None
    record: Callable[[dict[str, Any]], None] = lambda entry: None
    summary: list[str] = field(default_factory=list)
    metrics: Mapping[str, Any] | None = None  # the last epoch's, updated by train_epoch
    epochs_done: int = 0  # epochs of the search and of fine-tuning so far
    lr: float = 0.0  # the search's initial weight learning rate

    def evaluate(self) -> float:
        """The validation score of the supernet as it is, on the whole split."""
        if self.score is None:
            raise UsageError("this search's driver cannot evaluate its supernet for the selection")
        return self.score(None)


class MethodRun:
    """The live components of a method for one search of ``epochs`` epochs."""

    def __init__(self, spec: MethodSpec, epochs: int) -> None:
        self.spec = spec
        self.epochs = epochs
        self.relaxation = spec.relaxation.build()
        self.transforms = [t.build() for t in spec.transforms]
        self.regularizers = [r.build() for r in spec.regularizers]
        self.perturbation = spec.perturbation.build() if spec.perturbation is not None else None
        self.selection = spec.selection.build()
        self.warmup_epochs = round(spec.warmup * epochs)
        self.epoch = 0
        self.model: Any = None

    # -- building ------------------------------------------------------------------------
    def supernet_options(self, options: Any) -> Any:
        """The supernet's build options after the transforms (``genolang.nets.supernet``)."""
        for t in self.transforms:
            options = t.supernet_options(options)
        return options

    def prepare(self, model: Any) -> None:
        """Give the built supernet this method's relaxation (and its initial alphas)."""
        self.model = model
        model.relaxation = self.relaxation
        prepare_relaxation = getattr(self.relaxation, "prepare", None)
        if prepare_relaxation is not None:  # a relaxation that needs the cells' structure (random paths)
            prepare_relaxation(model)
        init = getattr(self.relaxation, "initial_alphas", None)
        if init is not None:
            with torch.no_grad():
                for alpha in model.arch_parameters():
                    alpha.copy_(init(alpha))
        for t in self.transforms:
            prepare = getattr(t, "prepare", None)
            if prepare is not None:
                prepare(model)

    # -- the schedule --------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Tell every component the (1-based) epoch that starts."""
        self.epoch = epoch
        for c in self._all():
            set_epoch = getattr(c, "set_epoch", None)
            if set_epoch is not None:
                set_epoch(epoch - 1, self.epochs)

    def end_epochs(self) -> None:
        """Tell every component the search's epochs are over (``set_epoch(epochs,
        epochs)``): what the selection (and its fine-tuning) sees, e.g. DARTS-'s
        auxiliary skips at weight 0."""
        self.epoch = self.epochs + 1
        for c in self._all():
            set_epoch = getattr(c, "set_epoch", None)
            if set_epoch is not None:
                set_epoch(self.epochs, self.epochs)

    def arch_step_due(self) -> bool:
        return self.spec.arch_steps and self.epoch > self.warmup_epochs

    def _all(self) -> list[Any]:
        return [self.relaxation, *self.transforms, *self.regularizers, self.selection,
                *([self.perturbation] if self.perturbation is not None else [])]

    # -- the two steps -------------------------------------------------------------------
    def architect(self, model: torch.nn.Module, weight_optimizer: torch.optim.Optimizer, recipe: Any,
                  world: dist.World = dist.SINGLE, capturable: bool = False) -> Architect:
        """The architecture step: Adam on the architecture parameters, with the recipe's
        gradient order and Hessian, the regularizers added to the validation loss; under
        torchrun every gradient it uses is averaged across ranks. ``capturable``: Adam's
        step counter on the device (a CUDA graph can capture the step)."""
        config = ArchitectConfig(recipe.order, recipe.arch_lr, recipe.arch_betas, recipe.arch_weight_decay,
                                 mode=getattr(recipe, "hessian", "fd"), capturable=capturable)
        regularize = self.arch_loss if self.regularizers else None
        return Architect(model, weight_optimizer, config, reduce=lambda grads: dist.all_reduce_mean_(grads, world),
                         regularize=regularize)

    def arch_loss(self) -> torch.Tensor:
        """The regularizers' terms on the architecture parameters (added to L_val)."""
        total = self.regularizers[0].loss(self.model)
        for r in self.regularizers[1:]:
            total = total + r.loss(self.model)
        return total

    @contextlib.contextmanager
    def weight_phase(self) -> Iterator[None]:
        """While the weight step runs: the perturbation (if any) acts on the edge weights."""
        if self.perturbation is None or self.model is None:
            yield
            return
        self.model.perturbation = self.perturbation
        try:
            yield
        finally:
            self.model.perturbation = None

    # -- the end -------------------------------------------------------------------------
    def select(self, context: SelectionContext) -> GenotypeSpec:
        return self.selection.select(context)


def method_spec(name: str = "darts") -> MethodSpec:
    """A published method's spec (its components with their papers' defaults)."""
    return preset(name).spec()


DARTS = _darts()
