"""Faults a user meets, one class of issue 15 per section: destinations that cannot be
written (checked before any work), damaged checkpoints (every byte verified), files
that must not be replaced silently, run folders that are not genolang's, temp files a
killed process left, usage errors that exit 2 whoever finds them, and the surprises
(data shapes from a search's provenance, flags that mean the same everywhere).

Tests run as root in CI, where permissions do not bite: an unwritable place is made
with a file where a folder is needed (or a path below a regular file) and read-only
files are recognised by their mode bits; the one permission test skips as root."""

from __future__ import annotations

import errno
import io
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any, cast

import click
import pytest
import torch
from click.testing import CliRunner

from _cli import fails_cleanly, fails_with_usage, run
from _search_util import write_tiny_cnn
from conftest import SPECS
from genolang.cli import COMMANDS, main
from genolang.errors import GenolangError, InputError, UsageError, plural
from genolang.fsio import (
    STALE_SECONDS,
    atomic_path,
    check_destination,
    clean_stale_temps,
    write_text,
)
from genolang.ir.plan import NetworkPlan
from genolang.nets.checkpoint import load_model, model_record, save_model
from genolang.nets.compile import DataShape, apply_overrides, build
from genolang.nets.size import TooLarge
from genolang.spec.lookup import load_named
from genolang.tensorio import read_state, save_state

pytestmark = pytest.mark.usefixtures("one_thread")

V2 = SPECS / "genotypes" / "darts_v2.geno"
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def _blocked(tmp_path: Path) -> Path:
    """A regular file where a folder would be needed: nothing can be created below it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker


def _tiny_model(tmp_path: Path, name: str = "m.pt") -> Path:
    net = apply_overrides(load_named("network", "small_search"), channels=2, layers=3)
    geno = load_named("genotype", "darts_v2")
    shape = DataShape("cnn", 1, 8, 10)
    path = tmp_path / name
    save_model(path, build(geno, net, shape), geno, net, shape)
    return path


def _tiny_search(tmp_path: Path, *extra: str, run_dir: str = "run", out: str = "found.geno") -> Any:
    net = write_tiny_cnn(tmp_path)
    return CliRunner().invoke(main, ["search", "darts_cnn", "--network", str(net), "--epochs", "1", "--batch-size",
                                     "8", "--limit", "1", "--out", str(tmp_path / out), "--run-dir",
                                     str(tmp_path / run_dir), "--quiet", *extra])


# ---- 2. destinations checked before any work ---------------------------------------------

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"

@pytest.mark.parametrize("argv", [
    ["search", "darts_cnn", "--out", "{blocked}/found.geno", "--run-dir", "{tmp}/run"],
    ["search", "darts_cnn", "--run-dir", "{blocked}/run"],
    ["compile", "darts_v2", "--network", "small", "-o", "{blocked}/m.pt"],
    ["compile", "darts_v2", "--network", "small", "--export", "torchscript", "--export-path", "{blocked}/m.ts"],
    ["train", "darts_v2", "--network", "small", "--dataset", "digits", "--run-dir", "{blocked}/run"],
    ["graph", str(V2), "-o", "{blocked}/g.dot"],
    ["graph", str(V2), "-o", "{tmp}"],
    ["draw", str(V2), "-o", "{blocked}/g.svg"],
    ["import", "--from", "nb201", NB201, "-o", "{blocked}/i.geno"],
    ["plot", "{tmp}", "-o", "{blocked}"],
    ["report", "{tmp}", "-o", "{blocked}/r.html"],
])
def test_destinations_are_checked_before_any_work(tmp_path: Path, argv: list[str]) -> None:
    blocked = _blocked(tmp_path)
    args = [a.format(blocked=blocked, tmp=tmp_path) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    began = time.monotonic()
    result = run(*args)
    fails_with_usage(result)
    assert "a-file" in result.output or "is a folder" in result.output or "not a folder" in result.output, \
        result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing was made: no run folder, no output
    assert time.monotonic() - began < 60  # refused at once, not after a search (a guard, not a benchmark)


@pytest.mark.skipif(ROOT, reason="as root a folder without write permission is still writable")
def test_a_folder_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        fails_with_usage(run("compile", "darts_v2", "--network", "small", "-o", locked / "m.pt"), "not writable")
    finally:
        locked.chmod(0o700)


def test_an_unexpected_os_error_while_writing_is_a_clean_error(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "g.dot"
    out.write_text("old")

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    result = run("graph", V2, "-o", out)
    fails_cleanly(result, f"cannot write {out} (No space left on device); it was left as it was")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["g.dot"]


def test_genolang_path_and_neighbours_that_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GENOLANG_PATH entry that is a file or missing, a symlink loop and a dangling
    link beside the genotype: names still resolve, and an unknown name says what could
    not be read."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "loop.geno").symlink_to(work / "loop.geno")
    (work / "dangling.geno").symlink_to(work / "nowhere.geno")
    (work / "sub.geno").mkdir()  # a folder named like a spec
    geno = work / "g.geno"
    geno.write_text(V2.read_text())
    monkeypatch.setenv("GENOLANG_PATH", os.pathsep.join([str(_blocked(tmp_path)), str(tmp_path / "missing")]))
    result = run("check", geno)
    assert result.exit_code == 0, result.output
    geno.write_text(V2.read_text().replace(": darts_cnn", ": darts_cmn"))
    result = run("check", geno)
    fails_cleanly(result, "unknown space 'darts_cmn'; did you mean 'darts_cnn'?", "could not read:", "loop.geno",
                  "symbolic links")
    listing = CliRunner().invoke(main, ["list"], catch_exceptions=False)
    assert listing.exit_code == 0 and "darts_cnn" in listing.stdout


def test_train_with_batch_size_one_is_a_usage_error(tmp_path: Path) -> None:
    result = run("train", "darts_v2", "--network", "small", "--dataset", "digits", "--batch-size", "1",
                 "--run-dir", tmp_path / "r", "--quiet", "--no-tensorboard")
    fails_with_usage(result, "--batch-size must be at least 2", "batch norm")
    assert not (tmp_path / "r").exists()


def test_a_network_too_large_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    import genolang.nets.compile as compile_module

    monkeypatch.setattr(compile_module, "FixedCNN", lambda *a, **k: pytest.fail("allocated"))
    geno, net = load_named("genotype", "darts_v2"), load_named("network", "cifar")
    with pytest.raises(TooLarge, match=r"needs at least [\d,.]+ GiB .* more than the limit of [\d,.]+ GiB"):
        build(geno, apply_overrides(net, channels=100000), DataShape("cnn", 3, 32, 10))
    with pytest.raises(TooLarge, match="--input-size"):
        build(geno, net, DataShape("cnn", 3, 100000, 10))
    monkeypatch.setenv("GENOLANG_MAX_MODEL_GIB", "0.001")
    with pytest.raises(TooLarge, match=r"limit of 0\.0 GiB \(GENOLANG_MAX_MODEL_GIB\)"):
        build(geno, net, DataShape("cnn", 3, 32, 10))


# ---- 3. damaged checkpoints are refused ----------------------------------------------------

def _flip(path: Path, at: int) -> Path:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    flipped = path.with_name(f"flipped-{at}.pt")
    flipped.write_bytes(bytes(data))
    return flipped


def _says_what_to_do(message: str, path: Path) -> None:
    assert str(path) in message
    assert "weights_only" not in message and "Traceback" not in message
    assert message.rstrip().endswith(("backup", "again", "genolang wrote", "from a backup")), message


def test_every_flipped_byte_of_a_model_file_is_refused(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path)
    size = model.stat().st_size
    positions = sorted(set(range(0, size, max(1, size // 150))) | set(range(max(0, size - 160), size)))
    for at in positions:
        flipped = _flip(model, at)
        with pytest.raises(InputError) as info:
            load_model(flipped)
        _says_what_to_do(str(info.value), flipped)
        flipped.unlink()
    assert load_model(model)[3]["verified"] is True
    # the file is still a plain PyTorch file
    assert set(torch.load(model, weights_only=True)) >= {"format", "state_dict", "spec"}


def test_a_flipped_weight_is_refused_by_eval(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path)
    data = model.read_bytes()
    weight = data.find(b"archive/data/0") + 200  # inside the first tensor record's bytes
    flipped = _flip(model, min(weight, len(data) // 2))
    result = run("eval", flipped, "--dataset", "digits", "--limit", "10")
    fails_cleanly(result, "damaged", str(flipped), "write it again")
    assert "weights_only" not in result.output


def test_damaged_search_checkpoint_is_refused_on_resume(tmp_path: Path) -> None:
    first = _tiny_search(tmp_path)
    assert first.exit_code == 0, first.output
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    result = _tiny_search(tmp_path, "--resume", "--force")
    fails_cleanly(result, f"{checkpoint}: damaged", "start the search again in a new --run-dir")


def test_files_from_before_digests_still_load_unverified(tmp_path: Path) -> None:
    """The previous version's layout, written with plain torch.save (no digest): it
    loads, reported as unverified; eval says so."""
    net = apply_overrides(load_named("network", "small_search"), channels=2, layers=3)
    geno = load_named("genotype", "darts_v2")
    shape = DataShape("cnn", 1, 8, 10)
    old = tmp_path / "old.pt"
    torch.save(model_record(build(geno, net, shape), geno, net, shape), old)
    model, _, _, meta = load_model(old)
    assert meta["verified"] is False and sum(p.numel() for p in model.parameters()) > 0
    result = run("eval", old, "--dataset", "digits", "--limit", "10")
    assert result.exit_code == 0, result.output
    assert "written by a genolang without checksums; it was loaded unverified" in result.stderr


def test_foreign_and_truncated_files_are_refused_without_unsafe_advice(tmp_path: Path) -> None:
    foreign = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), foreign)  # a pickled module: loading it would run code
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(_tiny_model(tmp_path).read_bytes()[:500])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path, fragment in ((foreign, "holds Python objects other than tensors"), (truncated, "damaged"),
                           (empty, "damaged")):
        with pytest.raises(InputError) as info:
            read_state(path)
        assert fragment in str(info.value) and "weights_only" not in str(info.value)
    fails_with_usage(run("eval", tmp_path / "pipe-or-folder", "--dataset", "digits"), "no such file")


# ---- 4. nothing replaced silently, temp files cleaned ------------------------------------

def test_search_refuses_an_existing_out_before_it_starts(tmp_path: Path) -> None:
    (tmp_path / "found.geno").write_text("# my genotype\n")
    result = _tiny_search(tmp_path)
    fails_with_usage(result, "found.geno already exists; pass --force to replace it")
    assert (tmp_path / "found.geno").read_text() == "# my genotype\n" and not (tmp_path / "run").exists()
    forced = _tiny_search(tmp_path, "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "found.geno").read_text().startswith("# Found by 'genolang search'")


def test_compile_refuses_an_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    out.write_bytes(b"precious")
    args = ["compile", "darts_v2", "--network", "small_search", "--channels", "2", "-o", out]
    fails_with_usage(run(*args), "m.pt already exists; pass --force")
    assert out.read_bytes() == b"precious"
    assert run(*args, "--force").exit_code == 0 and load_model(out)[3]["verified"]


def test_a_search_whose_out_became_unwritable_keeps_the_genotype(tmp_path: Path) -> None:
    """The destination was fine when the search started and is not at its end: the
    genotype stays in the run folder and the result (and the CLI) say so."""
    from genolang.search.entry import run_search
    from genolang.search.recipe import SearchConfig

    out = tmp_path / "later" / "found.geno"

    def sabotage(event: Any) -> None:
        if event.kind == "start":
            (tmp_path / "later").write_text("a file now")  # where out's folder was to be made

    config = SearchConfig(space="darts_cnn", network=str(write_tiny_cnn(tmp_path)), epochs=1, batch_size=8, limit=1)
    result = run_search(config, run_dir=tmp_path / "run", out=out, progress=sabotage)
    assert result.out is None and result.out_error is not None and "later" in result.out_error
    assert result.kept == tmp_path / "run" / "genotype.geno" and result.kept.read_text().startswith("# Found")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["out_error"] == result.out_error


def test_a_run_dir_of_someone_elses_files_is_never_used(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    (mine / "genotype.geno").write_text("# my genotype\n")
    for result in (_tiny_search(tmp_path, run_dir="mine"),
                   run("train", "darts_v2", "--network", "small", "--dataset", "digits", "--run-dir", mine,
                       "--quiet", "--no-tensorboard")):
        fails_with_usage(result, "holds files that genolang did not write there", "genotype.geno, notes.txt")
    assert sorted(p.name for p in mine.iterdir()) == ["genotype.geno", "notes.txt"]
    assert (mine / "genotype.geno").read_text() == "# my genotype\n"


def test_a_run_folder_is_marked_and_an_older_one_still_resumes(tmp_path: Path) -> None:
    assert _tiny_search(tmp_path).exit_code == 0
    marker = tmp_path / "run" / ".genolang-run"
    assert json.loads(marker.read_text())["command"] == "search"
    fails_with_usage(run("train", "darts_v2", "--network", "small", "--dataset", "digits", "--run-dir",
                         tmp_path / "run", "--resume", "--quiet"), "holds a search run, not a training run")
    marker.unlink()  # as a genolang before markers left it
    resumed = _tiny_search(tmp_path, "--resume", "--force")
    assert resumed.exit_code == 0, resumed.output
    assert marker.is_file()


def test_fmt_formats_a_symlinks_target_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real.geno"
    target.write_text("genolang 1\nnetwork   n {stem=cifar}\n")
    link = tmp_path / "link.geno"
    link.symlink_to(target)
    assert run("fmt", link).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "genolang 1\n\nnetwork n {\n    stem = cifar\n}\n"


def test_fmt_refuses_a_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "ro.geno"
    path.write_text("genolang 1\nnetwork   n {stem=cifar}\n")
    path.chmod(0o444)
    result = run("fmt", path)
    fails_with_usage(result, "ro.geno is read-only", "chmod u+w")
    assert path.read_text() == "genolang 1\nnetwork   n {stem=cifar}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_temp_files_of_killed_writes_are_cleaned(tmp_path: Path) -> None:
    """A ``kill -9`` during a save leaves ``.NAME.HOST-PID-XXXX.tmp``: the next write of
    NAME removes it once its process is gone (or it is old); a live writer's is kept."""
    dest = tmp_path / "checkpoint.pt"
    host = "".join(c for c in socket.gethostname() if c.isalnum())[:32] or "host"
    dead = _dead_pid()
    stale = tmp_path / f".checkpoint.pt.{host}-{dead}-abcd1234.tmp"
    stale.write_bytes(b"half a checkpoint")
    old_style = tmp_path / ".checkpoint.pt.k2j4h5g6.tmp"  # what the previous version's writes left
    old_style.write_bytes(b"older half")
    ancient = time.time() - STALE_SECONDS - 60
    os.utime(old_style, (ancient, ancient))
    young_old_style = tmp_path / ".checkpoint.pt.q1w2e3r4.tmp"
    young_old_style.write_bytes(b"maybe in use")
    live = tmp_path / f".checkpoint.pt.{host}-{os.getppid()}-live0000.tmp"
    live.write_bytes(b"being written")
    other = tmp_path / ".other.pt.k2j4h5g6.tmp"
    other.write_bytes(b"not ours")
    os.utime(other, (ancient, ancient))
    save_state(dest, {"format": "test", "x": torch.zeros(2)})
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["checkpoint.pt", young_old_style.name, live.name, other.name])
    later = time.time() + STALE_SECONDS + 120  # hours later, whoever wrote them is surely done
    assert sorted(clean_stale_temps(dest, now=later)) == sorted([young_old_style, live])


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_crashed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "f.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert dest.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_tensor_files_are_fsynced_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else str(fd))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        synced.append(f"rename {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_state(tmp_path / "c.pt", {"format": "t", "w": torch.ones(3)})
    rename = synced.index("rename c.pt")
    assert any(".c.pt." in s and s.endswith(".tmp") for s in synced[:rename])  # the data, before the name
    assert str(tmp_path) in synced[rename + 1:]  # then the folder holding the new name


def test_check_destination_refuses_what_a_write_would_lose(tmp_path: Path) -> None:
    existing = tmp_path / "x.geno"
    existing.write_text("mine")
    with pytest.raises(UsageError, match="already exists; pass --force"):
        check_destination(existing, replace=False, flag="--force")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="FIFO"):
        check_destination(fifo)
    with pytest.raises(UsageError, match="not a file name"):
        check_destination(".")
    with pytest.raises(UsageError, match="is a FIFO"):
        write_text(fifo, "x")  # would have replaced the FIFO with a file


# ---- 5. usage errors exit 2, whoever finds them --------------------------------------------

USAGE = [
    (["search", "darts_cnn", "--epochs", "0"], "--epochs"),
    (["train", "darts_v2", "--network", "small", "--dataset", "digits", "--epochs", "0"], "--epochs"),
    (["search", "darts_cnn", "--batch-size", "0"], "--batch-size"),
    (["search", "darts_cnn", "--lr", "nan"], "not a finite number"),
    (["search", "darts_cnn", "--arch-lr", "-1"], "--arch-lr"),
    (["search", "darts_cnn", "--seed", "-1"], "--seed"),
    (["search", "darts_cnn", "--limit", "0"], "--limit"),
    (["search", "darts_cnn", "--threads", "0"], "--threads"),
    (["search", "darts_cnn", "--device", "gpu"], "not a device"),
    (["search", "darts_cnn", "--resume"], "--resume needs --run-dir"),
    (["search", "darts_cnn", "--no-opt", "--passes", "drop_none"], "contradict"),
    (["search", "darts_cnn", "--dataset", "imagenet"], "unknown dataset"),
    (["search", "no_such_space"], "no space named"),
    (["train", "darts_v2", "--network", "small", "--dataset", "digits", "--lr", "inf"], "not a finite number"),
    (["train", "darts_v2", "--network", "small", "--dataset", "digits", "--momentum", "1"], "--momentum"),
    (["train", "darts_v2", "--network", "small", "--dataset", "digits", "--drop-path", "1.5"], "--drop-path"),
    (["train", "darts_v2", "--network", "small", "--dataset", "digits", "--weight-decay", "-1"], "--weight-decay"),
    (["train", "darts_v2", "--network", "small", "--dataset", "digits", "--device", "tpu"], "not a device"),
    (["train", "darts_v2", "--network", "small", "--dataset", "digits", "--bptt", "50"], "--bptt"),
    (["train", "darts_v2", "--network", "small", "--dataset", "nope"], "unknown dataset"),
    (["train", "darts_v2", "--network", "small", "--dataset", "digits", "--resume"], "--resume needs --run-dir"),
    (["compile", "darts_v2", "--network", "small", "--channels", "0"], "--channels"),
    (["compile", "darts_v2", "--network", "small", "--seed", "-3"], "--seed"),
    (["compile", "darts_v2", "--network", "small", "--vocab", "100"], "--vocab"),
    (["compile", "darts_v2", "--network", "small", "--export-path", "x.onnx"], "add --export"),
    (["compile", "darts_v2", "--network", "small", "--dataset", "ptb"], "text data set"),
    (["compile", "darts_v2", "--network", "nope"], "no network named"),
    (["eval", str(V2), "--dataset", "digits", "--limit", "0"], "--limit"),
    (["eval", "missing.pt", "--dataset", "digits"], "no such file"),
    (["eval", "missing.pt", "--dataset", "digits", "--device", "cuda:x"], "not a device"),
    (["bench", "train-step", "--iters", "0"], "--iters"),
    (["bench", "train-step", "--batch-size", "1"], "--batch-size"),
    (["bench", "search-step", "--device", "gpu"], "not a device"),
    (["show", "--passes", "all", str(V2)], "add --ir"),
    (["check", "-", "-"], "standard input"),
    (["list", "spacez"], "spacez"),
    (["import", "--from", "keras", "x"], "keras"),
    (["export", "--to", "darts", str(V2), "--name", "nope"], "no genotype 'nope'"),
    (["git-setup", "--repo", "/nonexistent/folder"], "no such folder"),
    (["draw", str(V2), "--format", "png"], "name it with -o"),
]


@pytest.mark.parametrize("argv,fragment", USAGE, ids=[" ".join(a[:3]) + f" {a[-2]}" for a, _ in USAGE])
def test_usage_errors_exit_2_whoever_finds_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                fragment: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*argv)
    fails_with_usage(result, fragment)
    assert not list(tmp_path.iterdir())  # refused before any work: no run folder, no output


def test_spec_and_input_errors_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.geno"
    bad.write_text(V2.read_text().replace("sep_conv_3x3(c0)", "sep_cnv_3x3(c0)", 1))
    for args in (["check", bad], ["show", bad], ["hash", bad], ["compile", bad, "--network", "small"]):
        fails_cleanly(run(*args), "unknown op 'sep_cnv_3x3'")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    fails_cleanly(run("eval", tmp_path / "junk.pt", "--dataset", "digits"), "damaged")


# ---- 7. messages that say what is wrong ----------------------------------------------------

def test_check_shows_warnings_of_genotypes_that_break_their_spaces_derive_rules(tmp_path: Path) -> None:
    path = tmp_path / "w.geno"
    # the same input twice, which darts_cnn's derive rule (distinct inputs) never gives
    path.write_text(V2.read_text().replace("n3 = sep_conv_3x3(c0) + sep_conv_3x3(c1)",
                                           "n3 = sep_conv_3x3(c1) + sep_conv_3x3(c1)", 1))
    result = run("check", path)
    assert result.exit_code == 0, result.output
    assert ": warning: " in result.stderr and "two different nodes" in result.stderr


# ---- 8. surprises -------------------------------------------------------------------------

def test_compile_sizes_a_found_genotype_for_the_data_it_was_searched_on(tmp_path: Path) -> None:
    found = tmp_path / "found.geno"
    found.write_text("# Found by 'genolang search' (DARTS, first order).\n"
                     "# dataset: digits; order 1; seed 0; epochs 8; batch 64\n" + V2.read_text())
    model = tmp_path / "m.pt"
    result = run("compile", found, "--network", "small", "-o", model)
    assert result.exit_code == 0, result.output
    assert "1x8x8 images, 10 classes (sized for digits, the data set the genotype was searched on" in result.stdout
    evaluated = run("eval", model, "--dataset", "digits", "--limit", "20")
    assert evaluated.exit_code == 0, evaluated.output
    assert "cifar" in run("compile", found, "--network", "small", "--dataset", "cifar10").stdout


def test_the_small_skeleton_has_no_oversized_auxiliary_head() -> None:
    result = run("compile", "darts_v2", "--network", "small", "--json")
    report = json.loads(result.stdout)
    assert report["params_with_aux"] == report["params"] and report["aux_cell"] is None


def _commands() -> dict[str, click.Command]:
    import importlib

    out: dict[str, click.Command] = {}
    for name, (module, attr, _) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attr)
        if isinstance(command, click.Group):
            out.update({f"{name} {sub}": command.get_command(click.Context(command), sub)  # type: ignore[misc]
                        for sub in command.list_commands(click.Context(command))})
        else:
            out[name] = command
    return out


def test_flags_mean_the_same_in_every_command() -> None:
    from genolang.cli.options import DEVICE, DEVICE_HELP

    for name, command in _commands().items():
        for param in command.params:
            names = set(param.opts) | set(param.secondary_opts)
            if "--device" in names:
                assert param.type is DEVICE and param.help == DEVICE_HELP, name
            if names & {"-o", "--output", "--out"} and name not in ("plot",):
                if "--out-dir" in names:  # a folder to write into (sample -o DIR): says so in its long name
                    assert names == {"-o", "--out-dir"}, (name, names)
                else:
                    assert {"-o", "--output", "--out"} <= names, (name, names)
            if "--force" in names:
                assert "replace" in (param.help or "").lower(), name
            if "--seed" in names:
                assert isinstance(param.type, click.IntRange) and param.type.min == 0, name
    for name in ("search", "train", "eval"):
        assert any("--limit" in p.opts for p in _commands()[name].params), name


def test_bench_takes_the_skeletons_sizes() -> None:
    from genolang.bench import BenchConfig, compile_for_bench

    model, shape = compile_for_bench(BenchConfig(network="small"), torch.device("cpu"), auxiliary=False)
    plan = cast(NetworkPlan, model.plan)
    assert plan.cells[0].channels == 16 and len(plan.cells) == 8
    assert shape.input_size == 8


def test_progress_to_a_pipe_is_whole_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from genolang.cli.progress import Reporter
    from genolang.run.progress import Progress

    reporter = Reporter(False, "training", every=0.0)
    assert not reporter.show_bar  # stderr is not a terminal here
    metrics = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.4, "test_acc": 0.9, "lr": 0.01,
               "drop_path": 0.0, "seconds": 1.0}
    for event in (Progress("start", 0, 1, 0, 1), Progress("epoch_start", 1, 1, 0, 1),
                  Progress("step", 1, 1, 1, 1, {"loss": 0.5, "acc": 0.8}), Progress("epoch_end", 1, 1, 1, 1, metrics),
                  Progress("done", 1, 1)):
        reporter(event)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    last = "epoch 1/1  train loss 0.5000 acc 80.00%  test loss 0.4000 acc 90.00%  lr 0.01  drop path 0.000  1.0s"
    assert err.splitlines() == ["training: 1 epoch of 1 step", "epoch 1/1: step 1/1, loss 0.500, acc 80.0%", last]


def test_counts_are_pluralised() -> None:
    assert [plural(n, "epoch") for n in (0, 1, 2, 1000)] == ["0 epochs", "1 epoch", "2 epochs", "1,000 epochs"]
    assert plural(1, "process", "processes") == "1 process" and plural(3, "process", "processes") == "3 processes"
    result = run("show", SPECS / "spaces" / "darts_rnn.geno")
    assert "1 input," in result.stdout and "1 inputs" not in result.stdout


def test_state_roundtrip_is_bit_exact(tmp_path: Path) -> None:
    weights = torch.randn(5, dtype=torch.float64)
    state = {"format": "t", "w": weights, "n": 3, "s": "x", "nested": {"b": [1, 2.5]}}
    save_state(tmp_path / "s.pt", state)
    loaded = read_state(tmp_path / "s.pt")
    assert loaded.verified and torch.equal(loaded.state["w"], weights) and loaded.state["nested"] == {"b": [1, 2.5]}
    buffer = io.BytesIO((tmp_path / "s.pt").read_bytes())
    assert torch.load(buffer, weights_only=True)["n"] == 3


def test_library_errors_are_genolang_errors() -> None:
    assert issubclass(TooLarge, GenolangError) and UsageError.exit_code == 2 and InputError.exit_code == 1
