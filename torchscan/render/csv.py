"""CSV export of the report rows (one line per row, down to a depth)."""

from __future__ import annotations

import csv
import io
from dataclasses import fields
from pathlib import Path
from typing import TextIO

from torchscan.report import Report, Row

__all__ = ["CSV_COLUMNS", "cell", "to_csv"]

CSV_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(Row))
"""The columns, in order: every :class:`Row` field (shapes and per-dim values as ``1x64x56x56``)."""


def cell(value: object) -> str:
    """A row value as CSV text: tuples ``x``-joined (``1x64x56x56``), None empty, booleans ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "x".join(str(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def to_csv(report: Report, path_or_file: str | Path | TextIO | None = None, depth: int | None = None) -> str:
    """The rows down to ``depth`` (all when None) as CSV text, also written to ``path_or_file`` if given.

    Numbers are exact integers; ``is_leaf`` is ``true``/``false``; the leaf rows (or the rows of
    ``report.rows_at_depth(d)``) sum to the totals.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([cell(getattr(row, column)) for column in CSV_COLUMNS] for row in report.rows_to_depth(depth))
    text = buffer.getvalue()
    if isinstance(path_or_file, (str, Path)):
        Path(path_or_file).write_text(text, encoding="utf-8", newline="")
    elif path_or_file is not None:
        path_or_file.write(text)
    return text
