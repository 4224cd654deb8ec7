"""Retraining: recipes, a short real run on digits, bit-identical resume (CNN and
recurrent), clean failures (mismatched resume, NaN loss), evaluation of saved models."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from _cli import fails_cleanly, fails_with_usage, run
from _train_data import write_ptb, write_skeletons
from genolang.data.images import ImageData
from genolang.run.diverged import Diverged as TrainingDiverged
from genolang.run.folder import RunDir
from genolang.run.progress import Progress, ProgressFn
from genolang.spec.lookup import load_named
from genolang.train import ImageRecipe, TextRecipe, default_recipe, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> ImageData:
    from genolang.data import load_images

    return load_images("digits")


@pytest.fixture
def skeletons(tmp_path: Path) -> tuple[Path, Path]:
    return write_skeletons(tmp_path / "specs")


def without_seconds(run_dir: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in RunDir(run_dir).metrics()]


def same_state(a: Path, b: Path) -> None:
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa["state_dict"].keys() == sb["state_dict"].keys()
    for key, value in sa["state_dict"].items():
        assert torch.equal(value, sb["state_dict"][key]), key
    if "train" in sa:
        oa, ob = sa["train"]["optimizer"]["state"], sb["train"]["optimizer"]["state"]
        assert oa.keys() == ob.keys()
        for i in oa:
            for k, v in oa[i].items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(ob[i][k])), (i, k)


class Stop(Exception):
    """Raised by a callback to interrupt a run after an epoch."""


def stop_after(epoch: int) -> ProgressFn:
    def callback(event: Progress) -> None:
        if event.kind == "epoch_end" and event.epoch == epoch:
            raise Stop

    return callback


# ---- recipes ------------------------------------------------------------------------

def test_default_recipes_follow_darts() -> None:
    cifar = default_recipe("cifar10", load_named("network", "cifar"))
    assert isinstance(cifar, ImageRecipe)
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.momentum, cifar.weight_decay, cifar.schedule) == \
        (600, 96, 0.025, 0.9, 3e-4, "cosine")
    assert (cifar.cutout, cifar.aux_weight, cifar.drop_path, cifar.grad_clip, cifar.label_smoothing) == \
        (16, 0.4, 0.2, 5.0, 0.0)
    imagenet = default_recipe("cifar10", load_named("network", "imagenet"))
    assert isinstance(imagenet, ImageRecipe)
    assert (imagenet.epochs, imagenet.batch_size, imagenet.lr, imagenet.schedule, imagenet.decay,
            imagenet.weight_decay, imagenet.label_smoothing) == (250, 128, 0.1, "step", 0.97, 3e-5, 0.1)
    small = default_recipe("digits", load_named("network", "small"))
    assert (small.epochs, small.batch_size) == (30, 64)
    fashion = default_recipe("fashion-mnist", load_named("network", "small_search"))
    assert isinstance(fashion, ImageRecipe)
    assert (fashion.epochs, fashion.batch_size, fashion.aux_weight) == (50, 96, 0.0)
    ptb = default_recipe("ptb", load_named("network", "ptb"))
    assert isinstance(ptb, TextRecipe)
    assert (ptb.lr, ptb.grad_clip, ptb.weight_decay, ptb.batch_size, ptb.eval_batch_size, ptb.bptt, ptb.beta,
            ptb.nonmono) == (20.0, 0.25, 8e-7, 64, 10, 35, 1e-3, 5)


def test_schedules_equal_pytorchs() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    for recipe, make in [
        (ImageRecipe("digits", 12, 8, lr=0.025), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 12)),
        (ImageRecipe("digits", 12, 8, lr=0.1, schedule="step"), lambda o: torch.optim.lr_scheduler.StepLR(o, 1, 0.97)),
    ]:
        opt = torch.optim.SGD([param], lr=recipe.lr)
        sched = make(opt)
        for epoch in range(12):
            assert math.isclose(recipe.lr_at(epoch), opt.param_groups[0]["lr"], rel_tol=1e-9)
            opt.step()
            sched.step()


def test_recipe_rejects_bad_values() -> None:
    from genolang.errors import UsageError

    recipe = default_recipe("digits", load_named("network", "small"))
    with pytest.raises(UsageError, match="--bptt"):
        recipe.replace(bptt=10)
    with pytest.raises(UsageError, match="--lr"):
        recipe.replace(lr=-1.0)
    with pytest.raises(UsageError, match="--lr"):
        recipe.replace(lr=1e300)
    with pytest.raises(UsageError, match="image data set"):
        default_recipe("digits", load_named("network", "ptb"))


# ---- a real short run -------------------------------------------------------------------

def test_training_on_real_digits_lowers_the_loss(tmp_path: Path, skeletons: tuple[Path, Path]) -> None:
    run_dir = tmp_path / "run"
    result = run("train", "darts_v2", "--network", skeletons[0], "--channels", "8", "--dataset", "digits",
                 "--epochs", "4", "--batch-size", "32", "--lr", "0.05", "--limit-train", "320", "--limit-test", "100",
                 "--run-dir", run_dir, "--quiet", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    metrics = RunDir(run_dir).metrics()
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    keys = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "drop_path"}
    assert keys <= set(metrics[0])
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert metrics[-1]["test_loss"] < metrics[0]["test_loss"]
    assert [m["drop_path"] for m in metrics] == [0.2 * e / 4 for e in range(4)]
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["test_acc"] == out["test_acc"] == metrics[-1]["test_acc"]
    for name in ("checkpoint.pt", "model.pt", "spec.geno", "recipe.json"):
        assert (run_dir / name).is_file()
    evaluated = run("eval", run_dir / "model.pt", "--dataset", "digits", "--limit", "100", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["test_acc"] == pytest.approx(out["test_acc"])
    if (run_dir / "tb").is_dir():
        assert list((run_dir / "tb").glob("events.out.tfevents.*"))


# ---- resume --------------------------------------------------------------------------

def test_cnn_resume_is_bit_identical(tmp_path: Path, digits: ImageData, skeletons: tuple[Path, Path]) -> None:
    geno, net = load_named("genotype", "darts_v2"), load_named("network", str(skeletons[0]))
    recipe = default_recipe("digits", net).replace(epochs=3, batch_size=16, limit_train=70, limit_test=24,
                                                   lr=0.05, seed=5)
    straight = train(geno, net, recipe, tmp_path / "a", data=digits)
    with pytest.raises(Stop):
        train(geno, net, recipe, tmp_path / "b", data=digits, callbacks=[stop_after(1)])
    assert [m["epoch"] for m in RunDir(tmp_path / "b").metrics()] == [1]
    # resume through the CLI, reusing the stored recipe (no options repeated)
    result = run("train", "darts_v2", "--network", skeletons[0], "--dataset", "digits", "--run-dir", tmp_path / "b",
                 "--resume", "--quiet", "--json", "--no-tensorboard", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert without_seconds(tmp_path / "a") == without_seconds(tmp_path / "b")
    same_state(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    same_state(tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt")
    assert json.loads(result.output)["test_acc"] == straight.metrics["test_acc"]


def test_text_resume_is_bit_identical_across_the_asgd_switch(tmp_path: Path, skeletons: tuple[Path, Path]) -> None:
    data = write_ptb(tmp_path / "ptb")
    geno, net = load_named("genotype", "darts_rnn_v2"), load_named("network", str(skeletons[1]))
    recipe = default_recipe("ptb", net).replace(epochs=6, batch_size=4, bptt=10, nonmono=1, lr=50.0)
    straight = train(geno, net, recipe, tmp_path / "a", data_dir=str(data))
    optimizers = [m["optimizer"] for m in RunDir(tmp_path / "a").metrics()]
    assert optimizers[0] == "sgd" and "asgd" in optimizers[:5], optimizers
    # which epoch the validation loss stalls in depends on the CPU's arithmetic: interrupt
    # after the first ASGD epoch, wherever it falls, so the resume restarts mid-ASGD
    first_asgd = optimizers.index("asgd") + 1
    with pytest.raises(Stop):
        train(geno, net, recipe, tmp_path / "b", data_dir=str(data), callbacks=[stop_after(first_asgd)])
    resumed = train(geno, net, recipe, tmp_path / "b", data_dir=str(data), resume=True)
    assert without_seconds(tmp_path / "a") == without_seconds(tmp_path / "b")
    same_state(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    same_state(tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt")
    assert straight.metrics == resumed.metrics
    assert {"train_ppl", "valid_ppl", "train_loss", "valid_loss"} <= set(RunDir(tmp_path / "a").metrics()[0])
    assert math.isfinite(straight.metrics["test_ppl"])
    evaluated = run("eval", tmp_path / "a", "--dataset", "ptb", "--data-dir", data, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["test_ppl"] == pytest.approx(straight.metrics["test_ppl"])


def test_resume_refuses_a_different_run(tmp_path: Path, skeletons: tuple[Path, Path]) -> None:
    base = ["--network", skeletons[0], "--dataset", "digits", "--epochs", "1", "--batch-size", "16",
            "--limit-train", "40", "--limit-test", "10", "--run-dir", tmp_path / "r", "--quiet", "--no-tensorboard"]
    assert run("train", "darts_v2", *base).exit_code == 0
    fails_with_usage(run("train", "darts_v2", *base), "already holds a training run", "--resume")
    fails_with_usage(run("train", "darts_v1", *base, "--resume"), "was written for genotype 'darts_v2'")
    fails_with_usage(run("train", "darts_v2", *base, "--resume", "--channels", "6"), "differ in content")
    fails_with_usage(run("train", "darts_v2", *base, "--resume", "--lr", "0.5"), "other settings", "lr")
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    assert run("train", "darts_v2", *base, "--resume").exit_code == 0  # finished: nothing left to do
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, digits: ImageData,
                                                           skeletons: tuple[Path, Path]) -> None:
    @dataclass(frozen=True)
    class Exploding(ImageRecipe):
        def lr_at(self, epoch: int) -> float:
            return float("inf") if epoch >= 1 else super().lr_at(epoch)

    geno, net = load_named("genotype", "darts_v2"), load_named("network", str(skeletons[0]))
    recipe = Exploding("digits", epochs=3, batch_size=16, grad_clip=0.0, limit_train=48, limit_test=8)
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint .* after epoch 1"):
        train(geno, net, recipe, tmp_path / "r", data=digits)
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert state["train"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert [m["epoch"] for m in RunDir(tmp_path / "r").metrics()] == [1]
    assert not (tmp_path / "r" / "model.pt").exists()
    assert not list((tmp_path / "r").glob(".*.tmp"))


def test_nan_loss_through_the_cli_is_a_clean_error(tmp_path: Path, skeletons: tuple[Path, Path]) -> None:
    result = run("train", "darts_v2", "--network", skeletons[0], "--dataset", "digits", "--epochs", "1",
                 "--batch-size", "16", "--limit-train", "48", "--limit-test", "8", "--lr", "1e30", "--grad-clip", "0",
                 "--run-dir", tmp_path / "r", "--quiet", "--no-tensorboard")
    fails_cleanly(result, "training loss became", "no checkpoint")
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


# ---- evaluation ----------------------------------------------------------------------------

def test_eval_refuses_a_model_of_another_shape(tmp_path: Path) -> None:
    from _train_data import write_fashion

    model = tmp_path / "m.pt"
    assert run("compile", "darts_v2", "--network", "small_search", "--channels", "4", "--in-channels", "1",
               "-o", model).exit_code == 0
    ok = run("eval", model, "--dataset", "digits", "--limit", "20", "--json")
    assert ok.exit_code == 0, ok.output
    fashion = write_fashion(tmp_path / "fashion")
    fails_with_usage(run("eval", model, "--dataset", "fashion-mnist", "--data-dir", fashion),
                     "built for 1x8x8 images", "1x28x28", "--dataset fashion-mnist")
    fails_with_usage(run("eval", model, "--dataset", "ptb"), "image model")
    fails_with_usage(run("eval", tmp_path / "nothing.pt", "--dataset", "digits"), "nothing.pt: no such file")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 10)
    fails_cleanly(
        run("eval", tmp_path / "junk.pt", "--dataset", "digits"), "junk.pt: damaged or not a file genolang wrote"
    )
