"""The results file of a sweep, written as rows complete and read back to resume or render.

The format follows the suffix: ``.csv``, ``.jsonl`` (``.ndjson``) or ``.parquet`` (needs ``pyarrow``).
CSV and JSON Lines get one line per row, flushed at once: a sweep stopped by Ctrl-C or killed loses
nothing written, and a line cut short by a kill is dropped when the file is opened again. A Parquet
file cannot grow row by row, so its rows go to a journal beside it (``NAME.parquet.partial.jsonl``, the
same JSON lines) and the Parquet file is rewritten with every row when the writer closes; a journal
left by a killed sweep is taken in on the next open. Opening an existing file keeps its rows: a
resumed sweep skips their keys (:attr:`RowWriter.keys`), and a key is never written twice.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from torchscan.errors import TorchscanError
from torchscan.zoo.records import ROW_FIELDS, ZooRow

__all__ = ["FORMATS", "RowWriter", "output_format", "read_rows"]

FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
"""File suffix -> format."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a CSV cell as a formula: such text cells get a leading ``'``."""

_TEXT_FIELDS = frozenset(("spec", "input", "status", "model", "capture", "error_type", "error"))


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise TorchscanError(
            "Parquet output needs pyarrow: `pip install pyarrow`, or write .csv or .jsonl instead"
        ) from error
    return pyarrow


def output_format(path: str | os.PathLike[str]) -> str:
    """``csv``, ``jsonl`` or ``parquet`` by ``path``'s suffix; :class:`TorchscanError` for any other
    suffix, for Parquet without pyarrow, and for a folder that does not exist."""
    path = Path(path)
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise TorchscanError(f"{path}: give a results file ending in {', '.join(FORMATS)}")
    if found == "parquet":
        _pyarrow()
    if path.is_dir() or not path.parent.is_dir():
        raise TorchscanError(f"{path}: {'is a folder' if path.is_dir() else f'folder {path.parent} does not exist'}")
    return found


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".partial.jsonl")


def _csv_cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if name in _TEXT_FIELDS and text.startswith(_FORMULA_START) else text


def _csv_value(name: str, text: str) -> str:
    return text[1:] if name in _TEXT_FIELDS and text.startswith("'") and text[1:2] in _FORMULA_START else text


def _complete_lines(path: Path) -> None:
    """Cut a last line left unfinished by a killed writer (everything after the last newline)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _read_jsonl(path: Path) -> list[ZooRow]:
    text = path.read_text(encoding="utf-8")
    return [ZooRow.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]


def _read_csv(path: Path) -> list[ZooRow]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None and tuple(reader.fieldnames) != ROW_FIELDS:
            raise TorchscanError(f"{path}: its columns are not a zoo sweep's ({', '.join(ROW_FIELDS[:3])}, …)")
        return [ZooRow.from_dict({name: _csv_value(name, text) for name, text in line.items()}) for line in reader]


def _read_parquet(path: Path) -> list[ZooRow]:
    table = _pyarrow().parquet.read_table(path)
    return [ZooRow.from_dict(data) for data in table.to_pylist()]


def read_rows(path: str | os.PathLike[str]) -> list[ZooRow]:
    """Every row a results file holds (a Parquet file's journal included), in file order."""
    path = Path(path)
    found = output_format(path)
    rows: list[ZooRow] = []
    if path.is_file() and path.stat().st_size:
        rows = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[found](path)
    if found == "parquet" and _journal(path).is_file():
        rows += _read_jsonl(_journal(path))
    return rows


def _parquet_schema() -> Any:
    pyarrow = _pyarrow()
    kinds = {"complete": pyarrow.bool_(), "build_seconds": pyarrow.float64(), "analysis_seconds": pyarrow.float64()}
    return pyarrow.schema(
        [(name, pyarrow.string() if name in _TEXT_FIELDS else kinds.get(name, pyarrow.int64())) for name in ROW_FIELDS]
    )


class RowWriter:
    """Rows appended to a results file as they come (see the module's docstring).

    ``rows`` are the rows the file held when opened plus those written since; ``keys`` their keys.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.format = output_format(self.path)
        written = self.path if self.format != "parquet" else _journal(self.path)
        if written.is_file():
            _complete_lines(written)
        self.rows: list[ZooRow] = []
        self.keys: set[tuple[str, str]] = set()
        for row in read_rows(self.path):
            if row.key not in self.keys:
                self.keys.add(row.key)
                self.rows.append(row)
        new_csv = self.format == "csv" and not (self.path.is_file() and self.path.stat().st_size)
        self._handle: io.TextIOWrapper | None = written.open("a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._handle, lineterminator="\n") if self.format == "csv" else None
        if self._csv is not None and new_csv:
            self._csv.writerow(ROW_FIELDS)
            self._handle.flush()

    def write(self, row: ZooRow) -> bool:
        """Append ``row`` and flush; ``False`` (nothing written) when its key is already in the file."""
        if self._handle is None:
            raise TorchscanError(f"{self.path}: the writer is closed")
        if row.key in self.keys:
            return False
        data = row.to_dict()
        if self._csv is not None:
            self._csv.writerow([_csv_cell(name, data[name]) for name in ROW_FIELDS])
        else:
            self._handle.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.keys.add(row.key)
        self.rows.append(row)
        return True

    def close(self) -> None:
        """Close the file; a Parquet file is (re)written with every row and its journal removed."""
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        if self.format == "parquet":
            pyarrow = _pyarrow()
            table = pyarrow.Table.from_pylist([row.to_dict() for row in self.rows], schema=_parquet_schema())
            partial = self.path.with_name(self.path.name + ".tmp")
            pyarrow.parquet.write_table(table, partial)
            os.replace(partial, self.path)
            _journal(self.path).unlink(missing_ok=True)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
