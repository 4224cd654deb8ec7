"""The search loop: DARTS's bilevel recipe (paper section 3.1, the original
``train_search.py`` for CNNs and for recurrent cells), a run directory that can be
resumed bit for bit on the CPU, and the found genotype written as a spec file.

CNN recipe: the training images are split in two halves (``train_portion`` 0.5), the
first trains the weights, the second the alphas; every step takes one batch of each,
first an architect step on the alpha batch (with the weight batch for second order),
then an SGD step of the weights (momentum 0.9, weight decay 3e-4, gradient norm
clipped at 5, lr cosine-annealed from 0.025 to 0.001 over the epochs). Both halves are
augmented as for training (as the original); the validation figures of an epoch are
measured on the alpha half without augmentation, in eval mode.

Recurrent recipe (Penn Treebank): the training stream trains the weights and the
*validation* stream (in batches of the same size) the alphas, as the original's
``search_data``; sequence length 35 (17 with probability 0.05, the learning rate
scaled by its length), SGD lr 20 without momentum, weight decay 5e-7, clip 0.25,
temporal activation regularisation 1e-3; alphas by Adam lr 3e-3, betas (0.9, 0.999),
weight decay 1e-3; the epoch's validation perplexity is measured on the validation
stream in batches of 10.

Under torchrun (``genolang.run.dist``) every rank runs this loop on its shard of each
batch: rank r takes positions r, r+W, ... of the epoch's permutation, so the ranks'
batches together are the batch of one process with W times the batch size; batch norm
uses the statistics of that global batch, and the weight and alpha gradients are
averaged across ranks before they are used, so every rank holds the same weights and
alphas and derives the same genotype. Recurrent searches give each rank its own
columns of the token streams. Only rank 0 writes files and reports progress.

The library never prints: it reports through ``progress`` callbacks."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch
import torch.nn.functional as F

from genolang import __version__
from genolang.run import dist
from genolang.ops.norm import globalize_batchnorm
from genolang.spec.check import load_text
from genolang.errors import GenolangError, SpecError, UsageError
from genolang.fsio import write_text
from genolang.ir.alphas import CellAlphas, format_alpha_table
from genolang.spec.lookup import load_named
from genolang.spec.checked import NetworkSpec, SpaceSpec
from genolang.parse import ast as A
from genolang.parse.parser import parse, read_text
from genolang.parse.printer import format_spec
from genolang.run.folder import RunDir, load_checkpoint, save_checkpoint
from genolang.run.runtime import pick_device, rng_state, seed_everything, set_rng_state
from genolang.search.architect import Architect, ArchitectConfig
from genolang.ir.derive import changed_edges, derive_genotype
from genolang.vcs import genotype_hash

if TYPE_CHECKING:
    from genolang.nets.supernet import SupernetOptions

FORMAT = "genolang-search/1"
ALPHAS_LOG = "alphas.jsonl"
RUN_JSON = "run.json"
GENOTYPE = "genotype.geno"

# Per data set: what the command line does not say. 'digits' is sized for a real search
# in a few minutes on 2 CPU cores: 8 epochs of 12 steps (DARTS on CIFAR-10 takes ~20,000
# alpha steps, this ~100), so its alpha learning rate is 10x the paper's 3e-4 for the
# alphas to move visibly; and one intra-op thread (its tensors are tiny: a second thread
# gains little, and costs 10x when another process holds a core).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"network": "small_search", "epochs": 8, "batch_size": 64, "order": 1, "arch_lr": 3e-3,
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


class SearchDiverged(GenolangError):
    """The loss stopped being a finite number."""


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

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["arch_betas"] = list(self.arch_betas)
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "Recipe":
        names = {f.name for f in dataclasses.fields(Recipe)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["arch_betas"] = tuple(float(b) for b in kwargs.get("arch_betas", (0.5, 0.999)))
        return Recipe(**kwargs)


def resolve_recipe(config: SearchConfig, kind: str, saved: Recipe | None = None) -> Recipe:
    """Fill the unset fields of ``config``: from ``saved`` when resuming, else from the
    DARTS recipe for ``kind`` and the data set's defaults."""
    if saved is not None:
        given = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                 if f.name in {r.name for r in dataclasses.fields(Recipe)} and getattr(config, f.name) is not None}
        if "network" in given:
            given["network"] = _absolute_if_path(given["network"])
        if "data_dir" in given:
            given["data_dir"] = _absolute(given["data_dir"])
        return dataclasses.replace(saved, **given)
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

    if kind == "cnn":
        base: dict[str, Any] = dict(lr=0.025, lr_min=0.001, momentum=0.9, weight_decay=3e-4, grad_clip=5.0,
                                    arch_lr=3e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3)
    else:
        # a constant learning rate (no schedule: lr_min is unused), no momentum
        base = dict(lr=20.0, lr_min=0.0, momentum=0.0, weight_decay=5e-7, grad_clip=0.25,
                    arch_lr=3e-3, arch_betas=(0.9, 0.999), arch_weight_decay=1e-3)
    recipe = Recipe(
        kind=kind, dataset=dataset, data_dir=_absolute(config.data_dir),
        network=_absolute_if_path(pick("network", defaults["network"])),
        epochs=pick("epochs", defaults["epochs"]), batch_size=pick("batch_size", defaults["batch_size"]),
        order=pick("order", defaults["order"]), seed=pick("seed", 0),
        lr=pick("lr", base["lr"]), lr_min=pick("lr_min", base["lr_min"]),
        momentum=pick("momentum", base["momentum"]), weight_decay=pick("weight_decay", base["weight_decay"]),
        grad_clip=pick("grad_clip", base["grad_clip"]),
        arch_lr=pick("arch_lr", defaults.get("arch_lr", base["arch_lr"])),
        arch_betas=base["arch_betas"], arch_weight_decay=pick("arch_weight_decay", base["arch_weight_decay"]),
        train_portion=pick("train_portion", 0.5), limit=config.limit, bptt=pick("bptt", 35),
        augment=pick("augment", True), sync_bn=pick("sync_bn", True),
    )
    validate_recipe(recipe)
    return recipe


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
    if problems:
        raise UsageError("; ".join(problems))


# ---- progress ----------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    """One report to the caller: ``kind`` is 'start', 'step', 'epoch' or 'done'."""

    kind: str
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    changes: Mapping[str, int] = field(default_factory=dict)
    message: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class SearchResult:
    """What a finished search produced."""

    genotype: A.Genotype
    text: str
    out: Path | None
    run_dir: Path
    metrics: Mapping[str, Any]
    alphas: Mapping[str, CellAlphas]


# ---- helpers -----------------------------------------------------------------------

def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _display_path(path: str | Path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _same_space(a: SpaceSpec, b: SpaceSpec) -> bool:
    return dataclasses.replace(a, path="") == dataclasses.replace(b, path="")


def _same_network(a: NetworkSpec, b: NetworkSpec) -> bool:
    return dataclasses.replace(a, path="") == dataclasses.replace(b, path="")


def genotype_name(path: str | Path | None, fallback: str = "found") -> str:
    """A genotype name from a file name: ``found.geno`` -> ``found``."""
    if path is None:
        return fallback
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(path).stem)
    return stem if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", stem) else fallback


HASH_SLOT = "\x00genotype-hash"  # a header line replaced by the genotype's canonical hash


def genotype_file_text(tree: A.Genotype, space: SpaceSpec, target: str | Path, header: list[str]) -> str:
    """The canonical text of a spec file holding ``tree`` at ``target``. The space is
    referred to by name when that name resolves, from ``target``'s folder, to the same
    space; otherwise the space declaration is copied into the file so the genotype
    always checks. A ``HASH_SLOT`` line of ``header`` becomes the genotype's canonical
    hash (``genolang.vcs``). The text is parsed and checked before it is returned."""
    bare = [line for line in header if line != HASH_SLOT]
    decls: tuple[A.Decl, ...] = (tree,)
    try:
        checked = load_text(format_spec(A.SpecFile(decls), header_comments=bare), str(target))
        local = _same_space(checked.genotypes[tree.name.text].space, space)
    except SpecError:
        local = False
    if not local:
        source = parse(read_text(space.path), space.path)
        decl = source.find(space.name)
        assert isinstance(decl, A.Space)
        decls = (_strip_spans(decl), tree)
    # raises SpecError if the text does not check: a bug, never a half-valid file
    geno = load_text(format_spec(A.SpecFile(decls), header_comments=bare), str(target)).genotypes[tree.name.text]
    digest = f"genotype hash: {genotype_hash(geno)}"
    return format_spec(A.SpecFile(decls), header_comments=[digest if line == HASH_SLOT else line for line in header])


def _strip_spans(space: A.Space) -> A.Space:
    """A copy of a parsed space without source positions (so the printer does not try to
    place comments of another file)."""
    def prop(p: A.Prop) -> A.Prop:
        return A.Prop(A.Name(p.key.text), tuple(A.Value(v.value) for v in p.values),
                      A.Name(p.qualifier.text) if p.qualifier is not None else None)

    cells = tuple(A.CellDecl(A.Name(c.name.text), tuple(prop(p) for p in c.props)) for c in space.cells)
    derive = A.Derive(tuple(prop(p) for p in space.derive.props)) if space.derive is not None else None
    return A.Space(A.Name(space.name.text), tuple(prop(p) for p in space.props), cells, derive)


# ---- the shared driver -------------------------------------------------------------

class _Search:
    """State shared by the CNN and recurrent loops: specs, run dir, checkpointing."""

    def __init__(self, config: SearchConfig, run_dir: Path, resume: bool, progress: ProgressFn | None) -> None:
        self.config = config
        self.progress = progress or (lambda p: None)
        self.run = RunDir(run_dir)
        self.space = self._load_space(config.space)
        self.space_text = read_text(self.space.path)
        self.kind = self.space.kind
        self.saved: dict[str, Any] | None = None
        if resume:
            if not self.run.checkpoint.is_file():
                raise UsageError(f"--resume: {self.run.path} holds no checkpoint ({self.run.checkpoint.name}); "
                                 "run without --resume to start a search there")
            self.saved = load_checkpoint(self.run.checkpoint)
            if self.saved.get("format") != FORMAT:
                raise UsageError(f"{self.run.checkpoint}: not a search checkpoint (format "
                                 f"{self.saved.get('format')!r}, expected {FORMAT!r}); resume it with the command "
                                 "that wrote it")
            try:
                saved_recipe = Recipe.from_json(self.saved["recipe"])
            except (KeyError, TypeError, ValueError) as err:
                raise UsageError(f"{self.run.checkpoint}: incomplete checkpoint ({err}); start a new run") from None
            self.recipe = resolve_recipe(config, self.kind, saved_recipe)
            self._check_resume(saved_recipe)
        else:
            if self.run.checkpoint.is_file():
                raise UsageError(f"{self.run.path} already holds a search checkpoint; pass --resume to continue it "
                                 "or choose another --run-dir")
            self.recipe = resolve_recipe(config, self.kind)
        self.network = self._load_network(self.recipe.network)
        self.network_text = read_text(self.network.path)
        self.world, self.device = dist.join(config.device)
        if not self.world.is_main:
            self.progress = lambda p: None
        # steps between progress reports and NaN checks: each waits for a GPU to finish
        self.sync_every = 1 if self.device.type == "cpu" else 20
        if self.saved is not None and int(self.saved.get("world_size", 1)) != self.world.size:
            raise UsageError(f"--resume: {self.run.checkpoint} was written by {self.saved.get('world_size', 1)} "
                             f"process(es); resume it with the same number of processes (now {self.world.size})")
        self.previous: A.Genotype | None = None

    # -- specs -------------------------------------------------------------------
    @staticmethod
    def _load_space(name_or_path: str) -> SpaceSpec:
        space = load_named("space", name_or_path)
        assert isinstance(space, SpaceSpec)
        return space

    def _load_network(self, name_or_path: str) -> NetworkSpec:
        network = load_named("network", name_or_path, self.space.path)
        assert isinstance(network, NetworkSpec)
        if network.kind != self.kind:
            want = "'stem = embedding' (e.g. ptb_search)" if self.kind == "rnn" else "a CNN stem (e.g. small_search)"
            raise UsageError(f"network '{network.name}' ({network.path}) is a "
                             f"{'recurrent' if network.kind == 'rnn' else 'CNN'} skeleton, but space "
                             f"'{self.space.name}' is {'recurrent' if self.kind == 'rnn' else 'a CNN space'}; "
                             f"use a skeleton with {want}")
        return network

    def _check_resume(self, saved: Recipe) -> None:
        assert self.saved is not None
        diffs = [f"{f.name}={getattr(saved, f.name)!r} (now {getattr(self.recipe, f.name)!r})"
                 for f in dataclasses.fields(Recipe) if getattr(saved, f.name) != getattr(self.recipe, f.name)]
        if diffs:
            raise UsageError(f"--resume: {self.run.checkpoint} was made with " + ", ".join(diffs)
                             + "; resume with the same options (or leave them out), or start a new --run-dir")
        then = self._saved_spec("space", self.space.path, "space")
        if not _same_space(then, self.space):  # type: ignore[arg-type]
            raise UsageError(f"--resume: space '{self.space.name}' ({self.space.path}) changed since the checkpoint "
                             "was written; restore it or start a new --run-dir")

    def _saved_spec(self, kind: str, path: str, what: str) -> Any:
        """The ``kind`` spec (space or network) whose text the checkpoint keeps, parsed as
        if at ``path``, the current file's (for its relative names)."""
        assert self.saved is not None
        try:
            return load_text(str(self.saved[f"{kind}_text"]), path).single(kind)
        except (KeyError, SpecError):
            raise UsageError(f"{self.run.checkpoint}: its copy of the {what} does not check; start a new run") from None

    def check_network_unchanged(self) -> None:
        if self.saved is None:
            return
        then = self._saved_spec("network", self.network.path, "skeleton")
        if not _same_network(then, self.network):  # type: ignore[arg-type]
            raise UsageError(f"--resume: skeleton '{self.network.name}' ({self.network.path}) changed since the "
                             "checkpoint was written; restore it or start a new --run-dir")

    # -- run directory -----------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        return {
            "space": _display_path(self.space.path), "space_name": self.space.name,
            "space_sha256": sha256_file(self.space.path),
            "network": self.network.name, "network_path": _display_path(self.network.path),
            "dataset": self.recipe.dataset, "order": self.recipe.order, "seed": self.recipe.seed,
            "epochs": self.recipe.epochs, "recipe": self.recipe.to_json(),
            "device": str(self.device), "torch": torch.__version__, "genolang": __version__,
            "world_size": self.world.size,
        }

    def write_run_json(self, **extra: Any) -> None:
        if not self.world.is_main:
            return
        data: dict[str, Any] = {}
        if (self.run.path / RUN_JSON).is_file():
            try:
                data = dict(self.run.read_json(RUN_JSON))
            except UsageError:
                data = {}
        data.update(self.provenance())
        data.update(extra)
        self.run.write_json(RUN_JSON, data)

    def header(self, title: str, metrics: Mapping[str, Any], alphas: Mapping[str, CellAlphas]) -> list[str]:
        r = self.recipe
        lines = [
            title,
            f"space: {_display_path(self.space.path)} (space {self.space.name}, sha256 {sha256_file(self.space.path)})",
            f"skeleton: {self.network.name} ({_display_path(self.network.path)})",
            f"dataset: {r.dataset}; order {r.order}; seed {r.seed}; epochs {r.epochs}; batch {r.batch_size}"
            + (f"; limit {r.limit} steps per epoch" if r.limit else ""),
        ]
        if "valid_acc" in metrics:
            lines.append(f"final validation accuracy: {100 * metrics['valid_acc']:.2f}% "
                         f"(loss {metrics['valid_loss']:.4f}, epoch {metrics['epoch']})")
        if "valid_ppl" in metrics:
            lines.append(f"final validation perplexity: {metrics['valid_ppl']:.2f} (epoch {metrics['epoch']})")
        lines.append(HASH_SLOT)
        lines += ["", "softmax alphas at the end of the search:"]
        lines += format_alpha_table(alphas).splitlines()
        lines.append("")
        return lines

    def save(self, epoch: int, model: torch.nn.Module, weight_opt: torch.optim.Optimizer, architect: Architect,
             scheduler: Any, sampler: torch.Generator | None) -> None:
        state = {
            "format": FORMAT, "epoch": epoch, "recipe": self.recipe.to_json(),
            "space_text": self.space_text, "space_path": self.space.path,
            "network_text": self.network_text, "network_path": self.network.path,
            "model": model.state_dict(), "weight_optimizer": weight_opt.state_dict(),
            "arch_optimizer": architect.optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(), "sampler": sampler.get_state() if sampler is not None else None,
            "world_size": self.world.size,
        }
        ranks_rng = dist.gather_objects(state["rng"], self.world)  # a collective: every rank takes part
        if self.world.distributed:
            state["rng_ranks"] = ranks_rng
        if self.world.is_main:
            save_checkpoint(self.run.checkpoint, state)
        dist.barrier(self.world)

    def restore(self, model: torch.nn.Module, weight_opt: torch.optim.Optimizer, architect: Architect,
                scheduler: Any, sampler: torch.Generator | None) -> int:
        """Load the checkpoint into the fresh objects; returns the epochs done."""
        assert self.saved is not None
        s = self.saved
        where = self.run.checkpoint
        try:
            model.load_state_dict(s["model"])
            weight_opt.load_state_dict(s["weight_optimizer"])
            architect.optimizer.load_state_dict(s["arch_optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(s["scheduler"])
            if sampler is not None:
                sampler.set_state(s["sampler"])
            set_rng_state(s["rng_ranks"][self.world.rank] if self.world.distributed else s["rng"])
            epoch = int(s["epoch"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"{where}: does not match this search ({first[:300]}); resume with the space, "
                             "skeleton and data it was made with, or start a new --run-dir") from None
        if not 0 <= epoch <= self.recipe.epochs:
            raise UsageError(f"{where}: records epoch {epoch} of a {self.recipe.epochs}-epoch search")
        if self.world.is_main:
            for name in ("metrics.jsonl", ALPHAS_LOG):
                self.run.truncate_jsonl(name, epoch)
        dist.barrier(self.world)
        return epoch

    def end_epoch(self, epoch: int, metrics: dict[str, Any], alphas: Mapping[str, CellAlphas]) -> A.Genotype:
        """Write epoch-NNN.geno, metrics and alphas of a finished epoch."""
        tree = derive_genotype(self.space, alphas, f"epoch_{epoch:03d}")
        if not self.world.is_main:
            return tree
        path = self.run.path / f"epoch-{epoch:03d}.geno"
        header = self.header(f"genolang search: genotype derived after epoch {epoch} of {self.recipe.epochs}",
                             metrics, alphas)
        self.run.write_text(path.name, genotype_file_text(tree, self.space, path, header))
        self.run.log_metrics(metrics)
        self.run.write_jsonl(ALPHAS_LOG, [*self.run.read_jsonl(ALPHAS_LOG),
                                          {"epoch": epoch, "cells": {c: a.to_json() for c, a in alphas.items()}}])
        return tree

    def finish(self, out: Path | None, metrics: Mapping[str, Any], alphas: Mapping[str, CellAlphas]) -> SearchResult:
        """Write the found genotype (run_dir/genotype.geno and ``out``)."""
        name = genotype_name(out)
        tree = derive_genotype(self.space, alphas, name)
        order = "first" if self.recipe.order == 1 else "second"
        header = self.header(f"Found by 'genolang search' (DARTS, {order} order).", metrics, alphas)
        text = genotype_file_text(tree, self.space, self.run.path / GENOTYPE, header)
        if self.world.is_main:
            self.run.write_text(GENOTYPE, text)
        if out is not None:
            out_text = genotype_file_text(tree, self.space, out, header)
            if self.world.is_main:
                write_text(out, out_text)
            text = out_text
        self.write_run_json(status="done", finished=_now(), final=dict(metrics),
                            out=str(out) if out is not None else None)
        return SearchResult(tree, text, out, self.run.path, metrics, alphas)

    def changes(self, alphas: Mapping[str, CellAlphas]) -> dict[str, int]:
        return changed_edges(self.previous, derive_genotype(self.space, alphas, "current"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_finite(value: torch.Tensor, what: str, epoch: int, step: int, run: RunDir) -> None:
    if not bool(torch.isfinite(value).all()):
        last = run.checkpoint if run.checkpoint.is_file() else None
        kept = (f"the last good checkpoint ({last}, epoch {epoch - 1}) is kept; lower --lr/--arch-lr or change "
                "--seed, then start a new --run-dir") if last else "no epoch had finished, so there is no checkpoint"
        raise SearchDiverged(f"the {what} became {float(value.detach().flatten()[0])} at epoch {epoch}, step {step}; "
                             f"the search stopped: {kept}")


def _weight_step(model: torch.nn.Module, loss: torch.Tensor, weights: list[torch.nn.Parameter],
                 optimizer: torch.optim.Optimizer, clip: float, world: dist.World = dist.SINGLE) -> None:
    """Gradients for the weights only (alphas get none), averaged across ranks, clip,
    SGD step."""
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    for p, g in zip(weights, grads):
        p.grad = g
    dist.all_reduce_grads_(weights, world)
    torch.nn.utils.clip_grad_norm_(weights, clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


# ---- CNN ---------------------------------------------------------------------------

def _batches(n: int, batch: int, generator: torch.Generator,
             world: dist.World = dist.SINGLE) -> list[torch.Tensor]:
    """A random order of ``range(n)`` cut into batches; a last batch of one sample is
    dropped (batch norm cannot train on it). With several ranks, this rank's share:
    positions r, r+W, ... of the permutation (padded to a multiple of W), so the
    ranks' i-th batches together are the i-th batch of W times the size."""
    perm = torch.randperm(n, generator=generator)
    if world.distributed:
        total = -(-n // world.size) * world.size
        perm = torch.cat([perm, perm[: total - n]])[world.rank::world.size]
    out = [perm[i:i + batch] for i in range(0, len(perm), batch)]
    return [b for b in out if len(b) > 1]


def _stack(dataset: Any, idx: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[int(i)] for i in idx]
    return torch.stack([x for x, _ in items]).to(device), torch.stack([y for _, y in items]).to(device)


def _search_cnn(s: _Search, out: Path | None) -> SearchResult:
    from genolang.nets.supernet import build_supernet
    from genolang.data.images import load_images

    r = s.recipe
    data = load_images(r.dataset, r.data_dir)
    n = len(data.train_y)
    split = int(math.floor(n * r.train_portion))
    if split < 2 or n - split < 2:
        raise UsageError(f"{r.dataset} has {n} training images: too few to split for search")
    train_set = data.dataset("train", augment=r.augment, cutout=0, indices=torch.arange(0, split))
    search_set = data.dataset("train", augment=r.augment, cutout=0, indices=torch.arange(split, n))
    valid_set = data.dataset("train", augment=False, indices=torch.arange(split, n))

    seed_everything(r.seed)
    model = build_supernet(s.space, s.network, in_channels=data.in_channels, input_size=data.input_size,
                           classes=data.classes, options=s.config.supernet).to(s.device)
    world = _distribute(model, s)
    s.check_network_unchanged()
    weights = model.weight_parameters()
    weight_opt = torch.optim.SGD(weights, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(weight_opt, T_max=r.epochs, eta_min=r.lr_min)
    architect = Architect(model, weight_opt, ArchitectConfig(r.order, r.arch_lr, r.arch_betas, r.arch_weight_decay),
                          reduce=lambda grads: dist.all_reduce_mean_(grads, world))
    sampler = torch.Generator().manual_seed(r.seed)
    start = s.restore(model, weight_opt, architect, scheduler, sampler) if s.saved is not None else 0
    if start == 0:
        s.write_run_json(started=_now(), status="running")
    s.previous = _previous_genotype(s, model)

    metrics: dict[str, Any] = dict(s.run.metrics()[-1]) if start else {}
    steps_hint = len(_batches(split, r.batch_size, torch.Generator().manual_seed(0), world))
    steps = min(steps_hint, r.limit) if r.limit else steps_hint
    s.progress(Progress("start", start, r.epochs, 0, steps, message=f"{sum(p.numel() for p in weights):,} weights"))
    for epoch in range(start + 1, r.epochs + 1):
        t0 = time.perf_counter()
        lr = float(scheduler.get_last_lr()[0])
        model.train()
        train_batches = _batches(split, r.batch_size, sampler, world)
        search_batches = _batches(n - split, r.batch_size, sampler, world)
        if r.limit:
            train_batches = train_batches[: r.limit]
        sums = torch.zeros(3, dtype=torch.float64, device=s.device)  # loss x n, correct, n
        for step, idx in enumerate(train_batches, 1):
            x, y = _stack(train_set, idx, s.device)
            xv, yv = _stack(search_set, search_batches[(step - 1) % len(search_batches)], s.device)
            norm = architect.step(lambda call: F.cross_entropy(call(xv), yv),
                                  (lambda call: F.cross_entropy(call(x), y)) if r.order == 2 else None, lr)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            synced = step % s.sync_every == 0 or step == len(train_batches)
            if synced:  # on CUDA, only every few steps: each check waits for the device
                _check_finite(norm, "architecture gradient", epoch, step, s.run)
                _check_finite(loss, "training loss", epoch, step, s.run)
            _weight_step(model, loss, weights, weight_opt, r.grad_clip, world)
            with torch.no_grad():
                sums += torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double(),
                                     sums.new_tensor(len(y))])
            if synced and s.world.is_main:
                total_loss, total_correct, total_seen = (float(v) for v in sums)
                s.progress(Progress("step", epoch, r.epochs, step, len(train_batches),
                                    {"loss": total_loss / total_seen, "acc": total_correct / total_seen},
                                    s.changes(model.cell_alphas())))
        total_loss, total_correct, total_seen = (float(v) for v in sums)
        scheduler.step()
        valid_loss, valid_acc = _evaluate_cnn(model, valid_set, EVAL_BATCH, s.device, r.limit, world)
        total_loss, total_correct, total_seen = dist.reduce_sums([total_loss, total_correct, total_seen], world,
                                                                 s.device)
        metrics = {"epoch": epoch, "train_loss": total_loss / total_seen, "train_acc": total_correct / total_seen,
                   "valid_loss": valid_loss, "valid_acc": valid_acc, "lr": lr,
                   "seconds": round(time.perf_counter() - t0, 3)}
        alphas = model.cell_alphas()
        changes = s.changes(alphas)
        s.previous = s.end_epoch(epoch, metrics, alphas)
        s.save(epoch, model, weight_opt, architect, scheduler, sampler)
        s.progress(Progress("epoch", epoch, r.epochs, len(train_batches), len(train_batches), metrics, changes))
    result = s.finish(out, metrics, model.cell_alphas())
    s.progress(Progress("done", r.epochs, r.epochs, metrics=metrics, message=str(result.out or result.run_dir)))
    return result


@torch.no_grad()
def _evaluate_cnn(model: torch.nn.Module, dataset: Any, batch: int, device: torch.device,
                  limit: int | None, world: dist.World = dist.SINGLE) -> tuple[float, float]:
    """Loss and accuracy in eval mode; with several ranks each evaluates every W-th
    batch and the sums are reduced."""
    model.eval()
    loss = correct = seen = 0.0
    n = len(dataset)
    for b, i in enumerate(range(0, n, batch)):
        if limit and b >= limit:
            break
        if b % world.size != world.rank:
            continue
        x, y = _stack(dataset, torch.arange(i, min(i + batch, n)), device)
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        seen += len(y)
    model.train()
    loss, correct, seen = dist.reduce_sums([loss, correct, seen], world, device)
    return loss / seen, correct / seen


def _distribute(model: torch.nn.Module, s: "_Search") -> dist.World:
    """Prepare a supernet for data parallelism: batch norm over the global batch, the
    same starting weights on every rank, and per-rank random streams (augmentation,
    dropout) from here on. A no-op in a single process."""
    world = s.world
    if world.distributed:
        if s.recipe.sync_bn:
            globalize_batchnorm(model)
        dist.broadcast_([*model.parameters(), *model.buffers()], world)
        # torch's generator (augmentation, dropout) differs per rank from here on; python's,
        # which picks the recurrent sequence lengths, stays seeded alike on every rank
        torch.manual_seed(s.recipe.seed + 7919 * world.rank)
    return world


def _previous_genotype(s: _Search, model: Any) -> A.Genotype:
    """The genotype the progress bar compares against at the start: the one of the
    restored alphas (the last finished epoch's), or of the initial alphas."""
    return derive_genotype(s.space, model.cell_alphas(), "previous")


# ---- recurrent -----------------------------------------------------------------------

def _search_rnn(s: _Search, out: Path | None) -> SearchResult:
    from genolang.nets.supernet_rnn import build_rnn_supernet
    from genolang.data.text import batchify, get_batch, load_corpus

    r = s.recipe
    corpus = load_corpus(r.dataset, r.data_dir)
    seed_everything(r.seed)
    model = build_rnn_supernet(s.space, s.network, corpus.ntokens).to(s.device)
    world = _distribute(model, s)
    s.check_network_unchanged()
    # with W ranks, the streams are cut into W x batch columns and rank r takes its own
    cols = slice(world.rank * r.batch_size, (world.rank + 1) * r.batch_size)
    train_data = batchify(corpus.train, r.batch_size * world.size)[:, cols].contiguous().to(s.device)
    search_data = batchify(corpus.valid, r.batch_size * world.size)[:, cols].contiguous().to(s.device)
    val_data = batchify(corpus.valid, r.eval_batch_size).to(s.device)
    weights = model.weight_parameters()
    weight_opt = torch.optim.SGD(weights, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    architect = Architect(model, weight_opt, ArchitectConfig(r.order, r.arch_lr, r.arch_betas, r.arch_weight_decay),
                          reduce=lambda grads: dist.all_reduce_mean_(grads, world))
    start = s.restore(model, weight_opt, architect, None, None) if s.saved is not None else 0
    if start == 0:
        s.write_run_json(started=_now(), status="running")
    s.previous = _previous_genotype(s, model)
    ntok = corpus.ntokens

    metrics: dict[str, Any] = dict(s.run.metrics()[-1]) if start else {}
    steps = max(1, (train_data.size(0) - 2) // r.bptt)
    steps = min(steps, r.limit) if r.limit else steps
    s.progress(Progress("start", start, r.epochs, 0, steps, message=f"{sum(p.numel() for p in weights):,} weights"))
    for epoch in range(start + 1, r.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        hidden = model.init_hidden(r.batch_size)
        hidden_valid = [model.init_hidden(r.batch_size)]
        loss_sum = torch.zeros((), dtype=torch.float64, device=s.device)
        total_tokens = 0.0
        i = step = 0
        while i < train_data.size(0) - 1 - 1 and not (r.limit and step >= r.limit):
            step += 1
            bptt = r.bptt if random.random() < 0.95 else r.bptt / 2.0
            seq_len = int(bptt)
            base_lr = weight_opt.param_groups[0]["lr"]
            weight_opt.param_groups[0]["lr"] = base_lr * seq_len / r.bptt
            xv, yv = get_batch(search_data, i % (search_data.size(0) - 1), r.bptt)
            x, y = get_batch(train_data, i, seq_len)
            hidden = hidden.detach()
            hv0 = hidden_valid[0].detach()
            h0 = hidden

            def valid_obj(call: Callable[..., Any]) -> torch.Tensor:
                log_prob, h_next = call(xv, hv0)
                hidden_valid[0] = h_next
                return F.nll_loss(log_prob.view(-1, ntok), yv)

            def train_obj(call: Callable[..., Any]) -> torch.Tensor:
                log_prob, _ = call(x, h0)
                return F.nll_loss(log_prob.view(-1, ntok), y)

            norm = architect.step(valid_obj, train_obj if r.order == 2 else None,
                                  weight_opt.param_groups[0]["lr"])
            hidden_valid[0] = hidden_valid[0].detach()
            log_prob, hidden, raw, _ = model(x, hidden, return_h=True)
            raw_loss = F.nll_loss(log_prob.view(-1, ntok), y)
            synced = step % s.sync_every == 0
            if synced:  # on CUDA, only every few steps: each check waits for the device
                _check_finite(norm, "architecture gradient", epoch, step, s.run)
                _check_finite(raw_loss, "training loss", epoch, step, s.run)
            loss = raw_loss + r.tar * (raw[1:] - raw[:-1]).pow(2).mean()
            _weight_step(model, loss, weights, weight_opt, r.grad_clip, world)
            weight_opt.param_groups[0]["lr"] = base_lr
            loss_sum += raw_loss.detach().double() * len(y)
            total_tokens += len(y)
            i += seq_len
            if synced and s.world.is_main:
                avg = float(loss_sum) / total_tokens
                s.progress(Progress("step", epoch, r.epochs, step, steps, {"loss": avg, "ppl": _ppl(avg)},
                                    s.changes(model.cell_alphas())))
        total_loss = float(loss_sum)
        _check_finite(loss_sum, "training loss", epoch, step, s.run)
        valid_loss = _evaluate_rnn(model, val_data, r.eval_batch_size, r.bptt, ntok, r.limit)
        total_loss, total_tokens = dist.reduce_sums([total_loss, total_tokens], world, s.device)
        train_loss = total_loss / max(total_tokens, 1)
        metrics = {"epoch": epoch, "train_loss": train_loss, "train_ppl": _ppl(train_loss),
                   "valid_loss": valid_loss, "valid_ppl": _ppl(valid_loss),
                   "lr": float(weight_opt.param_groups[0]["lr"]), "seconds": round(time.perf_counter() - t0, 3)}
        alphas = model.cell_alphas()
        changes = s.changes(alphas)
        s.previous = s.end_epoch(epoch, metrics, alphas)
        s.save(epoch, model, weight_opt, architect, None, None)
        s.progress(Progress("epoch", epoch, r.epochs, step, steps, metrics, changes))
    result = s.finish(out, metrics, model.cell_alphas())
    s.progress(Progress("done", r.epochs, r.epochs, metrics=metrics, message=str(result.out or result.run_dir)))
    return result


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 50.0))


@torch.no_grad()
def _evaluate_rnn(model: Any, data: torch.Tensor, batch: int, bptt: int, ntok: int, limit: int | None) -> float:
    from genolang.data.text import get_batch

    model.eval()
    hidden = model.init_hidden(batch)
    total = 0.0
    tokens = 0
    for b, i in enumerate(range(0, data.size(0) - 1, bptt)):
        if limit and b >= limit:
            break
        x, y = get_batch(data, i, bptt)
        log_prob, hidden = model(x, hidden)
        total += float(F.nll_loss(log_prob.view(-1, ntok), y, reduction="sum"))
        tokens += len(y)
    model.train()
    return total / max(tokens, 1)


# ---- entry point ---------------------------------------------------------------------

def default_run_dir() -> Path:
    """``runs/search-<UTC timestamp>`` under the current folder."""
    return Path("runs") / f"search-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def run_search(config: SearchConfig, *, run_dir: str | Path | None = None, out: str | Path | None = None,
               resume: bool = False, progress: ProgressFn | None = None) -> SearchResult:
    """Search ``config.space`` and write the found genotype to ``out`` (and to
    ``run_dir/genotype.geno``). With ``resume``, continue the run in ``run_dir`` from its
    last checkpoint; the result is bit-identical to an uninterrupted run on the CPU."""
    if resume and run_dir is None:
        raise UsageError("--resume needs --run-dir: the folder of the search to continue")
    if run_dir is None:
        # every rank must use rank 0's folder: the time in its name may differ across ranks
        world = dist.init(pick_device(config.device))
        path = Path(str(dist.broadcast_object(str(default_run_dir()), world)))
    else:
        path = Path(run_dir)
    search = _Search(config, path, resume, progress)  # the folder is made by the first file written to it
    if search.kind == "rnn" and config.supernet is not None:
        raise UsageError(f"--passes and --no-opt optimize CNN supernets; space {search.space.name} is recurrent")
    target = Path(out) if out is not None else None
    threads = default_threads(config, search.recipe.dataset)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, not {threads}")
    before = torch.get_num_threads()
    if threads is not None and search.device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        if search.kind == "rnn":
            return _search_rnn(search, target)
        return _search_cnn(search, target)
    except SearchDiverged as err:
        search.write_run_json(status="diverged", error=str(err), finished=_now())
        raise
    except KeyboardInterrupt:
        if (search.run.path / RUN_JSON).is_file():
            search.write_run_json(status="interrupted", finished=_now())
        raise
    finally:
        torch.set_num_threads(before)
        dist.shutdown()
