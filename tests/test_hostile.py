"""The hostile corpus (``tests/hostile.py``) through the command line, under a memory
limit and a time limit per command: every command exits 0, 1 or 2 with the status the
contract gives it (``genolang.errors``), never shows a traceback, never hangs, keeps
its output bounded, and agrees with ``check`` about whether a file is good. Also:
inputs that are not regular files, standard input for every spec command, and
property tests over mutations, sizes and encodings."""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SPEC_FILES, SPECS
from genolang.errors import GenolangError, SpecError
from genolang.parse.parser import MAX_SPEC_BYTES, parse, read_text
from genolang.spec.check import check
from hostile import LIMIT, Hostile, corpus, run_driver, source_stem

SPEC_MEMORY = 512 << 20  # the spec commands never import torch: 45 MiB of address space is what they start with
TORCH_MEMORY = 6 << 30  # torch maps about 3.2 GiB of address space on import
PER_COMMAND_S = 60  # a hang guard, not a timing claim
MAX_STDERR = 100_000  # at most 20 diagnostics a file, lines cut around the caret, messages clipped
MAX_STDOUT = 2_000_000
OTHERS = (["show"], ["show", "--ir"], ["graph"], ["hash"], ["export", "--to", "darts"], ["diff"])


def test_the_limit_restated_in_the_corpus_is_the_parser_s() -> None:
    assert LIMIT == MAX_SPEC_BYTES


def test_the_corpus_is_large_and_covers_every_kind_for_every_shipped_spec() -> None:
    items = corpus()
    assert len(items) >= 150
    kinds = collections.Counter(h.kind for h in items)
    for kind in ("delete", "duplicate", "swap", "truncate", "replace", "nul", "invalid-utf8", "bom", "utf16", "crlf",
                 "confusable", "zero-width", "bidi", "long-line", "long-name", "many-decls"):
        assert kinds[kind] >= len(SPEC_FILES), kind
    assert corpus() == items  # deterministic: the same corpus on every machine
    assert any(len(h.data) > MAX_SPEC_BYTES for h in items) and any(b"{" * 1000 in h.data for h in items)


def _place(items: list[Hostile], root: Path) -> dict[str, Path]:
    """Each input in a folder of its own, so that names resolve as if it were alone."""
    out = {}
    for h in items:
        folder = root / h.name[: -len(".geno")]
        folder.mkdir()
        (folder / h.name).write_bytes(h.data)
        out[h.name] = folder / h.name
    return out


def _original(name: str) -> Path:
    stem = name.split("-")[0]
    found = [p for p in SPEC_FILES if source_stem(p) == stem]
    return found[0] if found else SPECS / "genotypes" / "darts_v2.geno"


def _jobs(items: list[Hostile], paths: dict[str, Path]) -> list[dict[str, Any]]:
    jobs = []
    for k, h in enumerate(items):
        path = str(paths[h.name])
        picks = [["check", path], ["fmt", "--check", path]]
        for extra in (OTHERS[k % len(OTHERS)], OTHERS[(k + 3) % len(OTHERS)]):
            picks.append([*extra, path, str(_original(h.name))] if extra == ["diff"] else [*extra, path])
        jobs += [{"args": args, "timeout": PER_COMMAND_S, "input": h.name} for args in picks]
    return jobs


def _run_in_two(jobs: list[dict[str, Any]], cwd: Path, memory: int) -> list[dict[str, Any]]:
    halves = [jobs[0::2], jobs[1::2]]
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda part: run_driver(part, cwd, memory, 900), halves))
    results = []
    for job, result in zip(halves[0] + halves[1], done[0] + done[1]):
        results.append({**result, "input": job["input"]})
    return results


def _expected(args: list[str], verdict: int, result: dict[str, Any]) -> set[int]:
    """The exit statuses the contract allows ``args`` on a regular file whose ``check``
    exit status is ``verdict`` (0 good, 1 spec errors)."""
    command = args[0]
    if command == "check":
        return {0, 1}
    if command == "fmt":
        return {0, 1}  # 1: would reformat, or does not parse
    if command == "diff":
        return {2} if verdict else {0, 1, 2}  # diff's own convention; 2 when not one genotype or space
    if verdict:
        return {1}
    if command == "graph":
        return {0, 2}  # 2: a file of networks only has nothing to draw (how the command was used)
    if command == "export":
        return {0, 1}  # 1: not exactly one genotype, or not one of the DARTS form
    return {0}


def _audit(results: list[dict[str, Any]]) -> tuple[collections.Counter[str], list[str]]:
    verdicts = {r["input"]: r["code"] for r in results if r["args"][0] == "check"}
    counts: collections.Counter[str] = collections.Counter()
    problems = []
    for r in results:
        args, name = r["args"], r["input"]
        where = f"{' '.join(a.rsplit('/', 1)[-1] for a in args)}"
        counts["invocations"] += 1
        if r["hang"]:
            counts["hangs"] += 1
            problems.append(f"{where}: no answer within {PER_COMMAND_S} s")
            continue
        if r["crash"] or "Traceback" in r["stderr"]:
            counts["tracebacks"] += 1
            problems.append(f"{where}: traceback\n{r['crash'] or r['stderr']}")
            continue
        if r["code"] not in _expected(args, verdicts[name], r):
            counts["wrong exit codes"] += 1
            problems.append(f"{where}: exit {r['code']}, expected {sorted(_expected(args, verdicts[name], r))}; "
                            f"check said {verdicts[name]}\n{r['stderr'][:1500]}")
            continue
        if "out of memory" in r["stderr"]:
            counts["out of memory"] += 1
            problems.append(f"{where}: ran out of memory under {SPEC_MEMORY >> 20} MiB")
        if r["stderr_len"] > MAX_STDERR or r["stdout_len"] > MAX_STDOUT:
            counts["unbounded output"] += 1
            problems.append(f"{where}: {r['stdout_len']} characters of output, {r['stderr_len']} of errors")
        if r["code"]:
            counts["clean errors"] += 1
            first = r["stderr"].splitlines()[0] if r["stderr"] else ""
            located = first.startswith("error: ") or ".geno" in first.split(": ")[0] or "<stdin>" in first
            if (args[0] != "fmt" or "would reformat" not in first) and not located:
                problems.append(f"{where}: the error does not start with its file: {first!r}")
        else:
            counts["ok"] += 1
    return counts, problems


def test_spec_commands_on_the_hostile_corpus(tmp_path: Path) -> None:
    items = corpus()
    paths = _place(items, tmp_path)
    results = _run_in_two(_jobs(items, paths), tmp_path, SPEC_MEMORY)
    counts, problems = _audit(results)
    (tmp_path / "summary.json").write_text(json.dumps({"inputs": len(items), **counts}, indent=1))
    print(f"\nhostile corpus: {len(items)} inputs, {dict(counts)}")
    assert not problems, "\n\n".join(problems[:20]) + f"\n... {len(problems)} problems"
    assert counts["tracebacks"] == counts["hangs"] == counts["wrong exit codes"] == 0
    assert counts["clean errors"] > len(items) // 3 and counts["ok"] > len(items) // 4
    # the tampering never reached a file: every input is as it was
    assert all(paths[h.name].read_bytes() == h.data for h in items)


HUGE = [["compile", "darts_v2", "--network", "small", "--channels", "100000"],
        ["compile", "darts_v2", "--network", "cifar", "--input-size", "100000"],
        ["compile", "darts_rnn_v2", "--network", "ptb", "--hidden", "100000"],
        ["compile", "darts_v2", "--network", "cifar", "--layers", "10000", "--channels", "4096"]]


def _compile_jobs(root: Path) -> list[dict[str, Any]]:
    stems = ("genotypes_darts_v1-", "genotypes_darts_v2-", "genotypes_nasnet_a-")
    items = [h for h in corpus() if h.name.startswith(stems)][::5]
    folder = root / "compile"
    folder.mkdir()
    paths = _place(items, folder)
    jobs = [{"args": ["compile", str(paths[h.name]), "--network", "small_search", "--channels", "2", "--layers", "3"],
             "timeout": PER_COMMAND_S, "test": "compile"} for h in items]
    jobs += [{"args": ["check", str(paths[h.name])], "timeout": PER_COMMAND_S, "test": "compile"} for h in items]
    return jobs + [{"args": args, "timeout": PER_COMMAND_S, "test": "huge"} for args in HUGE]


@pytest.fixture(scope="module")
def torch_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The commands that import torch, run in one interpreter (importing torch takes
    seconds): compile on corpus inputs and on impossible sizes, inputs that are not
    regular files, standard input."""
    root = tmp_path_factory.mktemp("torch")
    jobs = _compile_jobs(root) + _irregular_jobs(root) + _stdin_jobs()
    results = run_driver(jobs, root, TORCH_MEMORY, 900)
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for job, result in zip(jobs, results):
        out[str(job["test"])].append({**result, "stdin": job.get("stdin")})
    return out


def test_compile_on_mutated_genotypes(torch_results: dict[str, list[dict[str, Any]]]) -> None:
    """``compile`` (it imports torch) on the corpus's CNN genotype inputs, and on sizes no
    machine can build: refused with the estimate and the limit, never allocated."""
    results = torch_results["compile"]
    verdicts = {r["args"][1]: r["code"] for r in results if r["args"][0] == "check"}
    for r in results:
        assert not r["hang"] and not r["crash"] and "Traceback" not in r["stderr"], r
        if r["args"][0] == "compile":
            assert r["code"] in ({0, 1} if verdicts[r["args"][1]] == 0 else {1}), r
    assert any(r["code"] == 0 for r in results if r["args"][0] == "compile")
    for r in torch_results["huge"]:
        assert not r["crash"] and r["code"] == 1, r
        assert "needs at least" in r["stderr"] and "GiB" in r["stderr"] and "limit" in r["stderr"], r["stderr"]


GOOD = str(SPECS / "genotypes" / "darts_v2.geno")
IRREGULAR = {"pipe.geno": "FIFO", "/dev/zero": "character device", "loop.geno": "symbolic links",
             "folder.geno": "folder", "missing.geno": "no such file"}


def _irregular_jobs(root: Path) -> list[dict[str, Any]]:
    folder = root / "irregular"
    folder.mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.geno")
    (folder / "loop.geno").symlink_to(folder / "loop.geno")
    (folder / "folder.geno").mkdir()
    jobs = []
    for name, kind in IRREGULAR.items():
        if name == "pipe.geno" and not hasattr(os, "mkfifo"):
            continue
        path = name if name.startswith("/") else str(folder / name)
        commands = [["check", path], ["fmt", path], ["fmt", "--check", path], ["hash", path],
                    ["export", "--to", "darts", path], ["diff", path, GOOD], ["compile", path, "--network", "small"]]
        if name != "folder.geno":  # show and graph of a folder: it is a path, not a spec
            commands += [["show", path], ["graph", path]]
        jobs += [{"args": args, "timeout": 20, "test": "irregular", "kind": kind} for args in commands]
    return jobs


def test_inputs_that_are_not_regular_files_are_usage_errors(torch_results: dict[str, list[dict[str, Any]]]) -> None:
    """A FIFO (nobody writes to it: opening it would block), /dev/zero (reading it never
    ends), a folder where a file is wanted, a symlink loop and a missing file: every
    command answers at once with exit 2 and says what the path is."""
    results = torch_results["irregular"]
    assert len(results) >= 30
    for r in results:
        assert not r["hang"], f"{r['args']}: blocked"
        assert not r["crash"] and "Traceback" not in r["stderr"], r
        path = next(a for a in r["args"] if any(a.endswith(k) for k in IRREGULAR))
        if path.endswith("folder.geno") and r["args"][0] in ("check", "fmt"):
            assert r["code"] == 2 and "holds no .geno files" in r["stderr"], r  # a folder of specs is fine
            continue
        kind = next(v for k, v in IRREGULAR.items() if path.endswith(k))
        assert r["code"] == 2, r
        assert kind in r["stderr"], r


DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


def _stdin_jobs() -> list[dict[str, Any]]:
    text = (SPECS / "genotypes" / "darts_v2.geno").read_text(encoding="utf-8")
    jobs = [{"args": args, "timeout": 30, "stdin": text, "test": "stdin"} for args in (
        ["check", "-"], ["show", "-"], ["show", "--ir", "-"], ["hash", "-"], ["graph", "-"],
        ["export", "--to", "darts", "-"], ["diff", "-", GOOD], ["fmt", "-"], ["fmt", "--check", "-"],
        ["compile", "-", "--network", "small_search", "--channels", "2", "--layers", "3"])]
    jobs.append({"args": ["import", "--from", "darts", "-"], "timeout": 30, "stdin": DARTS_V2, "test": "stdin"})
    jobs.append({"args": ["check", "-"], "timeout": 30, "stdin": "genolang 1\nspace s {\n", "test": "stdin-bad"})
    jobs.append({"args": ["check", "-", "-"], "timeout": 30, "stdin": text, "test": "stdin-twice"})
    return jobs


def test_standard_input_is_read_by_every_spec_command(torch_results: dict[str, list[dict[str, Any]]]) -> None:
    results = torch_results["stdin"]
    for r in results:
        assert r["code"] == 0 and not r["crash"], r
    assert "<stdin>: ok (genotype darts_v2)" in results[0]["stdout"]
    (bad,) = torch_results["stdin-bad"]
    assert bad["code"] == 1 and bad["stderr"].startswith("<stdin>:2:10: error: unexpected end of file"), bad
    (twice,) = torch_results["stdin-twice"]
    assert twice["code"] == 2 and "'-' (standard input) can be given once" in twice["stderr"], twice


# ---- properties over mutations, sizes and encodings ------------------------------------------

SOURCES = [p.read_text(encoding="utf-8") for p in SPEC_FILES]
ODD = st.sampled_from(["\x00", "\xff", "\u200b", "\u200d", "\u202e", "\u200f", "\ufeff", "\u00a0", "\u2028",
                       "а", "е", "о", "ο", "ｓ", "é", "💥", "\r", "\r\n", "\f", "\t", "{" * 50, "}" * 50, "#",
                       "9" * 150, "1e999", "0x2", "1_000", "n" * 150, "..", "/0"])
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """A shipped spec with odd characters inserted, a part repeated, an encoding changed."""
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            text = text[:at] + draw(ODD) + text[at:]
        elif choice == 1:
            end = min(len(text), at + draw(st.integers(1, 40)))
            text = text[:at] + text[at:end] * draw(st.integers(2, 300)) + text[end:]
        elif choice == 2:
            text = text[:at]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


def _bounded(err: GenolangError, text: str | None) -> None:
    rendered = err.render()
    assert rendered and "Traceback" not in rendered
    assert len(rendered) <= MAX_STDERR
    if isinstance(err, SpecError) and text is not None:
        lines = text.count("\n") + 1
        for d in err.diagnostics:
            if d.span is not None and d.path == "p.geno":
                assert 1 <= d.span.line <= lines + 1 and d.span.column >= 1, d


@PROPERTY
@given(hostile_bytes())
def test_any_bytes_read_parse_and_check_to_clean_bounded_errors(tmp_path_factory: pytest.TempPathFactory,
                                                                 data: bytes) -> None:
    folder = tmp_path_factory.mktemp("p")
    path = folder / "p.geno"
    path.write_bytes(data)
    try:
        text = read_text(str(path))
    except GenolangError as err:
        _bounded(err, None)
        return
    try:
        check(parse(text, "p.geno"), text).raise_errors()
    except GenolangError as err:
        _bounded(err, text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 200), st.sampled_from(["sep_conv_3x3", "skip_connect, none", "n2..n3", "# c\n"]))
def test_sizes_grow_the_errors_not_the_output(repeat: int, part: str) -> None:
    """However many times a part repeats, at most 20 diagnostics of a file are shown and
    the rest are counted."""
    text = ("genolang 1\nspace s {\n    ops = " + ", ".join([part] * repeat) + "\n    cell normal { nodes = 2 }\n}\n")
    try:
        check(parse(text, "p.geno"), text).raise_errors()
    except SpecError as err:
        rendered = err.render()
        assert len(rendered) < 40_000
        shown = sum(1 for line in rendered.splitlines() if line.startswith("p.geno:") and ": error: " in line)
        assert shown <= 20
        if len([d for d in err.diagnostics if d.severity == "error"]) > 20:
            assert "more error" in rendered


def test_a_rendered_long_line_is_cut_around_the_caret() -> None:
    text = "genolang 1\nspace s {\n    ops = " + ", ".join(["skip_connect"] * 3_000) + "\n}\n"
    with pytest.raises(SpecError) as info:
        check(parse(text, "p.geno"), text).raise_errors()
    rendered = info.value.render()
    assert len(rendered) < 20_000
    errors = len([d for d in info.value.diagnostics if d.severity == "error"])
    assert errors >= 2_999 and f"p.geno: ... and {errors - 20:,} more errors" in rendered
    assert all(len(line) < 400 for line in rendered.splitlines())


def test_random_bytes_never_crash_the_reader(tmp_path: Path) -> None:
    rng = random.Random(15)
    for k in range(60):
        data = rng.randbytes(rng.randrange(0, 3000))
        path = tmp_path / f"r{k}.geno"
        path.write_bytes(data)
        try:
            text = read_text(str(path))
            check(parse(text, str(path)), text)
        except GenolangError as err:
            _bounded(err, None)
    shutil.rmtree(tmp_path)
