"""Sphinx configuration: the API reference built from torchscan's docstrings.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (after ``pip install -e ".[docs]"``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from torchscan.version import __version__

project = "torchscan"
author = "torchscan contributors"
copyright = "torchscan contributors"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",  # the API pages, from the docstrings (reStructuredText, read natively)
    "sphinx.ext.viewcode",  # a [source] link beside every documented object
    "myst_parser",  # Markdown pages: the index, and README.md and ARCHITECTURE.md included as they are
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

# Docstrings name internal helpers (``:func:`_collector_paused```) and third-party types (torch, networkx)
# that this reference does not document: unresolved references render as code, not as warnings.
nitpicky = False
default_role = "code"  # a `single-backtick` slip in a docstring renders as code (as in Markdown), not italics

autodoc_member_order = "bysource"
autodoc_typehints = "signature"  # the docstrings describe parameters in prose; types stay in the signature
maximum_signature_line_length = 88  # a longer signature gets one parameter per line
autodoc_typehints_format = "short"
python_use_unqualified_type_names = True

myst_heading_anchors = 3  # slugs for ``[text](#heading)`` links in the included Markdown

html_theme = "furo"
html_title = f"torchscan {release}"

# The README and ARCHITECTURE.md are included as they are. Their links to repository files are resolved
# here: a file that has a page of its own links to that page; any other file (``benchmarks/speed.md``)
# is not part of this site, so the link is dropped and its text kept.
ROOT = Path(__file__).resolve().parents[1]
PAGES = {"README.md": "guide.md", "ARCHITECTURE.md": "architecture.md"}
LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([\w./-]+\.\w+)(#[\w-]+)?\)")


def _repository_links(app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    """Point links to repository files in included Markdown at their pages (or drop them)."""

    def resolve(match: re.Match[str]) -> str:
        text, target, anchor = match.group(1), match.group(2), match.group(3) or ""
        if target in PAGES:
            return f"[{text}]({PAGES[target]}{anchor})"
        return text if (ROOT / target).exists() else match.group(0)  # a missing file stays a broken link

    if relative_path.suffix == ".md":
        content[0] = LINK.sub(resolve, content[0])


def _factory_defaults(
    app: Sphinx, what: str, name: str, obj: object, options: object, signature: str | None, annotation: str | None
) -> tuple[str | None, str | None]:
    """Write a dataclass ``default_factory`` default as ``...``: ``<factory>`` is not Python, and Sphinx
    prints a signature it cannot parse as raw text (no links, no line wrapping)."""
    return (signature.replace("<factory>", "...") if signature else signature), annotation


HELP_COLUMNS = "100"


@contextlib.contextmanager
def _plain_terminal() -> Iterator[None]:
    """argparse formats help for the terminal: a fixed width, no colour (Python 3.14 colours help)."""
    saved = {key: os.environ.get(key) for key in ("COLUMNS", "NO_COLOR")}
    os.environ.update(COLUMNS=HELP_COLUMNS, NO_COLOR="1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _helps(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """``(prog, --help text)`` of ``parser`` and of each subcommand, depth first."""
    helps = [(parser.prog, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias names the same parser
                helps += _helps(sub)
    return helps


class CommandHelp(SphinxDirective):
    """``.. command-help:: module:function``: the ``--help`` text of the parser that ``function()`` returns
    and of its subcommands, as printed (the page follows the parser, never a pasted copy)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module, _, function = self.arguments[0].partition(":")
        try:
            parser = getattr(importlib.import_module(module), function)()
        except Exception as error:  # a renamed parser function fails the build, saying which
            raise self.error(f"command-help: cannot build the parser {self.arguments[0]}: {error!r}") from error
        with _plain_terminal():
            helps = _helps(parser)
        result: list[nodes.Node] = []
        for index, (prog, text) in enumerate(helps):
            if index:
                result.append(nodes.rubric(text=prog))
            block = nodes.literal_block(text, text)
            block["language"] = "text"
            result.append(block)
        return result


def setup(app: Sphinx) -> None:
    app.add_directive("command-help", CommandHelp)
    app.connect("include-read", _repository_links)
    app.connect("autodoc-process-signature", _factory_defaults)
