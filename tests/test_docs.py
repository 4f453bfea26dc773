"""The documentation under docs/: every public name has a page entry, and the site builds with warnings as errors.

The build tests need the ``docs`` extra (``pip install -e ".[docs]"``) and are skipped without it; CI builds
the docs in ``.ci/run`` with the same command (:data:`BUILD`).
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import torchscan
import torchscan.ops

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
"""``sphinx-build -W --keep-going``: every warning (a malformed docstring, a broken link) fails the build."""

DIRECTIVE = re.compile(r"^\.\. (currentmodule|auto\w+):: (\S+)", re.M)
MEMORY_RECORDS = ("ActivationPeak", "MemoryReport", "TrainingEstimate")
NOT_FAMILIES = {"__init__", "registry", "common"}  # torchscan/ops modules that hold no formulas


def documented() -> set[str]:
    """Fully qualified names that an ``auto*::`` directive of a docs page documents."""
    names: set[str] = set()
    for page in sorted(DOCS.glob("*.rst")):
        module = ""
        for kind, name in DIRECTIVE.findall(page.read_text()):
            if kind in ("currentmodule", "automodule"):
                module = name
            names.add(name if kind == "automodule" or name.startswith("torchscan.") else f"{module}.{name}")
    return names


def test_documented_parses_directives(tmp_path: Path) -> None:
    text = ".. currentmodule:: torchscan\n\n.. autofunction:: summary\n\n.. autoclass:: torchscan.records.Row\n"
    assert {name for _, name in DIRECTIVE.findall(text)} == {"torchscan", "summary", "torchscan.records.Row"}


@pytest.mark.parametrize(
    "name",
    [f"torchscan.{name}" for name in torchscan.__all__]
    + [f"torchscan.records.{name}" for name in MEMORY_RECORDS]
    + [f"torchscan.ops.{name}" for name in torchscan.ops.__all__],
)
def test_every_public_name_is_on_a_page(name: str) -> None:
    page = "docs/api.rst" if not name.startswith("torchscan.ops.") else "docs/ops.rst"
    assert name in documented(), f"{name} is public but undocumented: add an auto* directive for it to {page}"


@pytest.mark.parametrize(
    "family", sorted(path.stem for path in (ROOT / "torchscan" / "ops").glob("*.py") if path.stem not in NOT_FAMILIES)
)
def test_every_formula_family_is_on_the_formulas_page(family: str) -> None:
    assert f"torchscan.ops.{family}" in documented(), "add an automodule section for it to docs/formulas.rst"


def needs_sphinx() -> None:
    for module in ("sphinx", "myst_parser", "furo"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f'{module} is not installed: pip install -e ".[docs]"')


def build(source: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BUILD, str(source), str(output)], capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    needs_sphinx()
    result = build(DOCS, tmp_path / "html")
    assert result.returncode == 0, result.stderr
    for page in ("index", "guide", "api", "ops", "formulas", "cli", "architecture"):
        assert (tmp_path / "html" / f"{page}.html").exists(), page
    api = (tmp_path / "html" / "api.html").read_text()
    assert 'id="torchscan.crawl_module"' in api and 'id="torchscan.Report.to_html"' in api
    cli = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "html" / "cli.html").read_text()))
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    shown = subprocess.run([sys.executable, "-m", "torchscan", "--help"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and "--input-shape" in shown.stdout
    for line in shown.stdout.splitlines():
        assert line in cli, line  # the CLI page is what `torchscan --help` prints


@pytest.mark.slow
def test_a_malformed_docstring_fails_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The configuration (references not nitpicked) still turns a docstring that renders wrong into an error."""
    needs_sphinx()
    source = tmp_path / "docs"
    source.mkdir()
    (source / "conf.py").write_text(f"import runpy\n\nglobals().update(runpy.run_path({str(DOCS / 'conf.py')!r}))\n")
    (source / "index.rst").write_text("Planted\n=======\n\n.. autofunction:: planted.f\n")
    (tmp_path / "planted.py").write_text('def f() -> None:\n    """An ``unterminated literal."""\n')
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    result = build(source, tmp_path / "html")
    assert result.returncode != 0
    assert "planted.f" in result.stderr and "Inline literal start-string without end-string" in result.stderr
