"""A hostile corpus: spec inputs made to break a spec tool, generated from every shipped
spec (deterministically, from a seed), and the driver that runs the CLI on them.

The kinds, each applied to the shipped specs (``SPEC_FILES``):

* token mutations: deletions, duplications, swaps, truncations, a token replaced by a
  token of another spec;
* sizes: an op listed thousands of times on one line, a line of 100,000 characters, a
  name of 10,000 characters, thousands of declarations or nodes, braces nested 10,000
  deep, a file just over the size limit, huge numbers (``nodes = 10^50``, 500 digits,
  ``1e999999``), a space with 30,000 nodes;
* encodings: NUL bytes, invalid UTF-8 (a stray 0xff, a cut multi-byte sequence, an
  overlong form, a lone surrogate), a BOM at the start and in the middle, UTF-16, CRLF
  and lone CR line ends, form feeds, U+2028;
* look-alikes: Cyrillic and Greek letters in keywords and op names, fullwidth letters,
  zero-width spaces and joiners, right-to-left marks and overrides, NBSP.

``run_driver`` runs many CLI invocations in one fresh interpreter (spawning one per
invocation would take minutes) under an address-space limit, each under its own alarm,
and reports per invocation: exit status, output sizes, stderr, whether an exception
escaped (a traceback) and whether it ran out of time."""

from __future__ import annotations

import json
import os
import random
import re
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from conftest import SPEC_FILES

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[-+]?\d+(?:\.\d*)?|\s+|.", re.DOTALL)
LIMIT = 256 << 10  # genolang.parse.parser.MAX_SPEC_BYTES, restated: the corpus probes both sides


@dataclass(frozen=True)
class Hostile:
    """One input: a file name, its bytes, and the kind of hostility."""

    name: str
    data: bytes
    kind: str


def _sources() -> list[tuple[str, str]]:
    return [(source_stem(p), p.read_text(encoding="utf-8")) for p in SPEC_FILES]


def source_stem(path: Path) -> str:
    """A shipped spec's name in the corpus, unique across the library's folders
    (specs/ops/nb201.geno and specs/spaces/nb201.geno are ops_nb201 and spaces_nb201)."""
    return f"{path.parent.name}_{path.stem}"


def _token_mutations(rng: random.Random, stem: str, text: str, pool: list[str]) -> list[Hostile]:
    tokens = TOKEN.findall(text)
    out = []
    solid = [i for i, t in enumerate(tokens) if t.strip()]

    def emit(kind: str, toks: list[str]) -> None:
        out.append(Hostile(f"{stem}-{kind}.geno", "".join(toks).encode("utf-8"), kind))

    i = rng.choice(solid)
    emit("delete", tokens[:i] + tokens[i + 1:])
    i = rng.choice(solid)
    emit("duplicate", tokens[:i + 1] + tokens[i:])
    i, j = rng.sample(solid, 2)
    swapped = list(tokens)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    emit("swap", swapped)
    emit("truncate", TOKEN.findall(text[: rng.randrange(1, len(text))]))
    replaced = list(tokens)
    replaced[rng.choice(solid)] = rng.choice(pool)
    emit("replace", replaced)
    return out


def _encoding_mutations(rng: random.Random, stem: str, text: str) -> list[Hostile]:
    data = text.encode("utf-8")
    at = rng.randrange(1, len(data))
    word = re.search(r"\b(space|genotype|network|cell|ops|nodes|stem|concat|sep_conv_3x3|relu)\b", text)
    assert word is not None
    w0, w1 = word.span()

    def swap_in(replacement: str) -> bytes:
        return (text[:w0] + replacement + text[w1:]).encode("utf-8")

    kw = word.group(0)
    vowel = next((k for k, c in enumerate(kw) if c in "aeoc"), 0)
    cyrillic = dict(zip("aeoc", "аеос"))
    return [
        Hostile(f"{stem}-nul.geno", data[:at] + b"\x00" + data[at:], "nul"),
        Hostile(f"{stem}-ff-byte.geno", data[:at] + b"\xff" + data[at:], "invalid-utf8"),
        Hostile(f"{stem}-cut-utf8.geno", data + "é".encode()[:1], "invalid-utf8"),
        Hostile(f"{stem}-overlong.geno", data[:at] + b"\xc0\xaf" + data[at:], "invalid-utf8"),
        Hostile(f"{stem}-surrogate.geno", data[:at] + b"\xed\xa0\x80" + data[at:], "invalid-utf8"),
        Hostile(f"{stem}-bom.geno", b"\xef\xbb\xbf" + data, "bom"),
        Hostile(f"{stem}-bom-inside.geno", data[:w0] + b"\xef\xbb\xbf" + data[w0:], "bom"),
        Hostile(f"{stem}-utf16.geno", text.encode("utf-16"), "utf16"),
        Hostile(f"{stem}-crlf.geno", text.replace("\n", "\r\n").encode("utf-8"), "crlf"),
        Hostile(f"{stem}-cr.geno", text.replace("\n", "\r").encode("utf-8"), "cr"),
        Hostile(f"{stem}-cyrillic.geno",
                swap_in(kw[:vowel] + cyrillic.get(kw[vowel], "а") + kw[vowel + 1:]), "confusable"),
        Hostile(f"{stem}-greek.geno", swap_in(kw.replace("o", "ο", 1) if "o" in kw else "α" + kw[1:]), "confusable"),
        Hostile(f"{stem}-fullwidth.geno", swap_in(chr(ord(kw[0]) - 0x20 + 0xFF21) + kw[1:]), "confusable"),
        Hostile(f"{stem}-zwsp.geno", swap_in(kw[:1] + "\u200b" + kw[1:]), "zero-width"),
        Hostile(f"{stem}-zwj.geno", swap_in(kw + "\u200d"), "zero-width"),
        Hostile(f"{stem}-rlo.geno", (text[:w0] + "\u202e" + text[w0:]).encode("utf-8"), "bidi"),
        Hostile(f"{stem}-rlm-comment.geno", ("# \u200f\u202e comment\n" + text).encode("utf-8"), "bidi"),
        Hostile(f"{stem}-nbsp.geno", swap_in(kw + "\u00a0"), "nbsp"),
        Hostile(f"{stem}-u2028.geno", (text[:w0] + "\u2028" + text[w0:]).encode("utf-8"), "separator"),
    ]


def _size_mutations(stem: str, text: str) -> list[Hostile]:
    lines = text.split("\n")
    longest = max(range(len(lines)), key=lambda k: len(lines[k]))
    body = "\n".join(lines[:longest] + [lines[longest] + " # " + "x" * 100_000] + lines[longest + 1:])
    name = re.search(r"^(space|genotype|network|search|op) ([A-Za-z_]\w*)", text, re.MULTILINE)
    assert name is not None
    long_name = text.replace(f"{name.group(1)} {name.group(2)}", f"{name.group(1)} {'n' * 10_000}", 1)
    decl = text[name.start():]
    many = "genolang 1\n" + "\n".join(decl.replace(name.group(2), f"{name.group(2)}_{k}", 1) for k in range(60))
    return [
        Hostile(f"{stem}-long-line.geno", body.encode("utf-8"), "long-line"),
        Hostile(f"{stem}-long-name.geno", long_name.encode("utf-8"), "long-name"),
        Hostile(f"{stem}-many-decls.geno", many.encode("utf-8"), "many-decls"),
        Hostile(f"{stem}-repeated-decl.geno", (text + "\n" + decl).encode("utf-8"), "duplicate-decl"),
    ]


def _specials() -> list[Hostile]:
    ops = "none, skip_connect, sep_conv_3x3"
    space = ("genolang 1\nspace s {{\n    ops = {ops}\n"
             "    cell normal {{ inputs = {i}; nodes = {n}; keep = {k}; output = concat }}\n}}\n")
    geno_head = "genolang 1\ngenotype g : darts_cnn {\n    normal {\n"
    many_nodes = geno_head + "".join(f"        n{k} = sep_conv_3x3(c0) + sep_conv_3x3(c1)\n" for k in range(2, 3000))
    many_nodes += "        out = concat(n2..n2999)\n    }\n}\n"
    nested = "genolang 1\nspace s " + "{" * 10_000 + "}" * 10_000 + "\n"
    repeated_op = "genolang 1\nspace s {\n    ops = " + ", ".join(["sep_conv_3x3"] * 4000) + "\n}\n"
    over = "genolang 1\n" + "# " + "x" * (LIMIT + 10) + "\n"
    specials = {
        "empty": "", "blank": " \n\t\n", "only-comment": "# just a comment\n", "version-only": "genolang 1\n",
        "version-2": "genolang 2\nspace s { ops = none }\n", "version-huge": "genolang " + "9" * 200 + "\n",
        "nodes-10-50": space.format(ops=ops, i=2, n="1" + "0" * 50, k=2),
        "nodes-30000": space.format(ops=ops, i=2, n=30000, k=2),
        "nodes-10000": space.format(ops=ops, i=2, n=10000, k=2),
        "inputs-huge": space.format(ops=ops, i=10 ** 9, n=4, k=2),
        "keep-huge": space.format(ops=ops, i=2, n=4, k=10 ** 12),
        "keep-0x2": space.format(ops=ops, i=2, n=4, k="0x2"),
        "keep-1_0": space.format(ops=ops, i=2, n=4, k="1_0"),
        "keep-float": space.format(ops=ops, i=2, n=4, k="2.0"),
        "keep-neg": space.format(ops=ops, i=2, n=4, k=-2),
        "ops-empty": "genolang 1\nspace s {\n    ops =\n    cell normal { nodes = 4 }\n}\n",
        "number-500-digits": "genolang 1\nnetwork n {\n    stem = cifar\n    channels = " + "7" * 500 + "\n}\n",
        "number-1e999999": "genolang 1\nnetwork n {\n    stem = cifar\n    drop_path = 1e999999\n}\n",
        "channels-10-90": "genolang 1\nnetwork n {\n    stem = cifar\n    channels = 1" + "0" * 90 + "\n}\n",
        "layers-huge": "genolang 1\nnetwork n {\n    stem = cifar\n    layers = 99999999999\n}\n",
        "fraction-zero": "genolang 1\nnetwork n {\n    stem = cifar\n    reduce_at = 1/0, 2/0\n}\n",
        "many-nodes": many_nodes,
        "nested-braces": nested,
        "repeated-op": repeated_op,
        "over-size-limit": over,
        "space-as-space-name": "genolang 1\ngenotype g : g {\n    normal {\n        out = concat()\n    }\n}\n",
        "genotype-of-genotype": "genolang 1\ngenotype g : darts_cnn {}\ngenotype h : g {}\n",
        "tabs-and-formfeeds": "genolang 1\n\f\tnetwork\tn\t{\f stem = cifar }\n",
        "all-controls": "genolang 1\n" + "".join(chr(c) for c in range(1, 32)) + "\n",
        "random-unicode": "genolang 1\n" + "".join(chr(c) for c in range(0x370, 0x3ff)) + "\n",
        "emoji-name": "genolang 1\nnetwork 💥 { stem = cifar }\n",
        "range-backwards-huge": geno_head + "        out = concat(n999999..n2)\n    }\n}\n",
        "cap-huge": "genolang 1\nspace s {\n    ops = none, skip_connect\n    cell normal { nodes = 4 }\n"
                    "    derive { cap skip_connect = " + "9" * 90 + " }\n}\n",
        "binary-junk": bytes(range(256)).decode("latin-1"),
    }
    out = [Hostile(f"special-{k}.geno", v.encode("utf-8") if k != "binary-junk" else bytes(range(256)), "special")
           for k, v in specials.items()]
    out.append(Hostile("special-random-bytes.geno", random.Random(7).randbytes(4096), "special"))
    return out


def corpus(seed: int = 15) -> list[Hostile]:
    """The whole corpus (several hundred inputs), the same on every machine."""
    rng = random.Random(seed)
    sources = _sources()
    pool = sorted({t for _, text in sources for t in TOKEN.findall(text) if t.strip()})
    out: list[Hostile] = []
    for stem, text in sources:
        out += _token_mutations(rng, stem, text, pool)
        out += _encoding_mutations(rng, stem, text)
        out += _size_mutations(stem, text)
    out += _specials()
    names = [h.name for h in out]
    assert len(names) == len(set(names)), "corpus names must be unique"
    return out


# ---- running the CLI on it -----------------------------------------------------------------

DRIVER = r'''
import json, signal, sys, time, traceback
from click.testing import CliRunner
from genolang.cli import main

class Hang(BaseException):
    pass

def alarm(signum, frame):
    raise Hang()

signal.signal(signal.SIGALRM, alarm)
jobs = json.load(sys.stdin)
runner = CliRunner()
results = []
for job in jobs:
    began = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, job["timeout"])
    hang, crash = False, None
    try:
        result = runner.invoke(main, job["args"], input=job.get("stdin"), catch_exceptions=True)
        code = result.exit_code
        out, err = result.stdout, result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            crash = "".join(traceback.format_exception(result.exception))[-3000:]
    except Hang:
        hang, code, out, err = True, None, "", ""
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    results.append({"args": job["args"], "code": code, "hang": hang, "crash": crash,
                    "stdout_len": len(out), "stderr_len": len(err), "stderr": err[:4000],
                    "stdout": out[:2000], "seconds": time.perf_counter() - began})
json.dump(results, sys.stdout)
'''


def limit_memory(limit_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` capping the child's address space."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return apply


def run_driver(jobs: Sequence[dict[str, object]], cwd: Path, memory: int, timeout: float) -> list[dict[str, object]]:
    """Run ``jobs`` (``{"args": [...], "timeout": s, "stdin": text?}``) in one fresh
    interpreter under an address-space limit of ``memory`` bytes and ``timeout``
    seconds in all."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", COLUMNS="100", GENOLANG_PATH="")
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(list(jobs)), capture_output=True,
                          check=False, text=True, timeout=timeout, cwd=cwd, env=env, preexec_fn=limit_memory(memory))
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout)
