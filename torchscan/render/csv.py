"""CSV export of the report rows (one line per row, down to a depth)."""

from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, TextIO

from torchscan.records import Row

if TYPE_CHECKING:
    from torchscan.report import Report

__all__ = ["CSV_COLUMNS", "cell", "neutralise", "to_csv"]

CSV_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(Row))
"""The columns, in order: every :class:`Row` field (shapes and per-dim values as ``1x64x56x56``)."""


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
"""Starts a spreadsheet may run as a formula (OWASP CSV injection), and ``'`` itself so the prefix can be undone."""


def neutralise(text: str) -> str:
    """``text`` with a ``'`` in front when a spreadsheet could read it as a formula (``=``, ``+``, ``-``,
    ``@``, tab, CR) or when it starts with ``'`` itself, so dropping one leading ``'`` gives ``text`` back."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def cell(value: object) -> str:
    """A row value as CSV text: tuples ``x``-joined (``1x64x56x56``), None empty, booleans ``true``/``false``,
    numbers as is (``-1`` stays a number) and strings (names, types, markers) :func:`neutralise`-d."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "x".join(str(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return neutralise(value)
    return str(value)


def to_csv(report: Report, path_or_file: str | Path | TextIO | None = None, depth: int | None = None) -> str:
    """The rows down to ``depth`` (all when None) as CSV text, also written to ``path_or_file`` if given.

    Numbers are exact integers; ``is_leaf`` is ``true``/``false``; the leaf rows (or the rows of
    ``report.rows_at_depth(d)``) sum to the totals. Text cells that a spreadsheet would run as a formula
    start with ``'`` (see :func:`neutralise`).
    """
    lines: list[str] = []
    # written with "\r\n" so that csv also quotes cells holding a lone \r (it quotes the terminator's characters)
    writer = csv.writer(SimpleNamespace(write=lines.append), lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([cell(getattr(row, column)) for column in CSV_COLUMNS] for row in report.rows_to_depth(depth))
    text = "".join(line.removesuffix("\r\n") + "\n" for line in lines)
    if isinstance(path_or_file, (str, Path)):
        Path(path_or_file).write_text(text, encoding="utf-8", newline="")
    elif path_or_file is not None:
        path_or_file.write(text)
    return text
