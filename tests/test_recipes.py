"""The shipped GPU recipes (recipes/*.sh): each script's command line parses, and the
recipe it asks for is the DARTS paper's, every value (recipes/README.md). The
scripts run against a stand-in for genolang that records its arguments."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from genolang.cli import main
from genolang.search.recipe import SearchConfig, resolve_recipe
from genolang.spec.lookup import load_named
from genolang.train.recipe import ImageRecipe, default_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
RECORD = "import json, os, sys\njson.dump(sys.argv[1:], open(os.environ['ARGS_OUT'], 'w'))\n"


def invoke(script: str, tmp: Path, **env: str) -> tuple[str, dict[str, Any]]:
    """Run ``script`` with genolang replaced by a recorder; the subcommand and its
    parsed parameters (through the real command's click parser)."""
    fake = tmp / "genolang"
    fake.write_text(f"#!{sys.executable}\n{RECORD}")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp / "args.json"
    proc = subprocess.run(["bash", str(RECIPES / script)], cwd=tmp, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GENOLANG": str(fake), "ARGS_OUT": str(out), **env})
    assert proc.returncode == 0, proc.stderr
    args = json.loads(out.read_text())
    command = main.get_command(None, args[0])  # type: ignore[arg-type]
    assert command is not None, args[0]
    ctx = command.make_context(args[0], args[1:])
    return args[0], dict(ctx.params)


def test_the_search_recipe_is_the_papers(tmp_path: Path) -> None:
    name, p = invoke("darts_cifar10_search.sh", tmp_path, DATA="/data")
    assert name == "search" and p["space"] == "darts_cnn" and p["device"] == "cuda" and p["data_dir"] == "/data"
    assert (p["order"], p["seed"]) == ("2", 0)
    config = SearchConfig(space=p["space"], network=p["network"], dataset=p["dataset"], epochs=p["epochs"],
                          batch_size=p["batch_size"], order=int(p["order"]), seed=p["seed"], lr=p["lr"],
                          arch_lr=p["arch_lr"])
    r = resolve_recipe(config, "cnn")
    assert (r.network, r.dataset, r.epochs, r.batch_size, r.train_portion) == ("cifar_search", "cifar10", 50, 64, 0.5)
    assert (r.lr, r.lr_min, r.momentum, r.weight_decay, r.grad_clip) == (0.025, 0.001, 0.9, 3e-4, 5.0)
    assert (r.arch_lr, r.arch_betas, r.arch_weight_decay) == (3e-4, (0.5, 0.999), 1e-3)
    net = load_named("network", "cifar_search")
    assert (net.channels, net.layers) == (16, 8)
    _, first = invoke("darts_cifar10_search.sh", tmp_path, DATA="/data", ORDER="1", SEED="3", RESUME="1")
    assert (first["order"], first["seed"], first["resume"]) == ("1", 3, True)


def test_the_retraining_recipe_is_the_papers(tmp_path: Path) -> None:
    name, p = invoke("darts_cifar10_train.sh", tmp_path, DATA="/data")
    assert name == "train" and p["genotype"] == "darts_v2" and p["network"] == "cifar" and p["device"] == "cuda"
    options = {k: v for k, v in p.items() if k in set(ImageRecipe.__dataclass_fields__) and v is not None}
    r = default_recipe("cifar10", load_named("network", "cifar")).replace(**options)
    assert isinstance(r, ImageRecipe)
    assert (r.epochs, r.batch_size, r.lr, r.lr_min, r.schedule, r.momentum, r.weight_decay, r.grad_clip) == \
        (600, 96, 0.025, 0.0, "cosine", 0.9, 3e-4, 5.0)
    assert (r.cutout, r.augment, r.aux_weight, r.drop_path) == (16, True, 0.4, 0.2)
    net = load_named("network", "cifar")
    assert (net.channels, net.layers, net.auxiliary_cell()) == (36, 20, 13)


def test_a_recipe_without_data_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATA"}
    proc = subprocess.run(["bash", str(RECIPES / "darts_cifar10_search.sh")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode != 0 and "set DATA to the folder holding cifar-10-batches-py" in proc.stderr


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="bash scripts")
