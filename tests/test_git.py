"""Git integration: git-setup is idempotent, and in a real repository ``git diff``
shows a re-indented spec with one changed op as a one-line change; the pre-commit hook
file offers the fmt and check hooks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO, SPECS
from genolang.cli import main
from genolang.vcs.git import ATTRIBUTE_LINE, config

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    """An environment where git sees no user or system config and finds genolang."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org", GIT_PAGER="cat", PAGER="cat",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    return env


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path, git_env: dict[str, str]) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, git_env, "init", "-q")
    return path


def test_git_setup_is_idempotent(repo: Path, git_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in git_env.items():
        monkeypatch.setenv(key, value)
    (repo / ".gitattributes").write_text("*.png binary", encoding="utf-8")  # no final newline
    sub = repo / "specs"
    sub.mkdir()
    first = CliRunner().invoke(main, ["git-setup", "--repo", str(sub)])
    assert first.exit_code == 0, first.output
    assert "added '*.geno diff=genolang'" in first.stdout
    assert (repo / ".gitattributes").read_text(encoding="utf-8") == "*.png binary\n" + ATTRIBUTE_LINE + "\n"
    for key, value in config().items():
        assert git(repo, git_env, "config", "--local", "--get", key).rstrip("\n") == value
    second = CliRunner().invoke(main, ["git-setup", "--repo", str(repo)])
    assert second.exit_code == 0 and second.stdout.startswith("already set up")
    assert (repo / ".gitattributes").read_text(encoding="utf-8").count("diff=genolang") == 1
    assert git(repo, git_env, "config", "--local", "--get-all", "diff.genolang.textconv").count("\n") == 1


def test_git_setup_outside_a_repository(tmp_path: Path, git_env: dict[str, str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in git_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    result = CliRunner().invoke(main, ["git-setup", "--repo", str(plain)])
    assert result.exit_code == 2  # --repo names a folder outside any repository: a usage error
    assert "not inside a git repository" in result.stderr and "git init" in result.stderr
    result = CliRunner().invoke(main, ["git-setup", "--repo", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such folder" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.skipif(not (Path(sys.executable).parent / "genolang").exists(),
                    reason="the genolang script is not installed beside this Python")
def test_textconv_shows_one_line_for_one_op(repo: Path, git_env: dict[str, str]) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "genolang"), "git-setup", "--repo", str(repo)],
                          env=git_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    spec = repo / "darts_v2.geno"
    original = (SPECS / "genotypes" / "darts_v2.geno").read_text(encoding="utf-8")
    spec.write_text(original, encoding="utf-8")
    git(repo, git_env, "add", ".")
    git(repo, git_env, "commit", "-q", "-m", "darts_v2")
    # re-indent everything, squeeze spaces, add ';' (all formatting), and change one op
    messy = re.sub(r"^ +", "\t", original, flags=re.MULTILINE).replace(" = ", "=").replace(")\n", ");\n")
    messy = messy.replace("dil_conv_3x3(n2)", "sep_conv_5x5(n2)")
    spec.write_text(messy, encoding="utf-8")
    raw = git(repo, git_env, "diff", "--no-textconv", "--", "darts_v2.geno")
    assert len([line for line in raw.splitlines() if line.startswith(("-", "+"))]) > 10  # noisy without textconv
    diff = git(repo, git_env, "diff", "--", "darts_v2.geno")
    changed = [line for line in diff.splitlines()
               if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))]
    assert changed == ["-        n5 = skip_connect(c0) + dil_conv_3x3(n2)",
                       "+        n5 = skip_connect(c0) + sep_conv_5x5(n2)"]
    # the hunk header names the enclosing block
    assert re.search(r"^@@ .* @@ .*(normal|genotype darts_v2)", diff, flags=re.MULTILINE), diff
    git(repo, git_env, "commit", "-q", "-am", "one op")
    log = git(repo, git_env, "log", "-p", "-1")
    assert "+        n5 = skip_connect(c0) + sep_conv_5x5(n2)" in log
    # a revision that does not parse is shown as it is, not an error
    spec.write_text(original.replace("out = concat", "out concat"), encoding="utf-8")
    assert "out concat" in git(repo, git_env, "diff", "--", "darts_v2.geno")


@pytest.mark.skipif(not (Path(sys.executable).parent / "genolang").exists(),
                    reason="the genolang script is not installed beside this Python")
def test_textconv_works_without_the_environment_on_path(repo: Path, git_env: dict[str, str]) -> None:
    """git-setup writes the absolute path of the genolang that ran it, so 'git diff'
    works from a shell where the virtual environment is not activated."""
    script = Path(sys.executable).parent / "genolang"
    done = subprocess.run([str(script), "git-setup", "--repo", str(repo)], env=git_env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    textconv = git(repo, git_env, "config", "--local", "--get", "diff.genolang.textconv").strip()
    assert textconv == f"{script.absolute()} fmt --stdout --lenient"
    bare = dict(git_env, PATH=os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                               if Path(p).resolve() != script.parent.resolve()))
    spec = repo / "darts_v2.geno"
    spec.write_text((SPECS / "genotypes" / "darts_v2.geno").read_text(encoding="utf-8"), encoding="utf-8")
    git(repo, bare, "add", ".")
    git(repo, bare, "commit", "-q", "-m", "darts_v2")
    spec.write_text(spec.read_text(encoding="utf-8").replace("dil_conv_3x3(n2)", "sep_conv_5x5(n2)"), encoding="utf-8")
    assert "+        n5 = skip_connect(c0) + sep_conv_5x5(n2)" in git(repo, bare, "diff", "--", "darts_v2.geno")


def test_pre_commit_hooks_file() -> None:
    text = (REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    assert "\t" not in text
    hooks = {}
    for block in re.split(r"^- (?=id: )", text, flags=re.MULTILINE)[1:]:  # one YAML list item per hook
        fields = dict(re.findall(r"^\s*(\w+): (.+)$", block, flags=re.MULTILINE))
        hooks[fields["id"]] = fields
    assert set(hooks) == {"genolang-fmt", "genolang-check"}
    assert hooks["genolang-fmt"]["entry"] == "genolang fmt --check"
    assert hooks["genolang-check"]["entry"].startswith("genolang check")
    for hook in hooks.values():
        assert hook["files"] == r"\.geno$" and hook["language"] in {"python", "system"} and hook["name"]
    # the entries run: a canonical shipped spec passes both
    spec = str(SPECS / "genotypes" / "darts_v2.geno")
    assert CliRunner().invoke(main, ["fmt", "--check", spec]).exit_code == 0
    assert CliRunner().invoke(main, ["check", "--quiet", spec]).exit_code == 0
