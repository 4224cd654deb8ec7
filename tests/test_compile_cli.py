"""``genolang compile`` and ``genolang bench`` through click's CliRunner: summaries,
JSON, checkpoints, exports and clean failures (exit 1, no traceback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from _cli import assert_clean_failure, fails_cleanly, fails_with_usage, run
from genolang.nets.checkpoint import load_model

SPECS = Path(__file__).resolve().parent.parent / "specs"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_compile_darts_v2_on_cifar_prints_the_counts() -> None:
    result = run("compile", "darts_v2", "--network", "cifar")
    assert result.exit_code == 0, result.output
    assert "3,349,342" in result.output and "3,825,768" in result.output
    assert "528,359,040" in result.output
    table = [line for line in result.output.splitlines() if line.strip().startswith(("0 ", "19 "))]
    assert len(table) == 2


def test_compile_json_is_one_object() -> None:
    result = run("compile", str(SPECS / "genotypes" / "darts_v2.geno"), "--network", "small", "--channels", "8",
                 "--in-channels", "1", "--classes", "5", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert {"params", "params_with_aux", "macs", "input_size", "cells", "network", "genotype"} <= set(d)
    assert d["input_size"] == 8 and d["data_shape"]["in_channels"] == 1 and d["data_shape"]["classes"] == 5
    assert len(d["cells"]) == 8 and d["overrides"] == {"channels": 8, "in_channels": 1, "classes": 5}


def test_compile_recurrent_summary() -> None:
    result = run("compile", "darts_rnn_v2", "--network", "ptb", "--json")
    d = json.loads(result.output)
    assert d["params"] == 22_960_000 and d["embedding"] == 850 and d["input_size"] is None


def test_compile_saves_a_checkpoint_that_reloads_alone(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "m.pt"
    result = run("compile", "darts_v1", "--network", "small_search", "--channels", "4", "--in-channels", "1",
                 "-o", str(out), "--seed", "3")
    assert result.exit_code == 0, result.output
    raw = torch.load(out, weights_only=True)
    assert "genotype darts_v1" in raw["spec"] and "network small_search" in raw["spec"]
    assert raw["extra"]["overrides"] == {"channels": 4, "in_channels": 1}
    _, geno, net, meta = load_model(out)
    assert (geno.name, net.channels, meta["data_shape"].in_channels) == ("darts_v1", 4, 1)
    again = tmp_path / "again.pt"
    run("compile", "darts_v1", "--network", "small_search", "--channels", "4", "--in-channels", "1",
        "-o", str(again), "--seed", "3")
    second = torch.load(again, weights_only=True)["state_dict"]
    assert all(torch.equal(v, second[k]) for k, v in raw["state_dict"].items())


def test_compile_exports_torchscript(tmp_path: Path) -> None:
    result = run("compile", "darts_v2", "--network", "small_search", "--channels", "4", "--export", "torchscript",
                 "--export-path", str(tmp_path / "m.ts"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.ts").is_file()


def test_compile_exports_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (pip install genolang[onnx])")
    pytest.importorskip("onnx", reason="onnx is an optional extra (pip install genolang[onnx])")
    result = run("compile", "darts_v2", "--network", "small_search", "--channels", "4", "-o", str(tmp_path / "m.pt"),
                 "--export", "onnx", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert d["export"]["path"] == str(tmp_path / "darts_v2_small_search.onnx")
    assert d["export"]["max_abs_diff"] <= 1e-4


def test_onnx_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    result = run("compile", "darts_v2", "--network", "small_search", "--export", "onnx", "-o", str(tmp_path / "m.pt"))
    fails_cleanly(result, "pip install genolang[onnx]", "pip install onnx onnxruntime")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args,fragment,status", [
    (["darts_rnn_v2", "--network", "cifar"], "CNN skeleton", 1),
    (["darts_v2", "--network", "ptb"], "recurrent skeleton", 1),
    (["darts_v2", "--network", "cifar", "--input-size", "7"], "even size", 1),
    (["darts_v2", "--network", "cifar", "--input-size", "4"], "auxiliary head", 1),
    (["darts_v9", "--network", "cifar"], "did you mean 'darts_v2'", 2),  # names on the command line: usage
    (["darts_v2", "--network", "cifra"], "did you mean 'cifar'", 2),
    (["darts_v2", "--network", "cifar", "--vocab", "100"], "--vocab", 2),
    (["darts_rnn_v2", "--network", "ptb", "--layers", "3"], "--layers", 2),
    (["missing.geno", "--network", "cifar"], "missing.geno", 2),
])
def test_compile_errors_exit_cleanly(args: list[str], fragment: str, status: int) -> None:
    assert_clean_failure(run("compile", *args).exit_code, run("compile", *args).output, fragment, status=status)


def test_genotype_with_an_op_the_registry_lacks(tmp_path: Path) -> None:
    spec = tmp_path / "bad.geno"
    spec.write_text((SPECS / "genotypes" / "darts_v2.geno").read_text().replace("dil_conv_3x3(n2)", "dil_conv_9x9(n2)"))
    result = run("compile", str(spec), "--network", "small", "-o", str(tmp_path / "m.pt"))
    fails_cleanly(result, "unknown op 'dil_conv_9x9'")
    assert not (tmp_path / "m.pt").exists()


def test_bench_train_and_eval_step_print_json() -> None:
    for step in ("train-step", "eval-step"):
        result = run("bench", step, "--channels", "4", "--layers", "3", "--batch-size", "2", "--input-size", "8",
                     "--iters", "2", "--warmup", "0", "--threads", "1", "--json")
        assert result.exit_code == 0, result.output
        d = json.loads(result.output)
        assert {"median_s", "min_s", "peak_rss_mb", "config"} <= set(d)
        assert d["step"] == step and len(d["times_s"]) == 2 and d["config"]["layers"] == 3
        assert d["min_s"] <= d["median_s"] and d["peak_rss_mb"] > 0


def test_bench_search_step_prints_json_with_and_without_passes() -> None:
    tiny = ("--channels", "4", "--layers", "3", "--batch-size", "2", "--input-size", "8", "--iters", "1",
            "--warmup", "0", "--threads", "1", "--json")
    for order, extra in (("1", ()), ("2", ("--no-opt",)), ("1", ("--passes", "drop_none,share_relu"))):
        result = run("bench", "search-step", "--order", order, *extra, *tiny)
        assert result.exit_code == 0, result.output
        d = json.loads(result.output)
        assert {"median_s", "min_s", "peak_rss_mb", "config"} <= set(d)
        assert d["step"] == "search-step" and d["config"]["order"] == int(order)
        assert d["info"]["order"] == int(order) and d["config"]["network"] == "cifar_search"
        if "--no-opt" in extra:
            assert d["info"]["passes"] == [] and d["info"]["channels_last"] is False
        elif extra:
            assert d["info"]["passes"] == ["drop_none", "share_relu"]
        else:
            assert "group_convs" in d["info"]["passes"] and d["info"]["channels_last"] is True
    fails_with_usage(run("bench", "search-step", "--passes", "share_rel", *tiny), "no pass named 'share_rel'")
    fails_with_usage(run("bench", "search-step", "--space", "darts_rnn", *tiny), "search-step times CNN spaces")
    fails_with_usage(run("bench", "search-step", "--no-opt", "--passes", "drop_none", *tiny), "contradict")


def test_bench_search_step_times_any_method_and_either_hessian() -> None:
    tiny = ("--channels", "4", "--layers", "3", "--batch-size", "2", "--input-size", "8", "--iters", "1",
            "--warmup", "0", "--threads", "1", "--json")
    runs = {name: json.loads(run("bench", "search-step", *flags, *tiny).output) for name, flags in {
        "darts": (), "random_ws": ("--method", "random_ws"), "set": ("--method", "random_ws", "--set",
                                                                   "uniform_paths.sample_excluded=true"),
        "exact": ("--order", "2", "--hessian", "exact")}.items()}
    assert runs["darts"]["info"]["arch_step"] is True and runs["darts"]["info"]["hessian"] is None
    assert runs["random_ws"]["info"]["arch_step"] is False  # weights only
    assert runs["random_ws"]["info"]["method"].startswith("random_ws: relaxation uniform_paths(sample_excluded=False)")
    assert "sample_excluded=True" in runs["set"]["info"]["method"]
    assert runs["exact"]["info"]["hessian"] == "exact" and runs["exact"]["config"]["order"] == 2
    # the same supernet: weights are the parameters less the alphas
    assert runs["darts"]["info"]["weights"] == runs["random_ws"]["info"]["weights"] < runs["darts"]["info"]["params"]
    fails_with_usage(run("bench", "search-step", "--method", "dartz", *tiny), "no search method named 'dartz'")


def test_bench_compile_times_the_compiled_network_after_compiling_it() -> None:
    result = run("bench", "eval-step", "--channels", "4", "--layers", "3", "--batch-size", "2", "--input-size", "8",
                 "--iters", "1", "--warmup", "1", "--threads", "1", "--compile", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout.strip().splitlines()[-1])  # torch may print compile warnings first
    assert d["config"]["compile"] is True
    # the warm-up step compiled the graph: seconds, against milliseconds for a step
    assert d["info"]["first_step_s"] > 10 * d["median_s"]


def test_bench_compile_mode_compiles_every_cell_in_that_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--compile-mode`` implies ``--compile`` and hands its mode to ``torch.compile``
    for each cell of the supernet, with static shapes (recorded here, not compiled:
    compiling takes minutes; with dynamo's automatic dynamic shapes inductor's graphs of
    one executor were handed another's weights); an unknown mode is a usage error."""
    modes: list[object] = []

    def record(fn: object, **kwargs: object) -> object:
        assert kwargs.get("dynamic") is False
        modes.append(kwargs.get("mode"))
        return fn

    monkeypatch.setattr(torch, "compile", record)
    tiny = ("--channels", "4", "--layers", "3", "--batch-size", "2", "--input-size", "8", "--iters", "1",
            "--warmup", "0", "--threads", "1", "--json")
    result = run("bench", "search-step", "--compile-mode", "reduce-overhead", *tiny)
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout.strip().splitlines()[-1])
    assert d["config"]["compile"] is True and d["config"]["compile_mode"] == "reduce-overhead"
    assert modes == ["reduce-overhead"] * 3  # the three cells
    modes.clear()
    assert run("bench", "search-step", "--compile", *tiny).exit_code == 0
    assert modes == ["default"] * 3
    fails_with_usage(run("bench", "search-step", "--compile-mode", "fast", *tiny), "'fast' is not one of")


def test_bench_is_a_group_listing_its_steps() -> None:
    result = run("bench", "--help")
    assert result.exit_code == 0 and "train-step" in result.output and "eval-step" in result.output
    assert "search-step" in result.output
