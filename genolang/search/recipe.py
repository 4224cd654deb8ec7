"""A search's recipe: what a user asks for (``SearchConfig``, unset fields meaning
"the default"), every setting that decides the numbers (``Recipe``, all concrete; a
resumed search must have the same), and the defaults per data set (DESIGN.md section 4:
the DARTS paper's CNN and recurrent recipes, and a digits recipe sized for minutes on
two CPU cores)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genolang.errors import UsageError

if TYPE_CHECKING:
    from genolang.nets.supernet import SupernetOptions
    from genolang.search.method import MethodSpec

# Per data set: what the command line does not say. 'digits' is sized for a search that
# decides in about five minutes on 2 CPU cores (README, "Search"): 12 epochs of 12 steps,
# 144 alpha steps where DARTS on CIFAR-10 takes ~20,000. Adam moves a logit by about its
# learning rate per step, so the paper's 3e-4 would move the alphas by at most ~0.04 here:
# the alpha learning rate is 100x the paper's, 3e-2 (with 3e-3 and 8 epochs every softmax
# weight ended within 0.109-0.142 of uniform 0.125, the kept ops at 1.08x uniform; with
# 3e-2 and 12 epochs they end at 0.053-0.280, the kept ops at 1.75x uniform). One intra-op
# thread: its tensors are tiny, a second thread gains little and costs 10x when another
# process holds a core.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"network": "small_search", "epochs": 12, "batch_size": 64, "order": 1, "arch_lr": 3e-2,
               "threads": 1},
    "fashion-mnist": {"network": "small_search", "epochs": 10, "batch_size": 64, "order": 1, "threads": 1},
    "cifar10": {"network": "cifar_search", "epochs": 50, "batch_size": 64, "order": 1},
    "cifar100": {"network": "cifar_search", "epochs": 50, "batch_size": 64, "order": 1},
    "folder": {"network": "cifar_search", "epochs": 50, "batch_size": 64, "order": 1},
    "ptb": {"network": "ptb_search", "epochs": 50, "batch_size": 256, "order": 1},
    "text": {"network": "ptb_search", "epochs": 50, "batch_size": 256, "order": 1},
}
DEFAULT_DATASET = {"cnn": "digits", "rnn": "ptb"}


EVAL_BATCH = 256  # images per evaluation batch (eval mode: the batch size does not change the numbers)


# ---- configuration -----------------------------------------------------------------

@dataclass(frozen=True)
class SearchConfig:
    """What a user asks for; ``None`` means "the recipe's default" (or, when resuming,
    "what the checkpoint's run used")."""

    space: str
    network: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    order: int | None = None
    seed: int | None = None
    lr: float | None = None
    lr_min: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    arch_lr: float | None = None
    arch_weight_decay: float | None = None
    train_portion: float | None = None
    bptt: int | None = None
    limit: int | None = None
    augment: bool | None = None
    sync_bn: bool | None = None
    device: str = "auto"
    threads: int | None = None  # torch intra-op threads; None: the data set's default
    # how the CNN supernet is compiled (passes, memory format); changes speed and memory,
    # not results, so a resumed run may use other options. None: the default passes.
    supernet: SupernetOptions | None = None
    # the search method (genolang.search.method): a published one, its components replaced
    # and its hyperparameters set ("component.parameter" -> value)
    method: str | None = None
    relaxation: str | None = None
    transforms: tuple[str, ...] | None = None
    regularizers: tuple[str, ...] | None = None
    perturbation: str | None = None
    selection: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    warmup: float | None = None
    step_order: str | None = None
    hessian: str | None = None  # second order: 'fd' (finite difference) or 'exact'
    # a search declaration's file (genolang.search.recipe_spec): the space and skeleton
    # names resolve from it; and the declaration's name (the run's recipe.geno keeps it)
    relative_to: str | None = None
    recipe_name: str | None = None

    def method_overrides(self) -> dict[str, Any]:
        """The method overrides given (for ``genolang.search.method.override``)."""
        out = {k: getattr(self, k) for k in ("relaxation", "transforms", "regularizers", "perturbation",
                                             "selection", "warmup", "step_order") if getattr(self, k) is not None}
        if self.params:
            out["params"] = dict(self.params)
        return out


def default_threads(config: SearchConfig, dataset: str) -> int | None:
    """The intra-op thread count a search uses (None: leave torch's setting)."""
    if config.threads is not None:
        return config.threads
    return DATASET_DEFAULTS.get(dataset, {}).get("threads")


@dataclass(frozen=True)
class Recipe:
    """Every setting that decides the numbers of a search (all concrete). Resuming
    requires the same recipe."""

    kind: str
    dataset: str
    data_dir: str | None
    network: str
    epochs: int
    batch_size: int
    order: int
    seed: int
    lr: float
    lr_min: float
    momentum: float
    weight_decay: float
    grad_clip: float
    arch_lr: float
    arch_betas: tuple[float, float]
    arch_weight_decay: float
    train_portion: float
    limit: int | None
    bptt: int = 35
    augment: bool = True  # random crop / flip of both halves' images, as the original
    sync_bn: bool = True  # under torchrun: batch norm over the global batch (else per process)
    eval_batch_size: int = 10
    tar: float = 1e-3  # temporal activation regularisation (recurrent search)
    method: dict[str, Any] = field(default_factory=dict)  # MethodSpec.to_json(); {} means DARTS
    hessian: str = "fd"  # second order: the finite-difference or the exact Hessian-vector product
    nesterov: bool = False  # Nesterov momentum for the weights (GDAS's)

    def method_spec(self) -> MethodSpec:
        from genolang.search.method import DARTS, MethodSpec

        return MethodSpec.from_json(self.method) if self.method else DARTS

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["arch_betas"] = list(self.arch_betas)
        if not d["method"]:
            d["method"] = self.method_spec().to_json()
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Recipe:
        names = {f.name for f in dataclasses.fields(Recipe)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["arch_betas"] = tuple(float(b) for b in kwargs.get("arch_betas", (0.5, 0.999)))
        recipe = Recipe(**kwargs)
        if not recipe.method:  # a checkpoint from before methods: DARTS
            recipe = dataclasses.replace(recipe, method=recipe.method_spec().to_json())
        return recipe


def resolve_recipe(config: SearchConfig, kind: str, saved: Recipe | None = None) -> Recipe:
    """Fill the unset fields of ``config``: from ``saved`` when resuming, else from the
    DARTS recipe for ``kind`` and the data set's defaults."""
    from genolang.search.method import override, preset

    if saved is not None:
        given = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                 if f.name in {r.name for r in dataclasses.fields(Recipe)} - {"method"}
                 and getattr(config, f.name) is not None}
        if "network" in given:
            given["network"] = _absolute_if_path(given["network"])
        if "data_dir" in given:
            given["data_dir"] = _absolute(given["data_dir"])
        spec = preset(config.method).spec() if config.method is not None else saved.method_spec()
        spec = override(spec, **config.method_overrides())
        refuse_order_without_arch_steps(spec, config.order, config.method or saved.method_spec().name)
        return dataclasses.replace(saved, method=spec.to_json(), **given)
    dataset = config.dataset or DEFAULT_DATASET[kind]
    from genolang.data.registry import dataset_help, dataset_kind

    data_kind = dataset_kind(dataset)
    if (data_kind == "text") != (kind == "rnn"):
        want = f"a text data set ({dataset_help('text')})" if kind == "rnn" else \
            f"an image data set ({dataset_help('image')})"
        raise UsageError(f"--dataset {dataset} is {data_kind} data, but a {'recurrent' if kind == 'rnn' else 'CNN'} "
                         f"space needs {want}")
    defaults = DATASET_DEFAULTS[dataset]

    def pick(name: str, default: Any) -> Any:
        value = getattr(config, name)
        return default if value is None else value

    chosen = preset(config.method or "darts")
    spec = override(chosen.spec(), **config.method_overrides())
    refuse_order_without_arch_steps(spec, config.order, config.method or "darts")

    if kind == "cnn":
        base: dict[str, Any] = {"lr": 0.025, "lr_min": 0.001, "momentum": 0.9, "weight_decay": 3e-4, "grad_clip": 5.0,
                                    "arch_lr": 3e-4, "arch_betas": (0.5, 0.999), "arch_weight_decay": 1e-3}
    else:
        # a constant learning rate (no schedule: lr_min is unused), no momentum
        base = {"lr": 20.0, "lr_min": 0.0, "momentum": 0.0, "weight_decay": 5e-7, "grad_clip": 0.25,
                    "arch_lr": 3e-3, "arch_betas": (0.9, 0.999), "arch_weight_decay": 1e-3}
    # the method's settings: as its paper gives them on CIFAR-10; elsewhere its learning
    # rates in the same ratio to DARTS's as in its paper
    # (CNN data only: the papers' ratios are between CNN recipes; a recurrent search keeps
    # DARTS's recurrent recipe, SGD at lr 20 without a schedule)
    paper = dict(chosen.paper_recipe) if dataset == "cifar10" and kind == "cnn" else {}
    cnn = kind == "cnn"
    lr = paper.get("lr", _scaled(base["lr"], chosen.lr_scale if cnn else 1.0))
    arch_lr = paper.get("arch_lr", _scaled(defaults.get("arch_lr", base["arch_lr"]),
                                           chosen.arch_lr_scale if cnn else 1.0))
    lr_min = paper.get("lr_min", chosen.lr_min if chosen.lr_min is not None and cnn else base["lr_min"])
    arch_wd = spec.arch_weight_decay()
    recipe = Recipe(
        kind=kind, dataset=dataset, data_dir=_absolute(config.data_dir),
        network=_absolute_if_path(pick("network", defaults["network"])),
        epochs=pick("epochs", paper.get("epochs", defaults["epochs"])),
        batch_size=pick("batch_size", paper.get("batch_size", defaults["batch_size"])),
        order=pick("order", defaults["order"] if chosen.order == 1 else chosen.order), seed=pick("seed", 0),
        lr=pick("lr", lr), lr_min=pick("lr_min", lr_min),
        momentum=pick("momentum", base["momentum"]),
        weight_decay=pick("weight_decay", paper.get("weight_decay", base["weight_decay"])),
        grad_clip=pick("grad_clip", paper.get("grad_clip", base["grad_clip"])),
        arch_lr=pick("arch_lr", arch_lr),
        arch_betas=(chosen.arch_betas if cnn else None) or base["arch_betas"],
        arch_weight_decay=pick("arch_weight_decay", base["arch_weight_decay"] if arch_wd is None else arch_wd),
        train_portion=pick("train_portion", 0.5), limit=config.limit, bptt=pick("bptt", 35),
        augment=pick("augment", True), sync_bn=pick("sync_bn", True), method=spec.to_json(),
        hessian=pick("hessian", "fd"),
        # a method's Nesterov momentum (GDAS) wherever the weights have momentum (not the recurrent recipe)
        nesterov=pick("nesterov", paper.get("nesterov", chosen.nesterov and base["momentum"] > 0)),
    )
    validate_recipe(recipe)
    return recipe


def refuse_order_without_arch_steps(spec: Any, order: int | None, method: str) -> None:
    """A usage error for ``--order 2`` with a method that never takes an architecture
    step (random search with weight sharing trains the weights only): the order would
    change nothing, and a run that says second order should not silently be first."""
    if order == 2 and not spec.arch_steps:
        raise UsageError(f"order 2 is the order of the architecture step, and method '{method}' takes none (it "
                         "trains the weights only): leave the order out (--order, or a recipe's 'order') or make it 1")


def _scaled(value: float, scale: float) -> float:
    """``value * scale`` without the float's last-digit noise (0.025 x 0.2 is 0.005)."""
    return float(f"{value * scale:.12g}")


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _absolute_if_path(name_or_path: str) -> str:
    """A skeleton given as a file is recorded by its absolute path (so a resumed run
    finds it from any folder); a name stays a name."""
    if name_or_path.endswith(".geno") or "/" in name_or_path or Path(name_or_path).is_file():
        return str(Path(name_or_path).resolve())
    return name_or_path


def validate_recipe(r: Recipe) -> None:
    """Clear errors for settings that cannot work."""
    problems = []
    if r.epochs < 1:
        problems.append(f"--epochs must be at least 1, not {r.epochs}")
    if r.batch_size < 2:
        problems.append(f"--batch-size must be at least 2 (batch norm needs 2 samples), not {r.batch_size}")
    if r.order not in (1, 2):
        problems.append(f"--order must be 1 or 2, not {r.order}")
    if not 0.0 < r.train_portion < 1.0:
        problems.append(f"the train portion must be between 0 and 1, not {r.train_portion}")
    if r.limit is not None and r.limit < 1:
        problems.append(f"--limit must be at least 1, not {r.limit}")
    if r.bptt < 2:
        problems.append(f"--bptt must be at least 2, not {r.bptt}")
    for name in ("lr", "arch_lr"):
        if not getattr(r, name) > 0:
            problems.append(f"--{name.replace('_', '-')} must be positive, not {getattr(r, name)}")
    if r.nesterov and r.momentum <= 0:
        problems.append(f"Nesterov momentum needs a positive momentum, not {r.momentum}")
    if r.hessian not in ("fd", "exact"):
        problems.append(f"--hessian must be fd or exact, not {r.hessian!r}")
    if problems:
        raise UsageError("; ".join(problems))
