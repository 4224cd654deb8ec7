"""The search loop and ``genolang search``: tiny end-to-end searches on digits and on a
tiny text corpus, reproducibility, bit-for-bit resume and clean errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from lark import ParseTree

from _cli import assert_clean_failure
from _search_util import write_tiny_cnn, write_tiny_corpus, write_tiny_rnn
from genolang.cli import main
from genolang.nets.fixed import build_fixed_cnn
from genolang.run.progress import Progress
from genolang.search.entry import run_search
from genolang.search.recipe import SearchConfig
from genolang.spec.check import load
from genolang.spec.checked import GenotypeSpec
from genolang.spec.lookup import load_named

SPACE = "darts_cnn"

pytestmark = pytest.mark.usefixtures("one_thread")


def search(tmp: Path, *args: str, out: str = "found.geno", run: str = "run") -> tuple[int, str, Path, Path]:
    """``genolang search darts_cnn`` on the tiny skeleton; returns (code, output, out, run)."""
    net = write_tiny_cnn(tmp)
    argv = ["search", SPACE, "--network", str(net), "--epochs", "2", "--batch-size", "8", "--limit", "2",
            "--out", str(tmp / out), "--run-dir", str(tmp / run), "--quiet", *args]
    result = CliRunner().invoke(main, argv)
    return result.exit_code, result.output, tmp / out, tmp / run


def test_a_tiny_search_writes_a_spec_that_checks_and_compiles(tmp_path: Path) -> None:
    code, output, out, run = search(tmp_path)
    assert code == 0, output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Found by 'genolang search' (DARTS, first order).")
    assert "(space darts_cnn, sha256 " in text and "genotype hash: " in text
    assert "dataset: digits; order 1; seed 0; epochs 2; batch 8" in text
    assert "final validation accuracy: " in text
    assert "#   n3 <- c1: none 0." in text  # the alpha table
    assert "# decisiveness: kept ops at " in text and "x uniform (1 = coin toss, 8 = certain)" in text
    geno = load(str(out)).single("genotype")
    assert isinstance(geno, GenotypeSpec)
    assert geno.name == "found"
    assert [c.name for c in geno.cells] == ["normal", "reduce"]
    assert all(len(n.edges) == 2 and all(op != "none" for op, _ in n.edges) for c in geno.cells for n in c.nodes)
    small = load_named("network", "small")
    model = build_fixed_cnn(geno, small, in_channels=1, input_size=8, classes=10)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    # the run folder
    for name in ("checkpoint.pt", "epoch-001.geno", "epoch-002.geno", "genotype.geno", "run.json"):
        assert (run / name).is_file(), name
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert set(metrics[0]) == {"epoch", "train_loss", "train_acc", "valid_loss", "valid_acc", "lr", "seconds"}
    alphas = [json.loads(line) for line in (run / "alphas.jsonl").read_text().splitlines()]
    assert alphas[1]["epoch"] == 2 and alphas[1]["cells"]["normal"]["edges"][0] == "n2<-c0"
    assert len(alphas[1]["cells"]["reduce"]["softmax"]) == 14
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["status"] == "done" and run_json["space_name"] == SPACE and run_json["order"] == 1
    decisive = run_json["decisiveness"]
    assert decisive["ops"] == 8 and decisive["cells"]["normal"]["kept"] == 8 and 0 < decisive["entropy"] <= 1
    assert f"kept ops at {decisive['kept_over_uniform']:.2f}x uniform" in text
    assert load(str(run / "epoch-001.geno")).single("genotype").name == "epoch_001"
    assert (run / "genotype.geno").read_text() == text


def test_the_compile_command_accepts_the_found_genotype(tmp_path: Path) -> None:
    code, output, out, _ = search(tmp_path, "--epochs", "1")
    assert code == 0, output
    result = CliRunner().invoke(main, ["compile", str(out), "--network", "small"])
    assert result.exit_code == 0, result.output


def test_the_same_seed_gives_the_same_genotype(tmp_path: Path) -> None:
    a = search(tmp_path, "--seed", "3", out="a.geno", run="ra")
    b = search(tmp_path, "--seed", "3", out="b.geno", run="rb")
    assert a[0] == b[0] == 0
    # identical files but for the genotype's name (taken from the file name)
    assert a[2].read_text().replace("genotype a :", "genotype b :") == b[2].read_text()


def test_the_passes_do_not_change_what_a_search_finds(tmp_path: Path) -> None:
    """--no-opt (the paper's supernet) and --passes '' (no pass, channels-last) search
    the same alphas as the default passes, within float32 rounding."""
    # the alpha learning rate pinned to 3e-3: the digits default, 3e-2, lets Adam turn float32
    # rounding in near-zero alpha gradients into steps of its full size
    runs = {name: search(tmp_path, "--arch-lr", "3e-3", *flags, out=f"{name}.geno", run=name)
            for name, flags in {"opt": (), "noopt": ("--no-opt",), "none": ("--passes", "")}.items()}
    assert all(code == 0 for code, *_ in runs.values()), runs
    softmax = {name: json.loads((r[3] / "alphas.jsonl").read_text().splitlines()[-1])["cells"]
               for name, r in runs.items()}
    for name in ("noopt", "none"):
        for cell in ("normal", "reduce"):
            a = torch.tensor(softmax["opt"][cell]["softmax"])
            assert torch.allclose(a, torch.tensor(softmax[name][cell]["softmax"]), rtol=0, atol=1e-5), (name, cell)
    assert runs["opt"][2].read_text().split("genotype opt", 1)[1] == runs["noopt"][2].read_text().split(
        "genotype noopt", 1)[1]


def test_contradicting_pass_options_fail_cleanly(tmp_path: Path) -> None:
    code, output, out, _ = search(tmp_path, "--no-opt", "--passes", "drop_none")
    assert_clean_failure(code, output, "--no-opt and --passes contradict", status=2)
    code, output, out, _ = search(tmp_path, "--passes", "drop_nnoe")
    assert_clean_failure(code, output, "no pass named 'drop_nnoe'; did you mean 'drop_none'?", status=2)
    assert not out.exists()


class Interrupt(Exception):
    pass


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    net = write_tiny_cnn(tmp_path)
    config = SearchConfig(space=SPACE, network=str(net), epochs=3, batch_size=8, limit=2, seed=1, order=2)
    run_search(config, run_dir=tmp_path / "whole", out=tmp_path / "whole.geno")

    def stop_after_first_epoch(p: Progress) -> None:
        if p.kind == "epoch_end" and p.epoch == 1:
            raise Interrupt()

    with pytest.raises(Interrupt):
        run_search(config, run_dir=tmp_path / "parts", out=tmp_path / "parts.geno", progress=stop_after_first_epoch)
    assert not (tmp_path / "parts.geno").exists()
    # resume with the options left out: they come from the checkpoint
    run_search(SearchConfig(space=SPACE), run_dir=tmp_path / "parts", out=tmp_path / "parts.geno", resume=True)
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    parts = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)
    assert whole["epoch"] == parts["epoch"] == 3
    for key, value in whole["model"].items():
        assert torch.equal(value, parts["model"][key]), key
    for opt in ("weight_optimizer", "arch_optimizer"):
        for pid, state in whole[opt]["state"].items():
            for k, v in state.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(parts[opt]["state"][pid][k])), (opt, k)
    assert torch.equal(whole["rng"]["torch"], parts["rng"]["torch"])
    for n in (1, 2, 3):
        assert (tmp_path / "whole" / f"epoch-{n:03d}.geno").read_text() == \
            (tmp_path / "parts" / f"epoch-{n:03d}.geno").read_text()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    read = lambda p: [json.loads(x) for x in p.read_text().splitlines()]  # noqa: E731
    assert strip(read(tmp_path / "whole" / "metrics.jsonl")) == strip(read(tmp_path / "parts" / "metrics.jsonl"))
    assert read(tmp_path / "whole" / "alphas.jsonl") == read(tmp_path / "parts" / "alphas.jsonl")


def test_a_recurrent_search_runs_on_a_tiny_corpus(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "ptb")
    net = write_tiny_rnn(tmp_path)
    for order in ("1", "2"):
        argv = ["search", "darts_rnn", "--network", str(net), "--dataset", "ptb", "--data-dir", str(corpus),
                "--epochs", "1", "--batch-size", "4", "--limit", "2", "--order", order,
                "--out", str(tmp_path / f"rnn{order}.geno"), "--run-dir", str(tmp_path / f"r{order}"), "--quiet"]
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, result.output
        geno = load(str(tmp_path / f"rnn{order}.geno")).single("genotype")
        assert isinstance(geno, GenotypeSpec)
        assert geno.kind == "rnn"
        (cell,) = geno.cells
        assert len(cell.nodes) == 8 and all(len(n.edges) == 1 for n in cell.nodes)
        assert cell.output == tuple(f"n{i}" for i in range(1, 9))
        metrics = json.loads((tmp_path / f"r{order}" / "metrics.jsonl").read_text().splitlines()[0])
        assert {"train_ppl", "valid_ppl", "train_loss", "valid_loss", "lr", "seconds"} <= set(metrics)
        assert "final validation perplexity" in (tmp_path / f"rnn{order}.geno").read_text()
    result = CliRunner().invoke(main, ["search", "darts_rnn", "--network", str(net), "--dataset", "ptb", "--data-dir",
                                       str(corpus), "--no-opt", "--out", str(tmp_path / "x.geno"), "--quiet"])
    assert result.exit_code == 2 and "optimize CNN supernets; space darts_rnn is recurrent" in result.output
    assert not (tmp_path / "x.geno").exists()


# ---- errors: exit 1, a message that says what to do, nothing half-written -------------

def test_a_space_op_that_cannot_be_built_fails_cleanly(tmp_path: Path) -> None:
    """An op whose grouped conv does not divide the skeleton's channels (4) is found
    when the supernet is built: a clean error, nothing written."""
    space = tmp_path / "grouped.geno"
    space.write_text("genolang 1\nop g3 = relu > conv(3, stride, groups=3) > bn\n"
                     "space grouped {\n    ops = none, skip_connect, g3\n"
                     "    cell normal { nodes = 2 }\n    cell reduce { nodes = 2; stride = 2 }\n}\n", encoding="utf-8")
    net = write_tiny_cnn(tmp_path)
    result = CliRunner().invoke(main, ["search", str(space), "--network", str(net), "--epochs", "1", "--batch-size",
                                       "8", "--limit", "1", "--out", str(tmp_path / "f.geno"), "--run-dir",
                                       str(tmp_path / "run"), "--quiet"])
    assert_clean_failure(result.exit_code, result.output, "op 'g3'", "groups=3 cannot map")
    assert not (tmp_path / "f.geno").exists() and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_skeleton_that_does_not_fit_the_data_fails_cleanly(tmp_path: Path) -> None:
    deep = tmp_path / "deep.geno"
    deep.write_text("genolang 1\nnetwork deep {\n    stem = cifar\n    channels = 4\n    layers = 4\n"
                    "    reduce_at = 0, 1, 2, 3\n}\n", encoding="utf-8")
    code, output, out, run = search(tmp_path, "--network", str(deep))
    assert_clean_failure(code, output, "reduction cell 3", "even size")
    assert not out.exists() and not run.exists()


def test_resume_problems_fail_cleanly(tmp_path: Path) -> None:
    code, output, _, run = search(tmp_path, "--resume", run="nothing-here")
    assert_clean_failure(code, output, "holds no checkpoint", status=2)
    code, output, _, run = search(tmp_path, "--epochs", "1")
    assert code == 0, output
    code, output, _, _ = search(tmp_path, "--epochs", "1", "--force")
    assert_clean_failure(code, output, "already holds a search run", "--resume", status=2)
    code, output, _, _ = search(tmp_path, "--epochs", "1", "--resume", "--seed", "5", "--force")
    assert_clean_failure(code, output, "other settings", "seed: 0 -> 5", status=2)
    good = (run / "checkpoint.pt").read_bytes()
    # a checkpoint of the format before the stem's BN was affine: refused, saying what to do
    old = torch.load(run / "checkpoint.pt", weights_only=True)
    old["format"] = "genolang-search/1"
    for key in ("stem0.1.weight", "stem0.1.bias"):
        del old["model"][key]
    torch.save(old, run / "checkpoint.pt")
    code, output, _, _ = search(tmp_path, "--epochs", "1", "--resume", "--force")
    assert_clean_failure(code, output, "older genolang", "stem batch norm had no affine parameters",
                         "start the search again in a new --run-dir")
    (run / "checkpoint.pt").write_bytes(good[: len(good) // 2])
    code, output, _, _ = search(tmp_path, "--epochs", "1", "--resume", "--force")
    assert_clean_failure(code, output, "checkpoint.pt: damaged", "start the search again in a new --run-dir")
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    code, output, _, _ = search(tmp_path, "--epochs", "1", "--resume", "--force")
    assert_clean_failure(code, output, "checkpoint")


def test_a_nan_loss_stops_with_the_last_good_checkpoint_kept(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def poisoned(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 6 else loss  # epoch 1: 2 x (arch + weight) + 2 eval batches

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", poisoned)
    code, output, out, run = search(tmp_path)
    assert_clean_failure(code, output, "became nan", "epoch 2", "checkpoint")
    assert not out.exists()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((run / "run.json").read_text())["status"] == "diverged"


def test_a_data_set_of_the_wrong_kind_fails_cleanly(tmp_path: Path) -> None:
    code, output, _, _ = search(tmp_path, "--dataset", "ptb")
    assert_clean_failure(code, output, "text data", "image data set", status=2)
    result = CliRunner().invoke(main, ["search", "no_such_space", "--quiet"])
    assert_clean_failure(result.exit_code, result.output, "no space named 'no_such_space'", status=2)


def test_parses_do_not_grow_with_the_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything a search builds itself (derived genotypes, their files, the header) is a
    model validated as such and formatted once: only the files it reads are parsed, so a
    3-epoch search parses exactly as much as a 1-epoch one."""
    from genolang.parse import parser

    calls: list[str] = []
    real = parser._lark

    class Counting:
        def parse(self, text: str) -> ParseTree:
            calls.append(text)
            return real().parse(text)

    monkeypatch.setattr(parser, "_lark", lambda: Counting())
    net = write_tiny_cnn(tmp_path)
    counts = []
    for epochs in (1, 3):
        calls.clear()
        config = SearchConfig(space=SPACE, network=str(net), epochs=epochs, batch_size=8, limit=2)
        run_search(config, run_dir=tmp_path / f"run{epochs}", out=tmp_path / f"found{epochs}.geno")
        counts.append(len(calls))
    assert counts[0] == counts[1], counts
    assert 0 < counts[0] <= 8, counts  # the space, the skeleton, and the space again where a folder resolves its name
